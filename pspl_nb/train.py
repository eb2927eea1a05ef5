"""Train one run: ``train(config) -> history``, resumable, self-describing and written atomically.

The module reads top-down: ``train`` and ``train_epochs`` first, then their stages in the order they run:

    join_process_group -> lock the run folder (a second process asking for the same run waits, then loads it)
    -> check the data and the memory -> build (model, optimiser, loss) -> resume from last.pt -> wrap_model
    -> Batches and the evaluation sets -> per epoch: train_epoch, history_row, evaluate_epoch, save_epoch
    -> finish (test sets, DDP agreement, meta.json "finished")

The folder's files are described in ``pspl_nb.run_folder``. The PSPL age counts fractional epochs as the
official code does (+1/iters_per_epoch before every loss call) and, unlike the official code, is restored on
resume. The learning rate is a pure function of (epoch, age), so resuming needs no scheduler state.

Nothing in the inner loop reads a value back from the device: losses and PSPL weight statistics stay
there, and the loss is checked for NaN/inf every ``CHECK_EVERY`` steps and at the end of every epoch (one
synchronisation each), so the host can queue step n + 1 while the device still computes step n.

Under DDP (torchrun) every rank trains its shard of each global batch; what defines the objective (the
batch statistics of the ``uniform`` and ``contrast`` controls) and what is logged (loss, PSPL weights) is
taken over the global batch (``ShardedBatch``), so a DDP run optimises and reports what a single process
would, up to the order of float sums. ``Ranks`` holds what differs between ranks; in one process each of
its steps does nothing, so the single-process path reads straight through them.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from pspl_nb.atomic import atomic_write, write_json
from pspl_nb.config import (PROFILES, RAMP_STEP, SGD_MOMENTUM, TEST_SETS, RunConfig, profile, resolve_device,
                            world_size)
from pspl_nb.data import TrainPatches, load_eval_set
from pspl_nb.data.datasets import EpochBatches
from pspl_nb.data.device_patches import DevicePatches
from pspl_nb.evaluate import as_channels, evaluate, stage_pairs, to_tensor
from pspl_nb.models import build_model
from pspl_nb.preflight import check_data, check_memory
from pspl_nb.pspl import PSPLLoss, WholeBatch, pixel_loss
from pspl_nb.run_folder import (RUN_FILES, code_version, is_finished, load_checkpoint, load_history, read_meta,
                                run_folder, run_lock, session_entry)

CHECK_EVERY = 50  # steps between checks for a non-finite loss: one host synchronisation each
BLOCKS = 10  # per epoch, rows of updates.csv: Adam's step size is followed at a tenth of an epoch
RUNS_PER_DEVICE = "PSPL_RUNS_PER_DEVICE"  # environment: how many runs a grid places on this process's GPU


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the run stops, keeps its last good checkpoint and is marked "diverged"
    in meta.json, so asking for it again reports the divergence instead of training into it again."""


# ---- the run ---------------------------------------------------------------------------------------------

def train(c: RunConfig, force: bool = False, results=None, data_root=None, progress=None) -> pd.DataFrame:
    """Train (or load, or resume) the run described by ``c``; returns its per-epoch history.

    Args:
        c: the run's configuration; its ``run_id()`` names the folder ``<results>/runs/<run_id>``.
        force: retrain from scratch even if the run finished before.
        results: results folder (default ``places.results_root()``); data_root: data folder (default ``data/``).
        progress: show a tqdm bar; None = on unless the ``CI`` environment variable is set.

    Returns:
        DataFrame, one row per epoch (``epoch`` 1..epochs): ``iteration, wall_time`` (s, training and
        evaluation, cumulative), ``train_time`` (s, this epoch's steps only), ``loss`` (train, mean over the
        epoch), ``lr``, ``age`` (PSPL step, epochs), ``att_mean, att_min, att_max`` (PSPL weights over the
        epoch; NaN without PSPL), ``update_rms, update_per_lr`` (``update_blocks``), then for each set of
        ``eval_sets`` ``psnr_<set>`` (dB), ``ssim_<set>`` and, on non-benchmark sets, ``edsr_psnr_<set>``
        (EDSR-PyTorch's RGB metric, dB); the last row also holds ``psnr_/ssim_<set>`` of ``test_sets``.
        ``attrs["run_dir"]`` and ``attrs["config"]`` say where and how it was made.
    Raises:
        NonFiniteLoss: the loss became NaN/inf (the last good checkpoint stays).
    """
    for _ in train_epochs(c, force, results, data_root, progress):
        pass
    return load_history(run_folder(c, results))


