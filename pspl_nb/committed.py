"""The kit's committed reference grids: which runs they hold, how they are trained, written and read back.

A reference grid is trained once (``make reference``, hours on 2 cores) and its tables are committed under
``results/reference/<profile>/``, so every verdict the kit prints can be re-derived from files without
training. Each grid separates two kinds of seeds:

    scoring seeds   0-7    the runs the verdicts compare
    held-out seeds  8-11   runs that only *choose*: the threshold level (plain L1's curve), each arm's best
                           learning rate, SGD's learning rate and the lr ramp of the ``l1_lrramp`` control

so no run both chooses a setting and is judged at it. The grid runs in two stages: the second holds the
arms whose settings the first stage's held-out runs choose.

    plan.sweep           l1 and pspl at these lr multipliers, scoring and held-out seeds
    plan.uniform_sweep   uniform at these multipliers (scoring seeds; x1 also held-out, for the ramp)
    plan.mechanisms      the optimiser controls: uniform at Adam beta2 0.99, SGD with momentum for l1, pspl
                         and uniform (a loss scale is an lr scale there), and l1_lrramp, plain L1 whose lr
                         follows the step-size ramp PSPL's rising scale gives Adam (measured on uniform)

Files: ``<grid>_histories.csv`` (every run and epoch), ``<grid>_images.csv.gz`` (per-image PSNR of the
scoring seeds of the arms the primary claims use, every evaluation) and ``<grid>_updates.csv`` (step sizes
per tenth of an epoch of the optimiser arms), with one entry per grid in ``provenance.json``.
"""
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pspl_nb import controls
from pspl_nb.config import RunConfig, profile
from pspl_nb.places import reference_dir, results_root

SCORING_SEEDS = tuple(range(8))
HELD_OUT_SEEDS = tuple(range(8, 12))
SGD_LR_MULTS = (0.2, 0.4, 0.6)  # SGD's lr candidates as multiples of the profile's Adam lr (5e-4: 1e-4..3e-4)


@dataclass(frozen=True)
class Plan:
    """What one committed grid trains (module docstring)."""

    sweep: tuple
    uniform_sweep: tuple
    mechanisms: bool
    hours: float  # wall time of both stages on 2 cores with 2 jobs: runs x mean seconds per run (measured) / 2


PLANS = {"cpu": Plan(sweep=(1, 2, 4, 6, 8), uniform_sweep=(1, 2, 4, 6, 8), mechanisms=True, hours=3),
         "cpu_long": Plan(sweep=(1, 2, 4, 8), uniform_sweep=(1,), mechanisms=False, hours=2.5)}
IMAGE_ARMS = ("l1", "pspl", "uniform", "contrast")  # with every lr of l1 and pspl: what the primary claims use
UPDATE_FAMILIES = ("l1", "pspl", "uniform")  # at x1, with every optimiser control


def _arm(weighting: str, mult: float, seeds, base: RunConfig, **more) -> list:
    return [base.replace(weighting=weighting, lr_mult=float(mult), seed=s, **more) for s in seeds]


def first_stage(profile_name: str) -> list:
    """The runs that need nothing chosen first, most informative first (a grid stopped early has the 2x2)."""
    plan, base = PLANS[profile_name], profile(profile_name)
    runs = [c for w in ("none", "pspl", "uniform", "contrast") for c in _arm(w, 1, SCORING_SEEDS, base)]
    runs += _arm("none", 1, HELD_OUT_SEEDS, base) + _arm("pspl", 1, HELD_OUT_SEEDS, base)
    if plan.mechanisms:
        runs += _arm("uniform", 1, HELD_OUT_SEEDS, base)
        runs += [c for m in SGD_LR_MULTS for c in _arm("none", m, HELD_OUT_SEEDS, base, optimizer="sgd")]
        runs += _arm("uniform", 1, SCORING_SEEDS, base, adam_beta2=0.99)
    for m in (m for m in plan.sweep if m != 1):
        runs += _arm("none", m, SCORING_SEEDS, base) + _arm("pspl", m, SCORING_SEEDS, base)
    runs += [c for m in plan.uniform_sweep if m != 1 for c in _arm("uniform", m, SCORING_SEEDS, base)]
    for m in (m for m in plan.sweep if m != 1):
        runs += _arm("none", m, HELD_OUT_SEEDS, base) + _arm("pspl", m, HELD_OUT_SEEDS, base)
    return runs


