"""Grids of runs: which arms answer which question, and how a grid is run (processes, GPUs, a cluster).

A grid is a list of ``RunConfig``. ``run_grid`` trains (or loads) each in parallel processes and returns
one tidy table; every run still has its own folder, so a half-finished grid resumes where it stopped and
a run asked for twice is trained once (``pspl_nb.run_folder``). On a GPU, several small runs share the chip:
``probe_concurrency`` measures how many. A grid larger than one machine goes to SLURM through submitit
(``submit_grid``), with the same train-or-load folders.

The arms (docs/method.md says what PSPL is; these say what could explain its gains):

    DESIGN     l1, pspl, uniform (PSPL's rising global scale, no pixel contrast) and contrast (PSPL's pixel
               contrast at a constant scale): the 2x2 of {scale, contrast}
    LR_SWEEP   l1 and pspl at lr x0.5, x2, x4: does a larger step alone give PSPL's gain, and is each arm
               compared at its own best lr?
    ADAM       l1 and pspl with Adam beta2 = 0.99 (a ~100-step second-moment memory instead of ~1000)
    VARIANTS   easy_first (mu = +1), alpha 0.3 with its own uniform and contrast controls, the paper's SSIM
               constants, reflect padding, the official float32 SSIM arithmetic, and plain L1 with an lr
               warm-up as long as PSPL's slow start
"""
import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pandas as pd
import torch
from tqdm.auto import tqdm

from pspl_nb.config import SEEDS, TEST_SETS, RunConfig, profile, resolve_device
from pspl_nb.models import MODEL_CARDS
from pspl_nb.processes import exit_with_parent
from pspl_nb.run_folder import load_history, run_folder
from pspl_nb.train import NonFiniteLoss, train

# columns copied from each run's config into the tidy table
ID_COLUMNS = ("run_id", "arm", "model", "size", "scale", "seed", "dataset", "weighting", "base", "alpha",
              "mu", "ssim", "padding", "moments", "optimizer", "lr_mult", "adam_beta2", "warmup_epochs")

DESIGN = {"l1": dict(weighting="none"), "pspl": dict(weighting="pspl"), "uniform": dict(weighting="uniform"),
          "contrast": dict(weighting="contrast")}
LR_SWEEP = {f"{arm}_lrx{m:g}": dict(weighting=w, lr_mult=m) for arm, w in (("l1", "none"), ("pspl", "pspl"))
            for m in (0.5, 2.0, 4.0)}
ADAM = {f"{arm}_beta2_0.99": dict(weighting=w, adam_beta2=0.99) for arm, w in (("l1", "none"), ("pspl", "pspl"))}
VARIANTS = {"easy_first": dict(mu=1.0), "pspl_alpha0.3": dict(alpha=0.3),
            "uniform_alpha0.3": dict(weighting="uniform", alpha=0.3),
            "contrast_alpha0.3": dict(weighting="contrast", alpha=0.3), "pspl_paper_ssim": dict(ssim="paper"),
            "pspl_reflect": dict(padding="reflect"), "pspl_f32moments": dict(moments="float32")}


def canonical(c: RunConfig, model: str) -> RunConfig:
    """``c`` for ``model`` with the loss and colour channels the official template trains it with.

    SRCNN and LapSRN train with MSE (l2), the others with L1; DRRN and LapSRN on the Y channel.
    """
    card = MODEL_CARDS[model]
    return c.replace(model=model, base="l2" if card.loss.startswith("MSE") else "l1", channels=card.channels.lower())


def tidy(history: pd.DataFrame, diverged: bool = False) -> pd.DataFrame:
    """A run's history with its identifying config fields prepended as columns and ``diverged`` (whether the
    run stopped on a non-finite loss; its rows then end at the last good epoch) appended."""
    c = history.attrs["config"]
    ids = {"run_id": c.run_id(), "arm": c.arm, **{k: getattr(c, k) for k in ID_COLUMNS[2:]}}
    rows = max(len(history), 1)  # a run that diverged in its first epoch keeps one row of identity
    table = pd.concat([pd.DataFrame({k: [v] * rows for k, v in ids.items()}), history], axis=1)
    return table.assign(diverged=diverged)