def train_epochs(c: RunConfig, force: bool = False, results=None, data_root=None, progress=None):
    """Train (or resume) the run of ``c`` epoch by epoch, yielding an ``EpochReport`` after each one.

    Yields nothing when the run has already finished (unless ``force``). Closing the generator early (a
    stopped notebook race, Ctrl-C) leaves the last finished epoch's checkpoint to resume from. Arguments
    as in ``train``.
    """
    folder = run_folder(c, results)
    ranks, device = join_process_group(c)
    with ranks.lock(folder):
        data = check_data(c, folder, data_root, force)  # complete, and what the run trained on before
        if ranks.agree(is_finished(folder) and not force):
            return
        if read_meta(folder).get("state") == "diverged" and not force:
            raise NonFiniteLoss(f"{read_meta(folder)['diverged']} (recorded earlier; force=True trains it again)")
        check_memory(c)
        run = build(c, folder, device, ranks, data_root, force)
        resume(run)
        wrap_model(run)
        batches, evaluation = Batches(run, data_root), load_evaluation(run, data_root)
        meta = Meta(run, batches.kind, data)
        meta.write("running")
        bar = progress_bar(run, progress)
        for epoch in range(run.epoch, c.epochs):
            started = time.perf_counter()
            try:
                steps = train_epoch(run, batches, epoch, bar)  # ends with a synchronising finiteness check
            except NonFiniteLoss as e:
                meta.write("diverged", diverged=str(e))
                raise
            row = history_row(run, epoch, steps, train_seconds=time.perf_counter() - started)
            evaluate_epoch(run, epoch, evaluation, row)
            row["wall_time"] = (run.rows[-1]["wall_time"] if run.rows else 0.0) + time.perf_counter() - started
            run.rows.append(row)
            run.epoch = epoch + 1
            save_epoch(run)
            meta.epoch_done(run.epoch)
            bar.set_postfix(loss=f"{row['loss']:.3g}", psnr=f"{row.get(f'psnr_{c.val_set}', math.nan):.2f}")
            ranks.barrier()
            yield EpochReport(row, run.model, run)
        bar.close()
        score_test_sets(run, data_root)
        check_ranks_agree(run)
        meta.write("finished")
        ranks.barrier()


@dataclass
class EpochReport:
    """What ``train_epochs`` yields after each epoch: the history row and the model as it is now."""

    row: dict
    model: torch.nn.Module
    run: Run


# ---- joining the processes that train the run ------------------------------------------------------------

@dataclass(frozen=True)
class Ranks:
    """The processes training one run, seen from this one: ``rank`` of ``world`` (0 of 1 outside torchrun).

    Rank 0 leads: it alone holds the run folder's lock, evaluates, writes the run's files and shows progress.
    With one process ``lock`` is the lock, ``barrier`` does nothing and ``agree`` returns its argument.
    """

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def lock(self, folder: Path):
        """The run folder's lock for the leader; the other ranks wait for it at the barrier after ``build``."""
        return run_lock(folder) if self.leader else nullcontext()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def agree(self, flag: bool) -> bool:
        """The leader's ``flag`` on every rank."""
        if self.world == 1:
            return flag
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def join_process_group(c: RunConfig) -> tuple[Ranks, torch.device]:
    """This process's ``Ranks`` and device; under torchrun (``WORLD_SIZE`` > 1) binds the rank's device, then
    joins the DDP process group: NCCL with that device (``device_id``) on CUDA, gloo elsewhere."""
    world = world_size()
    if c.batch % world:
        raise ValueError(f"RunConfig.batch={c.batch}: must be divisible by the {world} DDP processes")
    device = bind_device(c, world)
    if world == 1:
        return Ranks(), device
    if not dist.is_initialized():
        if device.type == "cuda":  # device_id (torch >= 2.3) binds the communicator to the rank's GPU at once
            bound = "device_id" in inspect.signature(dist.init_process_group).parameters
            dist.init_process_group("nccl", **({"device_id": device} if bound else {}))
        else:
            dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), world), device


