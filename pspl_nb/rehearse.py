"""``make rehearse``: the gpu profile's whole path on a stand-in, in minutes, and what the real run will cost.

A real ``make reproduce PROFILE=gpu`` trains for a day or two; nothing in it should first run at hour 20.
The rehearsal builds a DIV2K-shaped stand-in offline (``data.build_standin``: DIV2K's layout, file names and
2K sizes, the four benchmarks at their real sizes) and executes every notebook with the ``rehearse`` profile:
the gpu profile's code path (DIV2K loader and cache, every evaluation and test set, bf16 autocast and
channels_last on CUDA, loader workers) on a schedule of minutes. On a CPU the models are tiny and the
stand-in small (CI runs it); on CUDA they have their published sizes and the stand-in has DIV2K's image counts.

From the rehearsal's own runs it measures seconds per iteration of every model and seconds per evaluation
epoch, and projects the time of ``make reproduce PROFILE=gpu`` and ``paper`` (``projection``). Only a CUDA
rehearsal measures the models that matter; on a CPU the projection is not made.

    python -m pspl_nb.rehearse            # results/rehearse/: data, runs, notebooks, timings, projection
"""
import argparse
import os
import time
from pathlib import Path

import pandas as pd

from pspl_nb.config import SEEDS, RunConfig, profile, resolve_device
from pspl_nb.runs import is_finished, load_history, results_root

# The stand-in's size: a few images on a CPU (CI), DIV2K's counts on CUDA (100 validation images, as the
# official code evaluates; the training set only needs enough images to fill the loader and the device cache).
STANDIN = {"cpu": dict(train=2, valid=1, counts=2), "cuda": dict(train=64, valid=100, counts=None)}


def planned_runs(profile_name: str) -> list[RunConfig]:
    """Every run ``make reproduce PROFILE=profile_name`` trains, once each (notebooks 03-07; the race of
    notebook 04 is a few smoke-sized seconds and left out)."""
    from pspl_nb import experiments

    seeds = SEEDS[profile_name]
    ablation = [profile(profile_name, model="edsr_baseline", weighting=w, seed=s) for w in ("none", "pspl") for s in seeds]
    runs = ablation + experiments.table1_grid(profile_name) + experiments.critical_grid(profile_name)
    return list({c.run_id(): c for c in runs}.values())


def measured_rates(results=None) -> pd.DataFrame:
    """Pace of every finished run under ``<results>/runs``: one row per run with model, size, scale, batch,
    patch, numerics, iterations, s_per_it (training steps of its last epoch, past the start-up costs of the
    first: loader workers, cuDNN's algorithm search, caches) and eval_s (seconds per evaluation epoch)."""
    rows = []
    for folder in sorted((Path(results or results_root()) / "runs").glob("*")):
        if not is_finished(folder) or not (folder / "history.csv").exists():
            continue
        h = load_history(folder)
        if "train_time" not in h:
            continue
        c = h.attrs["config"]
        wall = h.wall_time.diff().fillna(h.wall_time.iloc[0])
        rows.append(dict(model=c.model, size=c.size, scale=c.scale, batch=c.batch, patch=c.patch,
                         numerics=c.numerics(), iterations=int(h.iteration.iloc[-1]),
                         s_per_it=float(h.train_time.iloc[-1] / c.iters_per_epoch),
                         eval_s=float((wall - h.train_time).mean())))
    return pd.DataFrame(rows)


def projection(plan: list[RunConfig], rates: pd.DataFrame) -> pd.DataFrame:
    """Projected hours of each planned run: its iterations times the measured s/it of the same model, scale,
    size, batch and patch (median over rehearsal runs), plus its epochs times the measured evaluation time.

    Returns one row per planned run: run_id, model, scale, iterations, s_per_it, eval_s, hours (NaN when the
    rehearsal measured no run of that shape).
    """
    keys = ["model", "size", "scale", "batch", "patch"]
    pace = rates.groupby(keys)[["s_per_it", "eval_s"]].median() if len(rates) else None
    rows = []
    for c in plan:
        key = tuple(getattr(c, k) for k in keys)
        s_it, ev = (pace.loc[key].tolist() if pace is not None and key in pace.index else (float("nan"),) * 2)
        its = c.epochs * c.iters_per_epoch
        rows.append(dict(run_id=c.run_id(), model=c.model, scale=c.scale, iterations=its, s_per_it=s_it, eval_s=ev,
                         hours=(its * s_it + c.epochs * ev) / 3600))
    return pd.DataFrame(rows)


def rehearse(out=None, cuda: bool | None = None) -> dict:
    """Build the stand-in, run every notebook with PROFILE=rehearse, measure, project. Returns a summary dict
    (seconds per notebook, projection tables when the rehearsal ran on CUDA)."""
    from pspl_nb.data import build_standin
    from pspl_nb.reproduce import execute, notebooks, to_html

    out = Path(out or results_root() / "rehearse")
    cuda = resolve_device("auto").type == "cuda" if cuda is None else cuda
    data, results = out / "data", out / "results"
    t0 = time.perf_counter()
    build_standin(data, **STANDIN["cuda" if cuda else "cpu"])
    timings = [dict(notebook="(stand-in data)", seconds=round(time.perf_counter() - t0, 1))]
    os.environ.update(PSPL_DATA=str(data), PSPL_RESULTS=str(results))
    for nb in notebooks():
        t0 = time.perf_counter()
        print(f"[rehearse] {nb.name} ...", flush=True)
        to_html(execute(nb, "rehearse", results / "rehearse" / "notebooks"))
        timings.append(dict(notebook=nb.name, seconds=round(time.perf_counter() - t0, 1)))
        print(f"[rehearse] {nb.name} done in {timings[-1]['seconds']} s", flush=True)
    table = pd.DataFrame(timings)
    table.to_csv(out / "timings.csv", index=False)
    summary = dict(timings=table, rates=measured_rates(results))
    summary["rates"].to_csv(out / "rates.csv", index=False)
    if cuda:
        for name in ("gpu", "paper"):
            summary[name] = projection(planned_runs(name), summary["rates"])
            summary[name].to_csv(out / f"projection_{name}.csv", index=False)
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.rehearse", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="folder for data, runs and notebooks (default results/rehearse)")
    a = p.parse_args(argv)
    summary = rehearse(a.out)
    print(summary["timings"].to_string(index=False), f"\ntotal {summary['timings'].seconds.sum():.0f} s")
    print(summary["rates"].to_string(index=False))
    for name in ("gpu", "paper"):
        if name in summary:
            t = summary[name]
            print(f"projected `make reproduce PROFILE={name}`: {t.hours.sum():.1f} h of training and evaluation "
                  f"({len(t)} runs; {t.hours.isna().sum()} of a shape the rehearsal did not measure)")
    if "gpu" not in summary:
        print("no projection: this rehearsal ran on a CPU with tiny models; run `make rehearse` on a CUDA machine")


if __name__ == "__main__":
    main()
