"""Train one run: ``train(config) -> history``, resumable, self-describing and written atomically.

Each run lives in ``results/runs/<run_id>/``::

    config.json     the RunConfig (RunConfig.load gives it back)
    meta.json       code version, torch, device, state ("running" / "finished")
    history.csv     one row per epoch: iteration, wall time, loss, lr, PSPL age and attention stats,
                    PSNR / SSIM on every evaluation set
    last.pt         everything needed to resume (model, optimiser, age, history, RNG, snapshots)
    best.pt         model weights of the best validation-PSNR epoch (validation set, never a test set)
    attention.npz   the attention map of a fixed validation crop at ``config.attention_steps``

The PSPL age counts fractional epochs as the official code does (+1/iters_per_epoch before every loss
call) and, unlike the official code, is restored on resume. The learning rate is a pure function of
(epoch, age), so resuming needs no scheduler state.
"""
import argparse
import dataclasses
import json
import math
import os
import random
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from pspl_nb.config import RunConfig, profile, PROFILES
from pspl_nb.data import TrainPatches, load_eval_set
from pspl_nb.evaluate import as_channels, evaluate, to_tensor
from pspl_nb.models import build_model
from pspl_nb.pspl import PSPLLoss, pixel_loss



def results_root() -> Path:
    """Where runs and notebook outputs go: ``$PSPL_RESULTS`` if set, else ``<repo>/results``."""
    env = os.environ.get("PSPL_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "results"


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the run stops and its last good checkpoint is kept."""


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return torch.device(name)


def code_version() -> str:
    """``git describe`` of the kit's checkout (with ``-dirty``), or the package version outside git."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    from pspl_nb import __version__
    return __version__


def learning_rate(c: RunConfig, epoch: int, age: float) -> float:
    """lr of an iteration of 0-based ``epoch`` at PSPL ``age``: step decay at milestones, linear warm-up."""
    lr = c.lr * c.lr_decay ** sum(epoch >= m for m in c.milestones)
    return lr * min(1.0, age / c.warmup_epochs) if c.warmup_epochs > 0 else lr


def make_criterion(c: RunConfig):
    """The run's loss as ``f(sr, hr, age) -> scalar``; a PSPLLoss (``.last_attention``) unless weighting is none."""
    if c.weighting == "none":
        return lambda sr, hr, age: pixel_loss(sr, hr, c.base, 1e-3 * c.rgb_range)
    return PSPLLoss(c.base, c.gamma, c.mu, c.alpha, c.beta, c.ssim, c.padding, c.rgb_range,
                    pixelwise=c.weighting == "pspl", check_finite=False)


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a kill leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_json(path: Path, obj) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


class Snapshotter:
    """The attention PSPL gives a fixed validation crop (first image of ``val_set``) at chosen ages."""

    def __init__(self, c: RunConfig, root=None):
        pair = load_eval_set(c.val_set, c.scale, root=root, limit=1)[0]
        lr = as_channels(pair.lr, c.channels)
        side = min(48, lr.shape[0], lr.shape[1])  # LR crop; HR crop is side * scale
        top, left = (lr.shape[0] - side) // 2, (lr.shape[1] - side) // 2
        s = c.scale
        self.lr = lr[top:top + side, left:left + side]
        self.hr = as_channels(pair.hr, c.channels)[s * top:s * (top + side), s * left:s * (left + side)]
        self.loss = PSPLLoss(c.base, c.gamma, c.mu, c.alpha, c.beta, c.ssim, c.padding, c.rgb_range)
        self.c, self.pending, self.taken = c, sorted(c.attention_steps), []

    @torch.no_grad()
    def maybe_take(self, model, age: float, device) -> None:
        if not self.pending or age < self.pending[0]:
            return
        while self.pending and age >= self.pending[0]:
            self.pending.pop(0)
        model.eval()
        sr = model(to_tensor(self.lr, self.c.rgb_range, device)).float().clamp(0, self.c.rgb_range)
        model.train()
        self.loss(sr, to_tensor(self.hr, self.c.rgb_range, device), age)
        self.taken.append(dict(age=age, sr=(sr[0] * 255 / self.c.rgb_range).round().byte().cpu().numpy(),
                               attention=self.loss.last_attention[0].cpu().numpy().astype(np.float32)))

    def save(self, path: Path) -> None:
        if not self.taken:
            return
        arrays = dict(ages=np.array([t["age"] for t in self.taken]), lr=self.lr, hr=self.hr,
                      sr=np.stack([t["sr"] for t in self.taken]),
                      attention=np.stack([t["attention"] for t in self.taken]))
        atomic_write(path, lambda p: np.savez_compressed(open(p, "wb"), **arrays))


def attention_stats(a: torch.Tensor) -> torch.Tensor:
    """(mean, min, max) of an attention map as a (3,) tensor on its device: two passes, no synchronisation."""
    return torch.stack([a.mean(), *torch.aminmax(a)])


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


def rank_batches(iters: int, batch: int, rank: int, world: int):
    """Index lists per iteration: rank r of ``world`` takes its slice of the global batch, so DDP sees
    exactly the samples a single process would."""
    per_rank = batch // world
    return [list(range(t * batch + rank * per_rank, t * batch + (rank + 1) * per_rank)) for t in range(iters)]


def load_history(run_dir: Path) -> pd.DataFrame:
    """The ``history.csv`` of a run folder, with ``attrs`` run_dir and config."""
    h = pd.read_csv(run_dir / "history.csv")
    h.attrs.update(run_dir=str(run_dir), config=RunConfig.load(run_dir / "config.json"))
    return h


def load_model(c: RunConfig, which: str = "best", results=None, device="cpu") -> torch.nn.Module:
    """The trained model of a finished (or running) run: ``which`` = "best" (validation PSNR) or "last"."""
    path = Path(results or results_root()) / "runs" / c.run_id() / f"{which}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train(config) first")
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=False)["model"])
    return model.to(device).eval()