def second_stage(profile_name: str, table: pd.DataFrame, results=None) -> list:
    """The runs whose settings the first stage's held-out seeds choose: SGD's lr (best mean final PSNR of
    plain L1 with SGD on held-out seeds) for l1, pspl and uniform with SGD, and ``l1_lrramp``, whose lr
    ramp is uniform's step size per unit lr over L1's (``lr_ramp``, held-out seeds)."""
    plan, base = PLANS[profile_name], profile(profile_name)
    if not plan.mechanisms:
        return []
    column = f"psnr_{base.val_set}"
    sgd = table[(table.optimizer == "sgd") & table.seed.isin(HELD_OUT_SEEDS)]
    final = sgd[sgd.epoch == sgd.groupby("run_id").epoch.transform("max")]
    scores = final.groupby("lr_mult")[column].mean().where(~final.groupby("lr_mult").diverged.any(), -np.inf)
    mult = float(scores.idxmax())
    ramp = lr_ramp(_arm("uniform", 1, HELD_OUT_SEEDS, base), _arm("none", 1, HELD_OUT_SEEDS, base), results)
    runs = [c for w in ("none", "pspl", "uniform") for c in _arm(w, mult, SCORING_SEEDS, base, optimizer="sgd")]
    return runs + _arm("none", 1, SCORING_SEEDS, base, lr_ramp=ramp)


def lr_ramp(scaled: list, plain: list, results=None) -> tuple:
    """``RunConfig.lr_ramp`` that gives plain L1 the step sizes the ``scaled`` runs took: per tenth of an
    epoch, the mean over seeds of their ``update_per_lr`` (updates.csv) divided by the ``plain`` runs'
    (rounded to 3 decimals). Under Adam a rising loss scale enlarges the step until the second moment
    catches up; an L1 run on this ramp takes the same steps without any pixel weighting."""
    from pspl_nb.run_folder import run_folder

    def mean_steps(configs):
        tables = [pd.read_csv(run_folder(c, results) / "updates.csv").update_per_lr.to_numpy() for c in configs]
        return np.mean(tables, axis=0)

    return tuple(float(x) for x in np.round(mean_steps(scaled) / mean_steps(plain), 3))


def run(profile_name: str, jobs=2, results=None, data_root=None, progress=None) -> pd.DataFrame:
    """Train (or load) the committed grid of ``profile_name``, both stages; returns the tidy histories."""
    from pspl_nb.experiments import run_grid

    table = run_grid(first_stage(profile_name), jobs=jobs, results=results, data_root=data_root, progress=progress)
    second = second_stage(profile_name, table, results)
    if second:
        table = pd.concat([table, run_grid(second, jobs=jobs, results=results, data_root=data_root,
                                           progress=progress)], ignore_index=True)
    return table