def bind_device(c: RunConfig, world: int) -> torch.device:
    """The device this process trains on, made the current CUDA device when there are several processes.

    Under torchrun each rank takes GPU ``LOCAL_RANK``. It must be current before the first collective:
    NCCL binds a communicator to the device that is current when it is first used, and otherwise every
    rank would use GPU 0.
    """
    device = resolve_device(c.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


# ---- building what a run trains ------------------------------------------------------------------------

@dataclass
class Run:
    """What the stages of one training run share: its config and folder, where it runs, what it trains,
    and how far it got (``epoch`` epochs done, ``rows`` of history, ``best`` validation PSNR)."""

    c: RunConfig
    folder: Path | None
    device: torch.device
    ranks: Ranks
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    criterion: object
    snaps: Snapshotter | None = None  # the leader's attention snapshots (None: a step timed outside a run)
    net: torch.nn.Module = None  # what a step calls: the model, maybe channels_last, DDP-wrapped, compiled
    rows: list = field(default_factory=list)
    images: list = field(default_factory=list)   # per-image scores of every evaluation (eval_scores.csv)
    updates: list = field(default_factory=list)  # step sizes per tenth of an epoch (updates.csv)
    epoch: int = 0
    best: float = -math.inf

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"


def build(c: RunConfig, folder: Path, device: torch.device, ranks: Ranks, data_root, force: bool) -> Run:
    """Numerics, then ``assemble``; the leader clears the run's files when ``force`` and writes config.json,
    and every rank waits for it."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_float32_precision(c, device)
    run = assemble(c, folder, device, data_root, ranks)
    if ranks.leader:
        for name in RUN_FILES if force else ():
            (folder / name).unlink(missing_ok=True)
        c.save(folder / "config.json")
    ranks.barrier()
    return run


def set_float32_precision(c: RunConfig, device: torch.device) -> dict:
    """Apply ``c.tf32`` to this process's CUDA float32 products and convolutions; returns the settings in force.

    torch's own defaults differ between the two (convolutions in TF32, matrix products not), so a run states
    its choice instead of inheriting them. Off CUDA nothing is set and the flags have no effect.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = c.tf32
    return tf32_in_force(device)


def tf32_in_force(device: torch.device) -> dict:
    """This process's TF32 flags for matrix products and convolutions, and whether they act on ``device``."""
    return dict(matmul=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32,
                in_effect=device.type == "cuda")


def assemble(c: RunConfig, folder, device: torch.device, data_root, ranks: Ranks = Ranks()) -> Run:
    """The seeded model on ``device``, its optimiser, the loss and the snapshotter: a ``Run`` before any file
    is touched (``build`` adds the files; ``experiments.probe_concurrency`` times steps of one)."""
    torch.manual_seed(c.seed)
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range).to(device)
    optimizer = make_optimizer(c, model.parameters(), device)
    criterion = make_criterion(c) if ranks.world == 1 else make_criterion(c, ShardedBatch(ranks.world))
    return Run(c, folder, device, ranks, model, optimizer, criterion, Snapshotter(c, data_root))


def make_optimizer(c: RunConfig, params, device=None) -> torch.optim.Optimizer:
    """Adam(0.9, adam_beta2, eps 1e-8) as EDSR-PyTorch trains, or SGD with momentum ``SGD_MOMENTUM``, at ``c.lr``
    (the trainer sets each step's lr itself, ``learning_rate``).

    On CUDA (``device``) the fused implementation: one kernel for every parameter, and its step counters
    stay on the device, so a step reads nothing back per parameter. Elsewhere torch's default (a loop over
    the parameters on CPU), whose results the committed CPU grids were made with. ``optimizer_kind`` says
    which one an optimiser is.
    """
    fused = dict(fused=True) if device is not None and torch.device(device).type == "cuda" else {}
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=SGD_MOMENTUM, **fused)
    return torch.optim.Adam(params, lr=c.lr, betas=(0.9, c.adam_beta2), eps=1e-8, **fused)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """e.g. ``"Adam (fused)"``: the optimiser and its implementation, fused, foreach or for-loop (meta.json)."""
    d = optimizer.defaults
    on_device = optimizer.param_groups[0]["params"][0].device.type in ("cuda", "xpu")
    way = "fused" if d.get("fused") else "foreach" if d.get("foreach") or (d.get("foreach") is None and on_device) \
        else "for-loop"
    return f"{type(optimizer).__name__} ({way})"


def make_criterion(c: RunConfig, batch: WholeBatch | None = None):
    """The run's loss as ``f(sr, hr, age) -> scalar``; a PSPLLoss (``.last_attention``) unless weighting is none.

    ``batch``: how the controls take statistics over the batch (``ShardedBatch`` under DDP)."""
    if c.weighting == "none":
        return lambda sr, hr, age: pixel_loss(sr, hr, c.base, 1e-3 * c.rgb_range)
    return pspl_loss(c, {"pspl": "pixel", "uniform": "mean", "contrast": "contrast"}[c.weighting], batch)


def pspl_loss(c: RunConfig, weights: str = "pixel", batch: WholeBatch | None = None, kind=PSPLLoss) -> PSPLLoss:
    """Run ``c``'s PSPL loss (its schedule, base, SSIM settings and range) with ``weights``; no finiteness check
    (the trainer checks the loss itself, every ``CHECK_EVERY`` steps). ``batch``: how the controls take
    statistics over the batch (``ShardedBatch`` under DDP). ``kind``: ``PSPLLoss`` or a subclass of it."""
    return kind(c.schedule(), base=c.base, ssim=c.ssim, padding=c.padding, data_range=c.rgb_range, weights=weights,
                moments=c.moments, check_finite=False, batch=batch)


class ShardedBatch(WholeBatch):
    """Statistics over the global batch when each of ``world`` DDP processes holds an equal shard of it:
    the shards' means averaged, their minima and maxima combined, with one all-reduce each."""

    def __init__(self, world: int):
        self.world = world

    def _reduce(self, local: torch.Tensor, op) -> torch.Tensor:
        out = local.detach().clone()
        dist.all_reduce(out, op=op)
        return out

    def mean(self, local: torch.Tensor) -> torch.Tensor:
        return self._reduce(local, dist.ReduceOp.SUM).div_(self.world)

    def min(self, local: torch.Tensor) -> torch.Tensor:
        return self._reduce(local, dist.ReduceOp.MIN)

    def max(self, local: torch.Tensor) -> torch.Tensor:
        return self._reduce(local, dist.ReduceOp.MAX)