def train(c: RunConfig, force: bool = False, results=None, data_root=None, progress=None) -> pd.DataFrame:
    """Train (or load, or resume) the run described by ``c``; returns its per-epoch history.

    Args:
        c: the run's configuration; its ``run_id()`` names the folder ``<results>/runs/<run_id>``.
        force: retrain from scratch even if the run finished before.
        results: results folder (default ``results_root()``); data_root: data folder (default ``data/``).
        progress: show a tqdm bar; None = on unless the ``CI`` environment variable is set.

    Returns:
        DataFrame, one row per epoch (``epoch`` 1..epochs): ``iteration, wall_time`` (s), ``loss``
        (train, mean over the epoch), ``lr``, ``age`` (PSPL step, epochs), ``att_mean, att_min, att_max``
        (PSPL weights over the epoch; NaN without PSPL), then ``psnr_<set>`` (dB) and ``ssim_<set>`` for
        each evaluation set. ``attrs["run_dir"]`` and ``attrs["config"]`` say where and how it was made.
    Raises:
        NonFiniteLoss: the loss became NaN/inf (the last good checkpoint stays).
    """
    run_dir = Path(results or results_root()) / "runs" / c.run_id()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and c.device != "cpu" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if c.batch % world:
        raise ValueError(f"RunConfig.batch={c.batch}: must be divisible by the {world} DDP processes")
    meta_path = run_dir / "meta.json"
    if not force and meta_path.exists() and json.loads(meta_path.read_text()).get("state") == "finished":
        return load_history(run_dir)

    device = resolve_device(c.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(c.seed)
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, betas=(0.9, 0.999), eps=1e-8)
    criterion = make_criterion(c)
    snaps = Snapshotter(c, data_root)
    rows, start_epoch, best = [], 0, -math.inf

    last = run_dir / "last.pt"
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if force:
            for f in ("last.pt", "best.pt", "history.csv", "attention.npz"):
                (run_dir / f).unlink(missing_ok=True)
        c.save(run_dir / "config.json")
        save_json(meta_path, dict(run_id=c.run_id(), state="running", code_version=code_version(),
                                  torch=torch.__version__, device=str(device), world_size=world))
    if world > 1:
        dist.barrier()
    if last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        rows, start_epoch, best = ck["history"], ck["epoch"], ck["best"]
        snaps.pending, snaps.taken = ck["snapshots_pending"], ck["snapshots"]
        torch.set_rng_state(ck["rng"]["torch"])
        np.random.set_state(ck["rng"]["numpy"])
        random.setstate(ck["rng"]["python"])

    net = model.to(memory_format=torch.channels_last) if c.channels_last else model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if c.compile:
        net = torch.compile(net)
    try:
        data = TrainPatches(c.dataset, c.scale, c.patch, c.batch, c.iters_per_epoch, c.seed,
                            y_channel=c.channels == "y", root=data_root)
    except ValueError as e:
        raise ValueError(f"RunConfig.patch={c.patch}: {e}") from None
    eval_sets = {name: load_eval_set(name, c.scale, root=data_root, limit=c.eval_limit) for name in c.eval_sets}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.amp and device.type == "cuda")
    show = (not os.environ.get("CI")) if progress is None else progress
    bar = tqdm(total=c.epochs * c.iters_per_epoch, initial=start_epoch * c.iters_per_epoch,
               desc=c.run_id(), disable=not show or rank != 0, leave=False)
    wall = rows[-1]["wall_time"] if rows else 0.0

    for epoch in range(start_epoch, c.epochs):
        t0 = time.perf_counter()
        data.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(data, batch_sampler=rank_batches(c.iters_per_epoch, c.batch, rank, world),
                                             num_workers=c.workers, pin_memory=device.type == "cuda")
        loss_sum, att = 0.0, []
        for i, (lr_img, hr_img) in enumerate(loader):
            age = epoch + (i + 1) / c.iters_per_epoch  # official: +1/iters before each loss call
            for g in optimizer.param_groups:
                g["lr"] = learning_rate(c, epoch, age)
            scale = c.rgb_range / 255.0
            lr_img = lr_img.to(device, non_blocking=True).float().mul_(scale)
            hr_img = hr_img.to(device, non_blocking=True).float().mul_(scale)
            if c.channels_last:
                lr_img = lr_img.contiguous(memory_format=torch.channels_last)
            loss = train_step(net, criterion, optimizer, lr_img, hr_img, age, amp)
            # read after the step is queued: one synchronisation per step, none between forward and backward
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLoss(f"{c.run_id()}: loss={value} at epoch {epoch + 1}, iteration {i + 1}; "
                                    f"last good checkpoint: {last}")
            loss_sum += value
            if c.pspl:  # kept on the device: no extra synchronisation per step
                att.append(attention_stats(criterion.last_attention))
            if rank == 0:
                snaps.maybe_take(model, age, device)
            bar.update(1)
        n = c.iters_per_epoch
        att = torch.stack(att).cpu() if att else torch.full((1, 3), math.nan)
        row = dict(epoch=epoch + 1, iteration=(epoch + 1) * n, wall_time=0.0, loss=loss_sum / n,
                   lr=learning_rate(c, epoch, epoch + 1.0), age=epoch + 1.0, att_mean=att[:, 0].mean().item(),
                   att_min=att[:, 1].min().item(), att_max=att[:, 2].max().item())
        if rank == 0:
            for name, pairs in eval_sets.items():
                scores = evaluate(model, pairs, c.scale, c.channels, c.rgb_range, device)
                row[f"psnr_{name}"], row[f"ssim_{name}"] = scores.psnr.mean(), scores.ssim.mean()
            wall += time.perf_counter() - t0
            row["wall_time"] = wall
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}", psnr=f"{row[f'psnr_{c.val_set}']:.2f}")
            if row[f"psnr_{c.val_set}"] > best:
                best = row[f"psnr_{c.val_set}"]
                atomic_write(run_dir / "best.pt", lambda p: torch.save(
                    dict(model=model.state_dict(), epoch=epoch + 1, config=c.to_dict()), p))
            checkpoint = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch + 1,
                              history=rows, best=best, snapshots=snaps.taken, snapshots_pending=snaps.pending,
                              config=c.to_dict(), rng=dict(torch=torch.get_rng_state(),
                                                           numpy=np.random.get_state(), python=random.getstate()))
            atomic_write(last, lambda p: torch.save(checkpoint, p))
            atomic_write(run_dir / "history.csv", lambda p: pd.DataFrame(rows).to_csv(p, index=False))
            snaps.save(run_dir / "attention.npz")
        if world > 1:
            dist.barrier()
    bar.close()

    if world > 1:
        # every rank must end with the same weights, or the DDP run is wrong
        flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
        sums = [torch.zeros(2, device=flat.device) for _ in range(world)]
        dist.all_gather(sums, torch.stack([flat.sum(), flat.abs().sum()]))
        agree = all(torch.allclose(s, sums[0], rtol=1e-6) for s in sums)
        if not agree:
            raise RuntimeError(f"{c.run_id()}: DDP ranks ended with different weights: {sums}")
    if rank == 0:
        meta = json.loads(meta_path.read_text())
        meta.update(state="finished", ranks_agree=True if world > 1 else None)
        save_json(meta_path, meta)
    if world > 1:
        dist.barrier()
    return load_history(run_dir)


def _scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value typed like the RunConfig field); tuples are comma separated."""
    key, _, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    if key not in fields:
        raise ValueError(f"--set {text}: unknown RunConfig field {key!r}")
    default = fields[key].default
    if value.lower() == "none":
        return key, None
    if isinstance(default, bool):
        return key, value.lower() in ("1", "true", "yes", "on")
    if isinstance(default, tuple):
        return key, tuple(_scalar(v) for v in value.split(",") if v)
    if isinstance(default, int) or key == "eval_limit":
        return key, int(value)
    if isinstance(default, float):
        return key, float(value)
    return key, value


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
