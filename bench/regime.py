"""Which knob lifts plain L1 furthest above bicubic on the embedded images, for how many CPU minutes.

The cpu and cpu_long profiles train a tiny EDSR-baseline that ends about 1 dB (cpu) and 1.4 dB (cpu_long)
above MATLAB bicubic on ``embedded_valid``; the paper's EDSR-baseline is about 3 dB above it. This script
trains plain L1 (seed 0, lr x2, the cpu grid's held-out choice) under a few candidate regimes, each the
cpu_long schedule (2,000 iterations) with one thing changed, and reports per candidate the gain over bicubic
(dB, Y channel, shave = scale) after every epoch and the training time. Runs are train-or-load in
``--results`` (default ``bench/out/regime``), so an interrupted measurement resumes.

Candidates (``CANDIDATES``), about 4x cpu_long's arithmetic each but the first and last: the cpu_long profile;
LR patch 48 instead of 24 (4x the pixels per step); the ``small`` model size (8 blocks x 48 features instead
of 4 x 32, 4.5x the arithmetic per pixel); the small size trained four times longer (8,000 iterations, lr halved
at 6,000, as cpu_long halves it at three quarters). Each row's epoch column also answers "fewer iterations?".

    python -m bench.regime --csv bench/regime.csv --report bench/REGIME.md   # all candidates (committed)
    python -m bench.regime --only small
    python -m bench.regime --iters 4 --epochs 2 --results /tmp/r   # the pipeline only, numbers meaningless
"""
import argparse
from pathlib import Path

import pandas as pd

from pspl_nb.config import profile
from pspl_nb.evaluate import bicubic_psnr
from pspl_nb.train import train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "out" / "regime"
BASE = "cpu_long"
CANDIDATES = {
    "cpu_long": {},
    "patch48": {"patch": 48},
    "small": {"size": "small"},
    "small_8000": {"size": "small", "epochs": 80, "milestones": (60,)},
}


def measure(names=tuple(CANDIDATES), results=RESULTS, lr_mult: float = 2.0, **schedule) -> pd.DataFrame:
    """Train (or load) plain L1 under each named candidate; one row per candidate and epoch.

    Args:
        names: keys of ``CANDIDATES``.
        results: results folder of the runs (train-or-load).
        lr_mult: lr multiplier over the profile's 5e-4.
        schedule: overrides applied to every candidate (``iters_per_epoch``, ``epochs``, ``milestones``): for a
            quick pipeline check.

    Returns:
        DataFrame: ``candidate, overrides, iteration, epoch, psnr`` (dB on embedded_valid), ``bicubic`` (dB),
        ``gain`` (dB), ``train_s`` (cumulative training seconds, evaluation excluded), ``wall_s`` (cumulative,
        evaluation included), ``run_id``.
    """
    base = profile(BASE)  # no candidate changes the scored set or the scale, so one bicubic floor serves all
    floor = bicubic_psnr(base.val_set, base.scale, limit=base.eval_limit)
    rows = []
    for name in names:
        c = profile(BASE, weighting="none", seed=0, lr_mult=lr_mult, **{**CANDIDATES[name], **schedule})
        h = train(c, results=results)
        rows.append(pd.DataFrame({
            "candidate": name, "overrides": str(CANDIDATES[name]), "iteration": h.iteration, "epoch": h.epoch,
            "psnr": h[f"psnr_{c.val_set}"], "bicubic": floor, "gain": h[f"psnr_{c.val_set}"] - floor,
            "train_s": h.train_time.cumsum(), "wall_s": h.wall_time, "run_id": c.run_id()}))
    return pd.concat(rows, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: gain at the last epoch and at the best one (dB), and training minutes for the run."""
    g = table.groupby("candidate", sort=False)
    return pd.DataFrame({"final gain (dB)": g.gain.last(), "best gain (dB)": g.gain.max(),
                         "iterations": g.iteration.last(), "train (min)": g.train_s.last() / 60,
                         "wall (min)": g.wall_s.last() / 60}).round(3)


def report(table: pd.DataFrame) -> str:
    """Markdown: the per-candidate summary and what the runs were (bench/REGIME.md)."""
    import os
    from datetime import date

    from pspl_nb.run_folder import code_version

    c = profile(BASE)
    floor = table.bicubic.iloc[0]
    rows = [f"| {name} | {r['final gain (dB)']:+.2f} | {r['best gain (dB)']:+.2f} | {r['iterations']:.0f} | "
            f"{r['train (min)']:.1f} | {r['wall (min)']:.1f} |" for name, r in summary(table).iterrows()]
    return "\n".join([
        "# What lifts plain L1 above bicubic on the embedded images (`python -m bench.regime`)", "",
        f"Plain L1, seed 0, lr x2, the {BASE} profile ({c.size} model, LR patch {c.patch}, {c.epochs} epochs x "
        f"{c.iters_per_epoch} iterations, batch {c.batch}) with one change per row (the overrides column of "
        f"regime.csv); gain = PSNR on {c.val_set} (Y, shave = scale) minus MATLAB bicubic ({floor:.2f} dB). "
        f"Written on {date.today()} by code `{code_version()}` from runs trained on {os.cpu_count()} CPU cores "
        "one at a time (their times include other load on the machine).", "",
        "| candidate | final gain (dB) | best gain (dB) | iterations | train (min) | wall (min) |",
        "|---|---|---|---|---|---|", *rows, ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=tuple(CANDIDATES), default=tuple(CANDIDATES))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--csv", help="write the per-epoch table here")
    parser.add_argument("--report", help="write the markdown summary here (the committed one: bench/REGIME.md)")
    parser.add_argument("--iters", type=int, help="iterations per epoch (a quick pipeline check)")
    parser.add_argument("--epochs", type=int, help="epochs (a quick pipeline check; the lr halves before the last)")
    a = parser.parse_args(argv)
    schedule = {}
    if a.iters:
        schedule["iters_per_epoch"] = a.iters
    if a.epochs:
        schedule.update(epochs=a.epochs, milestones=(max(1, a.epochs - 1),))
    table = measure(a.only, a.results, **schedule)
    if a.csv:
        table.to_csv(a.csv, index=False, float_format="%.4f")
    if a.report:
        Path(a.report).write_text(report(table))
    print(summary(table).to_string())


if __name__ == "__main__":
    main()
