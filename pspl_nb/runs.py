"""A run's folder: where it lives, how its files are written, who may write them, and how to read it back.

Each run lives in ``<results>/runs/<run_id>/``::

    config.json     the RunConfig (RunConfig.load gives it back)
    meta.json       code version, torch, device, numerics, loader, state ("running" / "finished") and one
                    entry per process session that trained it (which epochs, which host and pid)
    history.csv     one row per epoch (see ``pspl_nb.train.train``)
    last.pt         everything needed to resume (model, optimiser, age, history, snapshots)
    best.pt         model weights of the best validation-PSNR epoch (validation set, never a test set)
    attention.npz   the attention map of a fixed validation crop at ``config.attention_steps``
    test_scores.csv per-image scores of the final model on ``config.test_sets``
    .lock           held by the one process training the run

Two processes asked for the same run (two notebooks, a grid with a duplicate, two GPUs) never both train
it: the first takes the folder's lock, the second waits for it and then loads the finished run (or resumes
it, if the first died). Every file is written under a unique temporary name and renamed into place, so a
kill leaves the old file or the new one, never half of one.
"""
import json
import os
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock, Timeout

from pspl_nb.config import RunConfig
from pspl_nb.models import build_model


def results_root() -> Path:
    """Where runs and notebook outputs go: ``$PSPL_RESULTS`` if set, else ``<repo>/results``."""
    env = os.environ.get("PSPL_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "results"


def run_folder(c: RunConfig, results=None) -> Path:
    """``<results>/runs/<run_id>`` (not created)."""
    return Path(results or results_root()) / "runs" / c.run_id()


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


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a kill leaves either the old file or the new one.

    The temporary name is unique per call, so two writers can never interleave inside one temporary file.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_json(path: Path, obj) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def read_meta(folder: Path) -> dict:
    """``meta.json`` of a run folder, {} if there is none yet."""
    path = folder / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_finished(folder: Path) -> bool:
    return read_meta(folder).get("state") == "finished"


@contextmanager
def run_lock(folder: Path, quiet: bool = False):
    """Hold ``<folder>/.lock`` for the body; if another process holds it, say so and wait for it.

    The lock is an OS file lock (``filelock``): it is released when its holder exits, even by SIGKILL, so a
    crashed run never blocks the next attempt, which then resumes from ``last.pt``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not quiet:
            print(f"{folder.name}: another process is training this run; waiting for it", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def session_entry(start_epoch: int) -> dict:
    """Who trains now: recorded in ``meta.json`` so a reader sees which process trained which epochs."""
    return dict(start_epoch=start_epoch, end_epoch=start_epoch, host=socket.gethostname(), pid=os.getpid())


def load_history(folder: Path) -> pd.DataFrame:
    """The ``history.csv`` of a run folder, with ``attrs`` run_dir and config."""
    h = pd.read_csv(folder / "history.csv")
    h.attrs.update(run_dir=str(folder), config=RunConfig.load(folder / "config.json"))
    return h


def load_model(c: RunConfig, which: str = "best", results=None, device="cpu") -> torch.nn.Module:
    """The trained model of a finished (or running) run: ``which`` = "best" (validation PSNR) or "last"."""
    path = run_folder(c, results) / f"{which}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train(config) first")
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=False)["model"])
    return model.to(device).eval()
