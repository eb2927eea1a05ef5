"""``make rehearse``: the gpu profile's whole path on a stand-in, in minutes, and what the real run will cost.

A real ``make reproduce PROFILE=gpu`` trains for a day or two; nothing in it should first run at hour 20.
The rehearsal builds a DIV2K-shaped stand-in offline (``data.build_standin``: DIV2K's layout, file names and
2K sizes, the four benchmarks at their real sizes) and executes every notebook with the ``rehearse`` profile:
the gpu profile's code path (DIV2K loader and cache, every evaluation and test set, bf16 autocast and
channels_last on CUDA, loader workers) on a schedule of minutes. On a CPU the models are tiny and the
stand-in small (CI runs it); on CUDA they have their published sizes and the stand-in has DIV2K's image counts.

From the rehearsal's own runs it measures seconds per iteration of every model and seconds per evaluation
epoch, each in its run's numerics (``RunConfig.numerics``: bf16 and fp32 differ by ~2x on a GPU) and in
its last epoch (the first one pays for cuDNN's algorithm search, loader start-up and first-touch caches).
The plans' shapes and numerics the notebooks did not train are measured by short runs of their own
(``measure_missing``), and the time of ``make reproduce PROFILE=gpu`` and ``paper`` is projected from these
rates (``projection``). Only a CUDA rehearsal measures the models that matter; on a CPU the projection is
not made.

    python -m pspl_nb.rehearse            # results/rehearse/: data, runs, notebooks, timings, projection
"""
import argparse
import os
import time
from pathlib import Path

import pandas as pd

from pspl_nb.config import SEEDS, RunConfig, profile, resolve_device
from pspl_nb.places import results_root
from pspl_nb.run_folder import is_finished, load_history

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


SHAPE = ["model", "size", "scale", "batch", "patch", "numerics"]  # what a measured rate is keyed by


def measured_rates(results=None) -> pd.DataFrame:
    """Pace of every finished run under ``<results>/runs``, in its steady state: one row per run with model,
    size, scale, batch, patch, numerics (``RunConfig.numerics``), eval_sets, iterations, s_per_it and eval_s,
    both from its last epoch (training steps only, and the evaluation that closed it: the first epoch
    also pays for loader start-up, cuDNN's algorithm search for every new shape and first-touch caches).
    """
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
                         numerics=c.numerics(), eval_sets=" ".join(c.eval_sets), iterations=int(h.iteration.iloc[-1]),
                         s_per_it=float(h.train_time.iloc[-1] / c.iters_per_epoch),
                         eval_s=float(wall.iloc[-1] - h.train_time.iloc[-1])))
    return pd.DataFrame(rows)


def projection(plan: list[RunConfig], rates: pd.DataFrame) -> pd.DataFrame:
    """Projected hours of each planned run: its iterations times the measured s/it of the same model, scale,
    size, batch, patch and numerics (median over rehearsal runs), plus its epochs times the measured
    evaluation time. A rate measured in other numerics (bf16 for an fp32 plan) is never used.

    Returns one row per planned run: run_id, model, scale, numerics, iterations, s_per_it, eval_s, hours (NaN
    when the rehearsal measured no run of that shape and numerics).
    """
    keys = SHAPE
    pace = rates.groupby(keys)[["s_per_it", "eval_s"]].median() if len(rates) else None
    rows = []
    for c in plan:
        key = shape(c)
        s_it, ev = (pace.loc[key].tolist() if pace is not None and key in pace.index else (float("nan"),) * 2)
        its = c.epochs * c.iters_per_epoch
        rows.append(dict(run_id=c.run_id(), model=c.model, scale=c.scale, numerics=key[-1], iterations=its,
                         s_per_it=s_it, eval_s=ev, hours=(its * s_it + c.epochs * ev) / 3600))
    return pd.DataFrame(rows)


def shape(c: RunConfig) -> tuple:
    """The values of ``SHAPE`` for run ``c``: what its pace depends on."""
    return tuple(c.numerics() if k == "numerics" else getattr(c, k) for k in SHAPE)


def measure_missing(plans: list[RunConfig], rates: pd.DataFrame, results, data_root=None, epochs: int = 2,
                    iters: int = 50) -> pd.DataFrame:
    """``rates`` plus the rates of the shapes (``SHAPE``, numerics included) in ``plans`` that it lacks.

    Each missing shape is measured by one short run: the first planned run of that shape, with ``epochs``
    x ``iters`` iterations (its last epoch is past start-up) and its evaluation sets, trained under
    ``results`` (a folder of its own: every finished run there counts as a rate).
    """
    have = set(rates[SHAPE].itertuples(index=False, name=None)) if len(rates) else set()
    todo = {}
    for c in plans:
        todo.setdefault(shape(c), c)
    from pspl_nb.train import train

    for key, c in todo.items():
        if key not in have:
            train(c.replace(epochs=epochs, iters_per_epoch=iters, milestones=(), attention_steps=(), test_sets=()),
                  results=results, data_root=data_root, progress=False)
    new = measured_rates(results)
    if not len(new):
        return rates
    new = new[[key not in have for key in new[SHAPE].itertuples(index=False, name=None)]]
    return pd.concat([rates, new], ignore_index=True)


def rehearse(out=None, cuda: bool | None = None) -> dict:
    """Build the stand-in, run every notebook with PROFILE=rehearse, measure, project. Returns a summary dict
    (seconds per notebook, projection tables when the rehearsal ran on CUDA)."""
    from pspl_nb.data import build_standin
    from pspl_nb.reproduce import notebooks, run_notebooks

    out = Path(out or results_root() / "rehearse")
    cuda = resolve_device("auto").type == "cuda" if cuda is None else cuda
    data, results = out / "data", out / "results"
    t0 = time.perf_counter()
    build_standin(data, **STANDIN["cuda" if cuda else "cpu"])
    standin = pd.DataFrame([dict(notebook="(stand-in data)", seconds=round(time.perf_counter() - t0, 1))])
    os.environ.update(PSPL_DATA=str(data), PSPL_RESULTS=str(results))
    table = pd.concat([standin, run_notebooks(notebooks(), "rehearse", results / "rehearse" / "notebooks")],
                      ignore_index=True)
    table.to_csv(out / "timings.csv", index=False)
    summary = dict(timings=table, rates=measured_rates(results))
    if cuda:
        plans = {name: planned_runs(name) for name in ("gpu", "paper")}
        summary["rates"] = measure_missing(plans["gpu"] + plans["paper"], summary["rates"], results / "rates", data)
        for name, plan in plans.items():
            summary[name] = projection(plan, summary["rates"])
            summary[name].to_csv(out / f"projection_{name}.csv", index=False)
    summary["rates"].to_csv(out / "rates.csv", index=False)
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