class Snapshotter:
    """The attention PSPL gives a fixed validation crop (first image of ``val_set``) at chosen ages."""

    def __init__(self, c: RunConfig, root=None):
        pair = load_eval_set(c.val_set, c.scale, root=root, limit=1)[0]
        low = as_channels(pair.lr, c.channels)
        side = min(48, low.shape[0], low.shape[1])  # LR crop; HR crop is side * scale
        top, left = (low.shape[0] - side) // 2, (low.shape[1] - side) // 2
        s = c.scale
        self.lr = low[top:top + side, left:left + side]
        self.hr = as_channels(pair.hr, c.channels)[s * top:s * (top + side), s * left:s * (left + side)]
        self.loss = pspl_loss(c)  # a diverged step is reported by the trainer's own check, with its iteration
        self.c, self.pending, self.taken = c, sorted(c.attention_steps), []

    @torch.no_grad()
    def attention_now(self, model, age: float, device) -> dict:
        """SR (uint8 (C, h, w)) and PSPL's attention (float32 (C, h, w)) of the crop for ``model`` at ``age``."""
        model.eval()
        sr = model(to_tensor(self.lr, self.c.rgb_range, device)).float().clamp(0, self.c.rgb_range)
        model.train()
        self.loss(sr, to_tensor(self.hr, self.c.rgb_range, device), age)
        return dict(age=age, sr=(sr[0] * 255 / self.c.rgb_range).round().byte().cpu().numpy(),
                    attention=self.loss.last_attention[0].cpu().numpy().astype(np.float32))

    def maybe_take(self, model, age: float, device) -> None:
        if not self.pending or age < self.pending[0]:
            return
        while self.pending and age >= self.pending[0]:
            self.pending.pop(0)
        self.taken.append(self.attention_now(model, age, device))

    def save(self, path: Path) -> None:
        if not self.taken:
            return
        arrays = dict(ages=np.array([t["age"] for t in self.taken]), lr=self.lr, hr=self.hr,
                      sr=np.stack([t["sr"] for t in self.taken]),
                      attention=np.stack([t["attention"] for t in self.taken]))
        atomic_write(path, lambda p: np.savez_compressed(open(p, "wb"), **arrays))


# ---- resuming and wrapping -----------------------------------------------------------------------------

def resume(run: Run) -> None:
    """Load ``last.pt`` if there is one: weights, optimiser, history, snapshots and random states.

    The file is read onto the host whatever the device: the random states must stay CPU tensors, and
    ``load_state_dict`` moves weights and optimiser moments to the parameters' device itself, keeping a
    non-fused Adam's step counters on the host where its step reads them without a synchronisation.
    """
    if not run.last.exists():
        return
    ck = load_checkpoint(run.last, "cpu")  # the random states must stay on the host
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.rows, run.epoch, run.best = ck["history"], ck["epoch"], ck["best"]
    run.images, run.updates = ck.get("images", []), ck.get("updates", [])
    run.snaps.pending, run.snaps.taken = ck["snapshots_pending"], ck["snapshots"]
    restore_rng_states(ck["rng"], run.device)