def train_or_diverged(c: RunConfig, results=None, data_root=None, progress=None) -> pd.DataFrame:
    """``tidy(train(c))``; a run whose loss became non-finite is an outcome too (an lr too large): its table
    holds the epochs it finished, ``diverged`` True, instead of the error stopping a whole grid."""
    try:
        return tidy(train(c, results=results, data_root=data_root, progress=progress))
    except NonFiniteLoss:
        folder = run_folder(c, results)
        history = load_history(folder) if (folder / "history.csv").exists() else pd.DataFrame()
        history.attrs["config"] = c
        return tidy(history, diverged=True)


# ---- running a grid --------------------------------------------------------------------------------------

def visible_devices() -> list | None:
    """This process's ``CUDA_VISIBLE_DEVICES`` as a list of entries (indices, ``GPU-``/``MIG-`` UUIDs), or
    None when it is not set (every GPU visible, CUDA's index i is physical GPU i)."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if mask is None else [e.strip() for e in mask.split(",") if e.strip()]


def worker_masks(gpus: tuple, jobs: int) -> tuple[list, dict]:
    """(``CUDA_VISIBLE_DEVICES`` of worker k for k < jobs, {mask: runs placed on that GPU}).

    ``gpus`` are this process's CUDA indices; a scheduler (SLURM, a MIG partition) may already have masked
    the machine, so index i names the i-th entry of this process's mask, not physical GPU i.
    """
    mask = visible_devices()
    if mask is not None and any(not 0 <= g < len(mask) for g in gpus):
        raise ValueError(f"gpus={gpus}: this process sees {len(mask)} GPU(s) (CUDA_VISIBLE_DEVICES={','.join(mask)})")
    names = [str(g) if mask is None else mask[g] for g in gpus]
    workers = [names[k % len(names)] for k in range(jobs)] if names else []
    return workers, {name: workers.count(name) for name in names}


def _claim_slot(counter, workers: list, per_device: dict, parent: int | None = None) -> None:
    """Worker initialiser (before CUDA starts): the k-th worker process sees only GPU ``workers[k % len]``
    and is told how many runs share that GPU (``train.RUNS_PER_DEVICE``: each budgets its data copy by it);
    it exits when ``parent`` (the pid of the process running the grid) dies."""
    from pspl_nb.train import RUNS_PER_DEVICE

    if parent is not None:
        exit_with_parent(parent)
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    if workers:
        gpu = workers[k % len(workers)]
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        os.environ[RUNS_PER_DEVICE] = str(per_device[gpu])


def _run(args):
    """One grid worker's run: ``train_or_diverged`` with ``threads`` torch threads. ``cuda``: the grid was
    asked to run on CUDA, so a worker that sees no GPU stops instead of training on the CPU (another run id)."""
    c, results, data_root, threads, cuda = args
    if cuda and not torch.cuda.is_available():
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(f"{c.run_id()}: the grid runs on CUDA but this worker sees no GPU "
                           f"(CUDA_VISIBLE_DEVICES={mask!r}); not training it on the CPU")
    torch.set_num_threads(threads)
    return train_or_diverged(c, results, data_root, progress=False)


def run_grid(configs, jobs="auto", results=None, data_root=None, progress=None, gpus=None) -> pd.DataFrame:
    """Train (or load) every config and return all histories stacked, one row per run and epoch.

    Args:
        configs: iterable of RunConfig; duplicates (same run id) run once. Finished runs are loaded.
        jobs: parallel processes, or "auto": on CPU one per core (capped at 2 per run's share of threads),
            on CUDA ``probe_concurrency`` per GPU times the GPUs. 1 runs in this process.
        results, data_root: as in ``train``. progress: a bar over runs (None: off when ``CI`` is set).
        gpus: GPU indices to spread workers over (None: every visible GPU when the runs use CUDA), as this
            process numbers them: inside a scheduler's ``CUDA_VISIBLE_DEVICES`` mask, index i is its i-th
            entry. Worker k sees only ``gpus[k % len(gpus)]``, so N jobs on one GPU share it (each budgets
            device memory for all N) and jobs spread over several.
    Returns:
        DataFrame with ``ID_COLUMNS`` then the history columns (epoch, psnr_<set>, ...).
    """
    unique = list({c.run_id(): c for c in configs}.values())
    if not unique:
        raise ValueError("run_grid: no configs to run")
    cuda = resolve_device(unique[0].device).type == "cuda"
    if gpus is None:
        gpus = tuple(range(torch.cuda.device_count())) if cuda else ()
    if jobs == "auto":
        jobs = probe_concurrency(unique[0], data_root=data_root)["best"] * max(1, len(gpus)) if cuda else \
            min(2, os.cpu_count() or 1)
    jobs = max(1, min(int(jobs), len(unique)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    workers, per_device = worker_masks(tuple(gpus), jobs)
    work = [(c, results, data_root, threads, cuda) for c in unique]
    show = (not os.environ.get("CI")) if progress is None else progress
    tables = []
    with tqdm(total=len(work), desc="runs", disable=not show) as bar:
        if jobs == 1:
            for c, *_ in work:
                tables.append(train_or_diverged(c, results, data_root, progress=show))
                bar.update(1)
        else:
            # spawn: a forked child would inherit this process's torch thread pool (and CUDA state) and hang
            ctx = get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_claim_slot,
                                     initargs=(ctx.Value("i", 0), workers, per_device, os.getpid())) as pool:
                for table in pool.map(_run, work):
                    tables.append(table)
                    bar.update(1)
    return pd.concat(tables, ignore_index=True)


def _probe_worker(args) -> float:
    """Seconds for ``steps`` training steps of ``c`` after ``warmup``, as one of ``share`` runs on its device.

    The steps are the trainer's own (``train.take_step``): its model, optimiser, loss, autocast,
    channels_last and compile, on its batches from the loader it would pick with ``share`` runs per device
    (the device sampler holds its own copy of the training set there, as a run of the grid would).
    """
    from pspl_nb import train as T

    c, steps, warmup, barrier, data_root, share = args
    os.environ[T.RUNS_PER_DEVICE] = str(share)
    device = resolve_device(c.device)
    T.set_float32_precision(c, device)
    run = T.assemble(c, None, device, data_root)
    T.wrap_model(run)
    batches, amp = T.Batches(run, data_root), T.autocast(c, device)
    before = [p.detach().clone() for p in run.model.parameters()]
    it = (pair for epoch in range(10**6) for pair in batches.epoch(epoch))

    def some(n):
        for i in range(n):
            low, high = next(it)
            T.take_step(run, low, high, 1.0 + i / c.iters_per_epoch, c.lr, amp, before)
        if device.type == "cuda":
            torch.cuda.synchronize()

    some(warmup)
    barrier.wait()  # all processes start timing together
    t0 = time.perf_counter()
    some(steps)
    return time.perf_counter() - t0


def probe_concurrency(c: RunConfig, candidates=(1, 2, 4, 8), steps: int = 50, warmup: int = 10,
                      gain: float = 1.1, data_root=None) -> dict:
    """How many copies of run ``c`` to train at once on one device, measured.

    For each n in ``candidates`` n processes each time ``steps`` training steps of ``c`` at the same moment:
    the workload the grid will run (``_probe_worker``: the trainer's steps, loader and numerics, each with
    its own data copy where the device sampler is chosen for n runs per device). The aggregate pace is
    n * steps / (slowest process's seconds). The answer is the smallest n whose pace no larger candidate
    beats by more than ``gain`` (10%): a small model that leaves a GPU idle between kernel launches gains
    from company, a large one does not.

    Returns:
        dict(best=n, it_per_s={n: aggregate iterations per second}).
    """
    ctx = get_context("spawn")
    pace = {}
    for n in candidates:
        with ctx.Manager() as manager:  # its server process ends with the block
            barrier = manager.Barrier(n)
            with ProcessPoolExecutor(n, mp_context=ctx, initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
                seconds = list(pool.map(_probe_worker, [(c, steps, warmup, barrier, data_root, n)] * n))
        pace[n] = n * steps / max(seconds)
    best = candidates[0]
    for n in candidates[1:]:
        if pace[n] > gain * pace[best]:
            best = n
    return dict(best=best, it_per_s=pace)


def submit_grid(configs, folder, cluster: str | None = None, results=None, data_root=None, **parameters):
    """Send every config to a cluster as one job each, through submitit; returns the submitit jobs.

    Args:
        configs: RunConfigs (duplicates submitted once). Each job calls ``train``: train-or-load in the same
            run folders, so resubmitting a half-finished grid trains only what is missing.
        folder: submitit's log folder. cluster: "slurm", "local" (subprocesses on this machine, what the
            tests use) or None (submitit's choice: SLURM where ``sbatch`` exists, else local).
        parameters: submitit/SLURM settings, e.g. ``slurm_partition="gpu", gpus_per_node=1, timeout_min=600``.
    ``collect(jobs)`` waits for them and stacks their tidy tables.
    """
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**parameters)
    unique = list({c.run_id(): c for c in configs}.values())
    with executor.batch():
        jobs = [executor.submit(_run, (c, results, data_root, max(1, (os.cpu_count() or 1)), c.device == "cuda"))
                for c in unique]
    return jobs


def collect(jobs) -> pd.DataFrame:
    """Wait for submitit jobs of ``submit_grid`` and stack their tidy tables (raises the first job's error)."""
    return pd.concat([job.result() for job in jobs], ignore_index=True)


# ---- which runs answer which question --------------------------------------------------------------------

def arms(groups=("design",), warmup_epochs: float | None = None) -> dict:
    """{arm label: RunConfig changes} for the named groups: design, lr_sweep, adam, variants (module
    docstring), plus "warmup" when ``warmup_epochs`` is given."""
    table = {"design": DESIGN, "lr_sweep": LR_SWEEP, "adam": ADAM, "variants": VARIANTS}
    out = {}
    for g in groups:
        if g not in table:
            raise ValueError(f"arms: unknown group {g!r}, expected one of {tuple(table)}")
        out.update(table[g])
    if warmup_epochs is not None:
        out["warmup"] = dict(weighting="none", warmup_epochs=round(warmup_epochs, 2))
    return out


def critical_grid(profile_name: str, seeds=None, model: str = "edsr_baseline", groups=("design",),
                  warmup: bool = False, results=None, data_root=None) -> list:
    """The runs of notebook 07 (and of the committed reference grid, with more groups and seeds):
    ``arms(groups)`` x seeds; with ``warmup`` also the lr warm-up control, whose length is measured on the
    profile's first-seed PSPL run (trained first if needed, ``stats.warmup_matching``)."""
    from pspl_nb.stats import warmup_matching

    base = profile(profile_name, model=model)
    seeds = SEEDS[profile_name] if seeds is None else tuple(seeds)
    length = None
    if warmup:
        first = train(base.replace(weighting="pspl", seed=seeds[0]), results=results, data_root=data_root,
                      progress=False)
        length = warmup_matching(first, base.gamma)
    return [base.replace(seed=s, **arm) for arm in arms(groups, length).values() for s in seeds]


def table1_grid(profile_name: str, seeds=None, scale: int = 4) -> list:
    """The runs of Table 1: five models x {plain, PSPL} at ``scale``, each with its official loss and
    channels; on DIV2K every benchmark is a test set, scored on all its images after the last epoch."""
    from pspl_nb.published import MODELS

    base = profile(profile_name, scale=scale)
    if base.dataset == "div2k":
        base = base.replace(test_sets=TEST_SETS)
    seeds = SEEDS[profile_name][:1] if seeds is None else tuple(seeds)
    return [canonical(base, m).replace(weighting=w, seed=s) for m in MODELS for w in ("none", "pspl") for s in seeds]


GRIDS = {"critical": dict(groups=("design",))}


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of seeds >= 1")
    return int(text)


def main(argv=None) -> None:
    from pspl_nb.config import PROFILES

    p = argparse.ArgumentParser(prog="python -m pspl_nb.experiments",
                                description="Run a grid of arms x seeds and write its tidy table.")
    p.add_argument("--profile", default="cpu", choices=tuple(PROFILES))
    p.add_argument("--grid", default="critical", choices=(*GRIDS, "table1", "reference"),
                   help="reference: the committed grid of --profile (pspl_nb.committed), both stages")
    p.add_argument("--seeds", type=_positive, default=None, help="seeds 0..N-1 (default: the profile's)")
    p.add_argument("--jobs", default="auto", help="parallel processes, or auto")
    p.add_argument("--slurm", nargs="*", metavar="KEY=VALUE", default=None,
                   help="submit to SLURM via submitit instead, e.g. --slurm slurm_partition=gpu gpus_per_node=1")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="CSV path for the tidy histories")
    out.add_argument("--reference-dir", help="write <dir>/<grid>_histories.csv and its provenance.json entry")
    a = p.parse_args(argv)
    if a.out and not os.path.isdir(os.path.dirname(os.path.abspath(a.out))):
        # checked now, not after the grid has trained for hours
        p.error(f"--out {a.out}: the folder {os.path.dirname(os.path.abspath(a.out))} does not exist; create it first")
    seeds = None if a.seeds is None else range(a.seeds)
    if a.grid == "reference":
        return _reference(a, argv)
    if a.grid == "table1":
        configs = table1_grid(a.profile, seeds)
    else:
        configs = critical_grid(a.profile, seeds, **GRIDS[a.grid])
    if a.slurm is not None:
        params = dict(kv.split("=", 1) for kv in a.slurm)
        params = {k: int(v) if v.isdigit() else v for k, v in params.items()}
        logs = os.path.join(a.reference_dir, f"{a.grid}_slurm") if a.reference_dir else os.path.splitext(a.out)[0] + "_slurm"
        table = collect(submit_grid(configs, logs, "slurm", **params))
    else:
        table = run_grid(configs, jobs=a.jobs if a.jobs == "auto" else int(a.jobs))
    if a.reference_dir:
        import sys

        from pspl_nb import committed

        committed.record(a.reference_dir, a.grid, table, a.profile, "python -m pspl_nb.experiments " +
                         " ".join(sys.argv[1:] if argv is None else argv))
        where = f"{a.reference_dir}/{a.grid}_histories.csv"
    else:
        table.to_csv(a.out, index=False)
        where = a.out
    print(f"{table.run_id.nunique()} runs, {len(table)} rows -> {where}")


def _reference(a, argv) -> None:
    """``--grid reference``: train (or load) ``committed.run(profile)`` and record it with its side tables."""
    import sys

    from pspl_nb import committed
    from pspl_nb.evaluate import bicubic_psnr

    table = committed.run(a.profile, jobs=2 if a.jobs == "auto" else int(a.jobs))
    folder = a.reference_dir or os.path.dirname(a.out) or "."
    images, updates = committed.side_tables(table)
    c = profile(a.profile)
    committed.record(folder, "reference", table, a.profile, "python -m pspl_nb.experiments " +
                     " ".join(sys.argv[1:] if argv is None else argv), images, updates,
                     bicubic={s: bicubic_psnr(s, c.scale, limit=c.eval_limit) for s in c.eval_sets})
    print(f"{table.run_id.nunique()} runs, {len(table)} rows -> {folder}/reference_histories.csv")


if __name__ == "__main__":
    main()