def side_tables(table: pd.DataFrame, results=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-image PSNR, step sizes) of a grid, read from its run folders: per-image rows (arm, seed, epoch,
    set, image, psnr) of the scoring seeds of ``IMAGE_ARMS`` and every lr of l1 and pspl, and of the
    held-out seeds of every lr of l1 (the threshold's runs); step-size rows
    (arm, seed and updates.csv's columns) of every Adam/SGD control and ``UPDATE_FAMILIES`` at x1."""
    runs = table.drop_duplicates("run_id")
    images, updates = [], []
    for r in runs.itertuples():
        folder = Path(results or results_root()) / "runs" / r.run_id
        family = r.arm.split("_")[0]
        sweep = family in ("l1", "pspl") and r.arm in controls.sweep_arms([r.arm], family)
        # held-out L1 curves too: the threshold is recomputed from them when images are resampled
        if not r.diverged and ((r.seed in SCORING_SEEDS and (r.arm in IMAGE_ARMS or sweep))
                               or (family == "l1" and sweep)):
            rows = pd.read_csv(folder / "eval_scores.csv")[["epoch", "set", "image", "psnr"]]
            images.append(rows.assign(arm=r.arm, seed=r.seed).round({"psnr": 4}))
        control = r.optimizer != "adam" or r.adam_beta2 != 0.999 or r.arm.endswith("lrramp")
        if (r.arm in UPDATE_FAMILIES or control) and not r.diverged:
            updates.append(pd.read_csv(folder / "updates.csv").assign(arm=r.arm, seed=r.seed))
    order = ["arm", "seed"]
    images = pd.concat(images, ignore_index=True) if images else pd.DataFrame(columns=order)
    updates = pd.concat(updates, ignore_index=True) if updates else pd.DataFrame(columns=order)
    return (images[order + [c for c in images if c not in order]],
            updates[order + [c for c in updates if c not in order]])


def record(folder, name: str, table: pd.DataFrame, profile_name: str, command: str, images=None, updates=None,
           code_version: str | None = None, notes: str = "", bicubic: dict | None = None) -> None:
    """Write a grid's tables as ``<folder>/<name>_histories.csv`` (and ``_images.csv.gz``, ``_updates.csv``
    when given) and its entry of ``<folder>/provenance.json``: profile, config, numerics, scoring and
    held-out seeds, runs, arms, command, code version, date, ``notes`` and ``bicubic`` ({set: bicubic's
    mean PSNR, dB}: the floor the verdicts measure how far training got from)."""
    from pspl_nb.run_folder import code_version as current_version

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}_histories.csv", index=False)
    if images is not None:
        images.to_csv(folder / f"{name}_images.csv.gz", index=False)
    if updates is not None:
        updates.to_csv(folder / f"{name}_updates.csv", index=False, float_format="%.6g")
    path = folder / "provenance.json"
    prov = json.loads(path.read_text()) if path.exists() else {"grids": {}}
    c = profile(profile_name)
    seeds = sorted(int(s) for s in table.seed.unique())
    prov["grids"][name] = dict(profile=profile_name, config=c.to_dict(), numerics=c.numerics(), seeds=seeds,
                               scoring_seeds=[s for s in seeds if s in SCORING_SEEDS],
                               held_out_seeds=[s for s in seeds if s not in SCORING_SEEDS],
                               runs=int(table.run_id.nunique()), arms=list(dict.fromkeys(table.arm)),
                               command=command, code_version=code_version or current_version(),
                               date=datetime.date.today().isoformat(), notes=notes, bicubic=bicubic or {})
    path.write_text(json.dumps(prov, indent=2) + "\n")


def _table_path(profile_name: str, name: str) -> Path | None:
    """Where committed table ``name`` of ``profile_name`` is (``.csv`` or ``.csv.gz``), or None."""
    folder = reference_dir() / profile_name
    return next((p for p in (folder / f"{name}.csv", folder / f"{name}.csv.gz") if p.exists()), None)


def is_committed(profile_name: str, name: str = "reference") -> bool:
    """Whether grid ``name`` of ``profile_name`` is committed: its histories and per-image tables both exist."""
    return all(_table_path(profile_name, f"{name}_{table}") for table in ("histories", "images"))


def load(profile_name: str, name: str) -> pd.DataFrame:
    """A committed table, ``<places.reference_dir()>/<profile>/<name>.csv`` (or ``.csv.gz``).

    ``attrs["provenance"]`` holds its grid's entry of ``provenance.json`` (``record``).
    """
    folder = reference_dir() / profile_name
    path = _table_path(profile_name, name)
    if path is None:
        raise FileNotFoundError(f"{folder / name}.csv is not committed; tables there: "
                                f"{sorted(p.name for p in folder.glob('*.csv*'))}")
    table = pd.read_csv(path)
    prov = folder / "provenance.json"
    grids = json.loads(prov.read_text()).get("grids", {}) if prov.exists() else {}
    table.attrs["provenance"] = grids.get(name.rsplit("_", 1)[0], {})
    return table


def scheduled_lr(table: pd.DataFrame):
    """f(arm, age) -> the lr a committed grid's ``arm`` was scheduled at that age (epochs): the profile's lr x
    the arm's ``lr_mult`` with the milestone decay, *without* any ``lr_ramp`` (``controls.step_sizes``
    divides each step by it, so a ramped arm shows the larger steps its ramp buys)."""
    import math

    from pspl_nb.questions import reference_config
    from pspl_nb.train import learning_rate

    c = reference_config(table)
    mults = table.drop_duplicates("arm").set_index("arm").lr_mult

    def lr(arm: str, age: float) -> float:
        return learning_rate(c.replace(lr_mult=float(mults[arm]), lr_ramp=()), max(0, math.ceil(age) - 1), age)

    return lr
