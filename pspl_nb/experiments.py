"""Grids of runs: arms x seeds x models, run in parallel processes, returned as one tidy table."""
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pandas as pd
import torch
from tqdm.auto import tqdm

from pspl_nb.config import RunConfig
from pspl_nb.models import MODEL_CARDS
from pspl_nb.train import train

# columns copied from each run's config into the tidy table
ID_COLUMNS = ("run_id", "arm", "model", "size", "scale", "seed", "dataset", "weighting", "base", "alpha",
              "mu", "ssim", "padding", "warmup_epochs")


def canonical(c: RunConfig, model: str) -> RunConfig:
    """``c`` for ``model`` with the loss and colour channels the official template trains it with.

    SRCNN and LapSRN train with MSE (l2), the others with L1; DRRN and LapSRN on the Y channel.
    """
    card = MODEL_CARDS[model]
    return c.replace(model=model, base="l2" if card.loss.startswith("MSE") else "l1", channels=card.channels.lower())


def control_arms(warmup_epochs: float) -> list[dict]:
    """The arms of notebook 07 as RunConfig changes: plain L1, PSPL, and what could explain PSPL's gains.

    uniform: PSPL's batch-mean weight, no pixel contrast. easy_first: mu = +1. warmup: plain L1 with a
    linear lr warm-up as long as PSPL's slow start (``stats.warmup_matching``). Then PSPL with alpha 0.3
    (the official default before publication), range-matched SSIM constants, and reflect padding.
    """
    return [dict(weighting="none"), dict(weighting="pspl"), dict(weighting="uniform"), dict(mu=1.0),
            dict(weighting="none", warmup_epochs=round(warmup_epochs, 2)), dict(alpha=0.3), dict(ssim="paper"),
            dict(padding="reflect")]


def tidy(history: pd.DataFrame) -> pd.DataFrame:
    """A run's history with its identifying config fields prepended as columns."""
    c = history.attrs["config"]
    ids = {"run_id": c.run_id(), "arm": c.arm, **{k: getattr(c, k) for k in ID_COLUMNS[2:]}}
    return pd.concat([pd.DataFrame({k: [v] * len(history) for k, v in ids.items()}), history], axis=1)


def _run(args):
    c, results, data_root, threads = args
    torch.set_num_threads(threads)
    return tidy(train(c, results=results, data_root=data_root, progress=False))


def run_grid(configs, jobs: int = 1, results=None, data_root=None, progress=None) -> pd.DataFrame:
    """Train (or load) every config and return all histories stacked, one row per run and epoch.

    Args:
        configs: iterable of RunConfig; duplicates (same run id) run once. Finished runs are loaded.
        jobs: parallel processes; each gets ``cpu_count // jobs`` torch threads. 1 runs in this process.
        results, data_root: as in ``train``. progress: a bar over runs (None: off when ``CI`` is set).
    Returns:
        DataFrame with ``ID_COLUMNS`` then the history columns (epoch, psnr_<set>, ...).
    """
    unique = list({c.run_id(): c for c in configs}.values())
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    work = [(c, results, data_root, threads) for c in unique]
    show = (not os.environ.get("CI")) if progress is None else progress
    with tqdm(total=len(work), desc="runs", disable=not show) as bar:
        if jobs <= 1:
            tables = []
            for w in work:
                tables.append(tidy(train(w[0], results=results, data_root=data_root, progress=show)))
                bar.update(1)
        else:
            # spawn: a forked child would inherit this process's torch thread pool and deadlock
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
                tables = []
                for table in pool.map(_run, work):
                    tables.append(table)
                    bar.update(1)
    return pd.concat(tables, ignore_index=True)


def critical_grid(profile_name: str, seeds=None, model: str = "edsr_baseline") -> list:
    """Every run of notebook 07 for a profile: ``control_arms`` x seeds, the warm-up length taken from
    the profile's seed-0 PSPL run (trained first if needed)."""
    from pspl_nb.config import SEEDS, profile
    from pspl_nb.stats import warmup_matching

    base = profile(profile_name, model=model)
    seeds = SEEDS[profile_name] if seeds is None else seeds
    first = train(base.replace(weighting="pspl", seed=seeds[0]), progress=False)
    warmup = warmup_matching(first, base.gamma)
    return [base.replace(seed=s, **arm) for arm in control_arms(warmup) for s in seeds]


def main(argv=None) -> None:
    import argparse

    from pspl_nb.config import PROFILES

    p = argparse.ArgumentParser(prog="python -m pspl_nb.experiments",
                                description="Run notebook 07's grid of arms x seeds and write its tidy table.")
    p.add_argument("--profile", default="cpu", choices=tuple(PROFILES))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", required=True, help="CSV path for the tidy histories")
    a = p.parse_args(argv)
    table = run_grid(critical_grid(a.profile), jobs=a.jobs)
    table.to_csv(a.out, index=False)
    print(f"{table.run_id.nunique()} runs, {len(table)} rows -> {a.out}")


if __name__ == "__main__":
    main()