def rng_states(device: torch.device) -> dict:
    """The random states a checkpoint keeps: torch's CPU generator, numpy's, Python's, and on CUDA the
    generator of ``device`` (all on the host)."""
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict, device: torch.device) -> None:
    """Put back ``rng_states``; the CUDA generator only when the checkpoint has one and the run is on CUDA."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def wrap_model(run: Run) -> None:
    """The network the steps call: channels_last, DDP across ranks, torch.compile, as configured."""
    c, net = run.c, run.model
    if c.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if run.ranks.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    run.net = torch.compile(net) if c.compile else net


# ---- the data an epoch reads -----------------------------------------------------------------------------

class Batches:
    """The batches of every epoch, from the host (a DataLoader whose workers live across epochs) or cut
    on the device (``DevicePatches``); both give the same uint8 batches for a seed. ``kind`` says which."""

    def __init__(self, run: Run, data_root):
        c = run.c
        try:
            self.patches = TrainPatches(c.dataset, c.scale, c.patch, c.batch, c.iters_per_epoch, c.seed,
                                        y_channel=c.channels == "y", root=data_root)
        except ValueError as e:
            raise ValueError(f"RunConfig.patch={c.patch}: {e}") from None
        self.kind = c.loader
        if self.kind == "auto":
            self.kind = "device" if device_loader_fits(DevicePatches.nbytes(self.patches), run.device) else "host"
        # which samples form each batch: the epoch's indices, this rank's share of every global batch
        self.batch_sampler = EpochBatches(c.iters_per_epoch, c.batch, run.ranks.rank, run.ranks.world)
        if self.kind == "device":
            self.device_sampler = DevicePatches(self.patches, run.device)
        else:
            self.loader = torch.utils.data.DataLoader(
                self.patches, batch_sampler=self.batch_sampler, num_workers=c.workers,
                persistent_workers=c.workers > 0, pin_memory=run.device.type == "cuda")

    def epoch(self, epoch: int):
        """Yield (lr, hr) uint8 tensors (B, C, p, p), (B, C, sp, sp) of ``epoch``, on the device or the host."""
        self.batch_sampler.set_epoch(epoch)
        if self.kind == "device":
            yield from self.device_sampler.epoch(epoch, [[i for _, i in indices] for indices in self.batch_sampler])
        else:
            yield from self.loader


def device_loader_fits(nbytes: int, device: torch.device, runs: int | None = None) -> bool:
    """Whether a training set of ``nbytes`` goes on ``device`` for the device sampler: CUDA only, and only
    if it fits in a third of this run's share of the device's memory.

    ``runs`` is how many runs share the device (default: ``$PSPL_RUNS_PER_DEVICE``, set by
    ``experiments.run_grid``'s workers, else 1). Each of them holds its own copy of the set, and each
    decides at its own start: the share, the smaller of the free memory and total / runs, leaves room for
    every run placed there, not only for those that started before this one.
    """
    if device.type != "cuda":
        return False
    runs = max(1, runs or int(os.environ.get(RUNS_PER_DEVICE, "1")))
    free, total = torch.cuda.mem_get_info(device)
    return nbytes < min(free, total / runs) / 3


def load_evaluation(run: Run, data_root) -> dict:
    """{set name: images staged on the run's device (``evaluate.stage_pairs``)} of ``eval_sets``, for every
    evaluation; ``eval_limit`` cuts validation sets only, never a test set. Empty on ranks that do not lead:
    the leader evaluates."""
    c = run.c
    if not run.ranks.leader:
        return {}
    return {name: stage_pairs(load_eval_set(name, c.scale, root=data_root,
                                            limit=None if name in TEST_SETS else c.eval_limit), c.channels, run.device)
            for name in c.eval_sets}


# ---- what the run records about itself -------------------------------------------------------------------

@dataclass
class Meta:
    """meta.json of a run while it trains: what ran (code, torch, device, numerics with the TF32 settings in
    force, DDP world size, ``loader``, optimiser implementation, eager or compiled), the ``data`` it read
    (``preflight.data_fingerprint``, which a resume or a later load checks) and the ``sessions`` that trained
    it. Only the leader writes it."""

    run: Run
    loader: str
    data: dict
    sessions: list = None

    def __post_init__(self):
        self.sessions = read_meta(self.run.folder).get("sessions", []) + [session_entry(self.run.epoch)]

    def epoch_done(self, epoch: int) -> None:
        """This session has trained up to ``epoch`` epochs: recorded at once, state "running"."""
        self.sessions[-1]["end_epoch"] = epoch
        self.write("running")

    def write(self, state: str, diverged: str | None = None) -> None:
        """meta.json with ``state`` ("running", "finished" or "diverged", with why it ``diverged``)."""
        run = self.run
        if not run.ranks.leader:
            return
        meta = dict(run_id=run.c.run_id(), state=state, code_version=code_version(), torch=torch.__version__,
                    device=str(run.device), numerics=run.c.numerics(), tf32=tf32_in_force(run.device),
                    world_size=run.ranks.world, loader=self.loader, optimizer=optimizer_kind(run.optimizer),
                    step="compiled model" if run.c.compile else "eager", check_every=CHECK_EVERY,
                    sessions=self.sessions, data=self.data)
        if diverged:
            meta["diverged"] = diverged
        if state == "finished" and run.ranks.world > 1:
            meta["ranks_agree"] = True
        write_json(run.folder / "meta.json", meta)


def progress_bar(run: Run, progress: bool | None):
    """The leader's tqdm bar over the run's iterations, starting where it resumed; ``progress`` None: shown
    unless the ``CI`` environment variable is set."""
    c, show = run.c, (not os.environ.get("CI")) if progress is None else progress
    return tqdm(total=c.epochs * c.iters_per_epoch, initial=run.epoch * c.iters_per_epoch, desc=c.run_id(),
                disable=not show or not run.ranks.leader, leave=False)


# ---- one epoch of training -------------------------------------------------------------------------------

@dataclass
class EpochSteps:
    """What one epoch's steps leave behind, all on the device until the epoch closes: per-step ``loss``
    (iters,), PSPL's (mean, min, max) ``weights`` (iters, 3) or None without PSPL, the RMS parameter change
    ``update`` (iters,) each step made, and the host-side ``lr`` (iters,) each step used."""

    loss: torch.Tensor
    weights: torch.Tensor | None
    update: torch.Tensor
    lr: np.ndarray


def train_epoch(run: Run, batches: Batches, epoch: int, bar) -> EpochSteps:
    """Train one epoch; returns its per-step losses, PSPL weight statistics and step sizes (``EpochSteps``),
    taken over the global batch under DDP (``global_steps``)."""
    c, n = run.c, run.c.iters_per_epoch
    amp = autocast(c, run.device)
    before = [p.detach().clone() for p in run.model.parameters()]
    losses, weights, updates, lrs, checked = [], [], [], [], 0
    for i, (low, high) in enumerate(batches.epoch(epoch)):
        age = epoch + (i + 1) / n  # official: +1/iters before each loss call
        lrs.append(learning_rate(c, epoch, age))
        loss, update = take_step(run, low, high, age, lrs[-1], amp, before)
        losses.append(loss)
        updates.append(update)
        if c.pspl:
            weights.append(attention_stats(run.criterion.last_attention))
        if (i + 1) % CHECK_EVERY == 0:
            check_finite(run, losses, checked, epoch)
            checked = i + 1
        if run.ranks.leader:
            run.snaps.maybe_take(run.model, age, run.device)
        bar.update(1)
    check_finite(run, losses, checked, epoch)
    steps = EpochSteps(torch.stack(losses), torch.stack(weights) if weights else None, torch.stack(updates),
                       np.array(lrs))
    return global_steps(steps, run.ranks.world)


def autocast(c: RunConfig, device: torch.device):
    """The step's autocast context: bf16 when ``c.amp`` on CUDA, disabled elsewhere (amp then has no effect)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.amp and device.type == "cuda")


def learning_rate(c: RunConfig, epoch: int, age: float) -> float:
    """lr of an iteration of 0-based ``epoch`` at PSPL ``age``: lr * lr_mult, step decay at milestones,
    linear warm-up, and ``lr_ramp``'s multiplier for the tenth of an epoch that ``age`` falls in."""
    lr = c.lr * c.lr_mult * c.lr_decay ** sum(epoch >= m for m in c.milestones)
    if c.lr_ramp:  # entry k covers ages (k, k + 1] * RAMP_STEP; the tolerance absorbs the age's rounding
        lr *= c.lr_ramp[min(len(c.lr_ramp), max(1, math.ceil(age / RAMP_STEP - 1e-9))) - 1]
    return lr * min(1.0, age / c.warmup_epochs) if c.warmup_epochs > 0 else lr


def take_step(run: Run, low: torch.Tensor, high: torch.Tensor, age: float, lr: float, amp,
              before: list) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration as the trainer runs it, from a uint8 batch to the measured update; nothing is read back.

    Args:
        low, high: uint8 (B, C, p, p) and (B, C, sp, sp) batches, on the host or the device.
        age: PSPL age (epochs). lr: this step's learning rate. amp: the autocast context (``autocast``).
        before: one buffer per parameter, overwritten with the parameters before the step (no allocation).
    Returns:
        (loss, update_rms) 0-d tensors on the device.
    """
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    to_range = run.c.rgb_range / 255.0  # uint8 batches -> [0, rgb_range]
    low = low.to(run.device, non_blocking=True).float().mul_(to_range)
    high = high.to(run.device, non_blocking=True).float().mul_(to_range)
    if run.c.channels_last:
        low = low.contiguous(memory_format=torch.channels_last)
    params = [p.detach() for p in run.model.parameters()]
    torch._foreach_copy_(before, params)
    loss = train_step(run.net, run.criterion, run.optimizer, low, high, age, amp).detach()
    return loss, update_rms(before, params)


def train_step(net, criterion, optimizer, lr_img, hr_img, age: float, amp) -> torch.Tensor:
    """One optimisation step on a batch (float (N, C, h, w) LR, (N, C, sh, sw) HR on [0, rgb_range]).

    ``amp`` is an autocast context (possibly disabled); the loss is computed in float32 outside it.
    Returns the loss tensor without reading it, so no host synchronisation happens here.
    """
    with amp:
        sr = net(lr_img)
    loss = criterion(sr.float(), hr_img, age)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def update_rms(before: list, params: list) -> torch.Tensor:
    """RMS over all parameters of (after - before): the size of the step the optimiser just took, a 0-d
    tensor on the parameters' device (no synchronisation). Adam's step per unit lr, m / (sqrt(v) + eps), is
    this divided by the lr; a rising loss scale that Adam's second moment has not caught up with shows as a
    larger step."""
    change = torch._foreach_sub([p.detach() for p in params], before)
    return torch.stack(torch._foreach_norm(change)).square().sum().div(sum(p.numel() for p in params)).sqrt()


def attention_stats(a: torch.Tensor) -> torch.Tensor:
    """(mean, min, max) of an attention map as a (3,) tensor on its device: two passes, no synchronisation."""
    return torch.stack([a.mean(), *torch.aminmax(a)])


def check_finite(run: Run, losses: list, first: int, epoch: int) -> None:
    """Raise NonFiniteLoss naming the first non-finite loss among ``losses[first:]`` (one synchronisation).

    Under DDP the ranks' losses are summed first, so that every rank sees the same verdict and all of them
    stop together (a rank stopping alone would leave the others waiting in a collective).
    """
    if first >= len(losses):  # all checked already (the epoch's length is a multiple of CHECK_EVERY)
        return
    recent = torch.stack(losses[first:])
    if run.ranks.world > 1:
        dist.all_reduce(recent)
        recent /= run.ranks.world
    bad = ~torch.isfinite(recent)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise NonFiniteLoss(f"{run.c.run_id()}: loss={recent[i].item()} at epoch {epoch + 1}, iteration "
                            f"{first + i + 1}; last good checkpoint: {run.last}")


def global_steps(steps: EpochSteps, world: int) -> EpochSteps:
    """The epoch's loss and PSPL weight statistics over the global batch: each rank computed them on its shard,
    so the means are averaged across the ``world`` ranks and the minima and maxima combined (three
    all-reduces per epoch). The update is the same on every rank (DDP's gradients are). A no-op for one process."""
    if world == 1:
        return steps
    sharded = ShardedBatch(world)
    loss = sharded.mean(steps.loss)
    weights = steps.weights
    if weights is not None:
        weights = torch.stack([sharded.mean(weights[:, 0]), sharded.min(weights[:, 1]), sharded.max(weights[:, 2])], 1)
    return dataclasses.replace(steps, loss=loss, weights=weights)


# ---- closing an epoch ------------------------------------------------------------------------------------

def history_row(run: Run, epoch: int, steps: EpochSteps, train_seconds: float) -> dict:
    """The epoch's history row from its steps (``wall_time`` still 0: the caller adds it once the epoch is
    evaluated); its step sizes per tenth of an epoch (``update_blocks``) join ``run.updates``."""
    c = run.c
    att = steps.weights.cpu() if steps.weights is not None else torch.full((1, 3), math.nan)
    blocks = update_blocks(c, epoch, steps)
    run.updates += blocks
    return dict(epoch=epoch + 1, iteration=(epoch + 1) * c.iters_per_epoch, wall_time=0.0, train_time=train_seconds,
                loss=steps.loss.mean().item(), lr=learning_rate(c, epoch, epoch + 1.0), age=epoch + 1.0,
                att_mean=att[:, 0].mean().item(), att_min=att[:, 1].min().item(), att_max=att[:, 2].max().item(),
                update_rms=float(np.mean([b["update_rms"] for b in blocks])),
                update_per_lr=float(np.mean([b["update_per_lr"] for b in blocks])))


def update_blocks(c: RunConfig, epoch: int, steps: EpochSteps) -> list[dict]:
    """The epoch's steps in ``BLOCKS`` consecutive blocks (fewer when the epoch is shorter): per block its
    ``age`` at the end (epochs), ``steps``, mean ``lr``, mean ``update_rms`` (RMS parameter change per step),
    mean ``update_per_lr`` (that change divided by each step's lr: Adam's normalised step, 1 at most
    roughly), mean ``loss`` and mean PSPL weight ``att_mean`` (NaN without PSPL). Rows of updates.csv."""
    n = len(steps.lr)
    rms = steps.update.double().cpu().numpy()
    loss = steps.loss.double().cpu().numpy()
    att = steps.weights[:, 0].double().cpu().numpy() if steps.weights is not None else np.full(n, math.nan)
    # a step at lr 0 (the start of an lr ramp) moves nothing: it has no size per unit lr (NaN, not 0/0's warning)
    per_lr = np.divide(rms, steps.lr, out=np.full(n, math.nan), where=steps.lr > 0)
    edges = np.unique(np.linspace(0, n, min(BLOCKS, n) + 1).round().astype(int))
    return [dict(epoch=epoch + 1, age=epoch + hi / c.iters_per_epoch, steps=hi - lo, lr=steps.lr[lo:hi].mean(),
                 update_rms=rms[lo:hi].mean(), update_per_lr=per_lr[lo:hi].mean(),
                 loss=loss[lo:hi].mean(), att_mean=att[lo:hi].mean())
            for lo, hi in zip(edges[:-1], edges[1:])]


def evaluate_epoch(run: Run, epoch: int, evaluation: dict, row: dict) -> None:
    """Score the model on every set of ``evaluation`` (``load_evaluation``: the leader's): the means go into
    ``row`` as ``psnr_<set>``, ``ssim_<set>`` (and ``edsr_psnr_<set>`` on non-benchmark sets), each image's
    scores into ``run.images``."""
    c = run.c
    for name, pairs in evaluation.items():
        scores = evaluate(run.model, pairs, c.scale, c.channels, c.rgb_range, run.device,
                          edsr_metric=name not in TEST_SETS)
        row[f"psnr_{name}"], row[f"ssim_{name}"] = scores.psnr.mean(), scores.ssim.mean()
        if "edsr_psnr" in scores:
            row[f"edsr_psnr_{name}"] = scores.edsr_psnr.mean()
        run.images += scores.assign(epoch=epoch + 1, set=name).to_dict("records")


def save_epoch(run: Run) -> None:
    """The leader writes what the run's last epoch changed: best.pt (when its validation PSNR is the best so
    far), last.pt (everything ``resume`` needs), history.csv, eval_scores.csv, updates.csv, attention.npz."""
    if not run.ranks.leader:
        return
    c, row = run.c, run.rows[-1]
    if row[f"psnr_{c.val_set}"] > run.best:
        run.best = row[f"psnr_{c.val_set}"]
        atomic_write(run.folder / "best.pt", lambda p: torch.save(
            dict(model=run.model.state_dict(), epoch=run.epoch, config=c.to_dict()), p))
    checkpoint = dict(model=run.model.state_dict(), optimizer=run.optimizer.state_dict(), epoch=run.epoch,
                      history=run.rows, images=run.images, updates=run.updates, best=run.best, snapshots=run.snaps.taken,
                      snapshots_pending=run.snaps.pending, config=c.to_dict(), rng=rng_states(run.device))
    atomic_write(run.last, lambda p: torch.save(checkpoint, p))
    atomic_write(run.folder / "history.csv", lambda p: pd.DataFrame(run.rows).to_csv(p, index=False))
    atomic_write(run.folder / "eval_scores.csv", lambda p: image_table(run.images).to_csv(p, index=False))
    atomic_write(run.folder / "updates.csv", lambda p: pd.DataFrame(run.updates).to_csv(p, index=False))
    run.snaps.save(run.folder / "attention.npz")


def image_table(records: list) -> pd.DataFrame:
    """Per-image scores of every evaluation: columns epoch, set, image, psnr (dB), ssim (and edsr_psnr, dB)."""
    table = pd.DataFrame(records, columns=None if records else ["epoch", "set", "image", "psnr", "ssim"])
    return table[["epoch", "set", "image", *[k for k in ("psnr", "ssim", "edsr_psnr") if k in table]]]


# ---- finishing the run -----------------------------------------------------------------------------------

def score_test_sets(run: Run, data_root) -> None:
    """The leader scores the final model on every image of ``test_sets``: per-image ``test_scores.csv``, and
    the means as ``psnr_<set>`` / ``ssim_<set>`` in the last history row (the row Table 1 reads)."""
    c = run.c
    if not (c.test_sets and run.ranks.leader and run.rows) or f"psnr_{c.test_sets[-1]}" in run.rows[-1]:
        return
    tables = []
    for name in c.test_sets:
        scores = evaluate(run.model, load_eval_set(name, c.scale, root=data_root), c.scale, c.channels,
                          c.rgb_range, run.device)
        run.rows[-1][f"psnr_{name}"], run.rows[-1][f"ssim_{name}"] = scores.psnr.mean(), scores.ssim.mean()
        tables.append(scores.assign(set=name))
    atomic_write(run.folder / "test_scores.csv", lambda p: pd.concat(tables).to_csv(p, index=False))
    atomic_write(run.folder / "history.csv", lambda p: pd.DataFrame(run.rows).to_csv(p, index=False))


def check_ranks_agree(run: Run) -> None:
    """Every DDP rank must end with the same weights, or the DDP run is wrong (nothing to check in one process)."""
    if run.ranks.world == 1:
        return
    flat = torch.cat([p.detach().float().flatten() for p in run.model.parameters()])
    sums = [torch.zeros(2, device=flat.device) for _ in range(run.ranks.world)]
    dist.all_gather(sums, torch.stack([flat.sum(), flat.abs().sum()]))
    if not all(torch.allclose(s, sums[0], rtol=1e-6) for s in sums):
        raise RuntimeError(f"{run.c.run_id()}: DDP ranks ended with different weights: {sums}")


# ---- the command line ------------------------------------------------------------------------------------

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value typed like the RunConfig field); tuples are comma separated, booleans
    one of true/false, yes/no, on/off, 1/0. ValueError (one line naming the field) for a value of another type."""
    key, _, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    if key not in fields:
        raise ValueError(f"--set {text}: unknown RunConfig field {key!r}")
    default = fields[key].default
    if value.lower() == "none":
        return key, None
    if isinstance(default, bool):
        if value.lower() not in TRUE + FALSE:
            raise ValueError(f"--set {text}: RunConfig.{key} is true or false (also yes/no, on/off, 1/0)")
        return key, value.lower() in TRUE
    if isinstance(default, tuple):
        return key, tuple(_scalar(v) for v in value.split(",") if v)
    kind = int if isinstance(default, int) or key == "eval_limit" else float if isinstance(default, float) else str
    try:
        return key, kind(value)
    except ValueError:
        what = {int: "an integer", float: "a number"}[kind]
        example = default if default is not None else 10
        raise ValueError(f"--set {text}: RunConfig.{key} must be {what}, e.g. {key}={example}") from None


def _scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.train", description="Train one PSPL-kit run.")
    p.add_argument("--profile", default="smoke", choices=tuple(PROFILES))
    p.add_argument("--model", default="edsr_baseline")
    p.add_argument("--pspl", choices=("on", "off"), default="on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any RunConfig field")
    p.add_argument("--results", default=None)
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    try:
        overrides = dict(parse_override(s) for s in a.set)
        chosen = dict(model=a.model, seed=a.seed, weighting="pspl" if a.pspl == "on" else "none")
        c = profile(a.profile, **{**chosen, **overrides})
    except ValueError as e:
        p.error(str(e))
    history = train(c, force=a.force, results=a.results)
    if int(os.environ.get("RANK", "0")) == 0:
        print(history.attrs["run_dir"])
        print(history.drop(columns=["att_min", "att_max"]).to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
