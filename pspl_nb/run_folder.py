"""A run's folder: where it lives, which files it holds, who may write them, and how to read it back.

Each run lives in ``<results>/runs/<run_id>/``: ``config.json`` (the RunConfig; ``RunConfig.load`` gives it
back), the files of ``RUN_FILES`` and ``.lock``, held by the one process training the run.

Two processes asked for the same run (two notebooks, a grid with a duplicate, two GPUs) never both train
it: the first takes the folder's lock, the second waits for it and then loads the finished run (or resumes
it, if the first died). Every file is written with ``atomic.atomic_write``, so a kill leaves the old file or
the new one, never half of one; the temporary file a kill leaves behind is removed by the next process that
takes the lock. A finished run in a read-only results folder loads without the lock. A file that is
damaged, missing or cannot be written (a full disk) gives one line naming it and what to do.
"""
import errno
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock, Timeout

from pspl_nb.config import RunConfig
from pspl_nb.housekeeping import sweep
from pspl_nb.models import build_model
from pspl_nb.places import results_root

RUN_FILES = {  # what training writes into a run's folder besides config.json; force=True deletes them in this order
    "last.pt": "everything needed to resume: model, optimiser, age, history, snapshots, random states",
    "best.pt": "model weights of the best validation-PSNR epoch (validation set, never a test set)",
    "history.csv": "one row per epoch (pspl_nb.train.train)",
    "attention.npz": "the attention map of a fixed validation crop at config.attention_steps",
    "test_scores.csv": "per-image scores of the final model on config.test_sets",
    "eval_scores.csv": "per-image scores of every evaluation",
    "updates.csv": "step sizes per tenth of an epoch",
    "meta.json": "code version, torch, device, numerics, loader, state (running / finished / diverged), the "
                 "data's fingerprint and one entry per process session that trained it (epochs, host, pid)",
}


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


def read_meta(folder: Path) -> dict:
    """``meta.json`` of a run folder, {} if there is none yet; ValueError naming the file if it is damaged."""
    path = folder / "meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
        if isinstance(meta, dict):
            return meta
        problem = f"holds a JSON {type(meta).__name__}, not an object"
    except (ValueError, UnicodeDecodeError) as e:
        problem = f"is not valid JSON ({e})"
    raise ValueError(f"{path} {problem}: delete it, and the next train(config) of this run resumes from last.pt "
                     "and writes it again")


def is_finished(folder: Path) -> bool:
    return read_meta(folder).get("state") == "finished"


_HELD = set()  # (run folder, thread) of every run lock this process holds


@contextmanager
def run_lock(folder: Path, quiet: bool = False):
    """Hold ``<folder>/.lock`` for the body; if another process holds it, say so and wait for it.

    The lock is an OS file lock (``filelock``): it is released when its holder exits, even by SIGKILL, so a
    crashed run never blocks the next attempt, which then resumes from ``last.pt``; the temporary files
    such a crash left are removed once the lock is taken. A finished run in a folder where the lock cannot
    be created (read-only results) is entered without it: nothing will be written. Raises RuntimeError when
    this thread already holds the lock (a ``train_epochs`` generator of the run left open), PermissionError
    when an unfinished run's folder is not writable.
    """
    key = (os.path.realpath(folder), threading.get_ident())
    if key in _HELD:
        raise RuntimeError(f"{folder.name} is already open in this thread: a train_epochs generator of this run "
                           "was left unfinished (a stopped loop or race); call its .close() or run it to the end "
                           "first, or restart the kernel")
    lock = _acquire(folder, quiet)
    _HELD.add(key)
    try:
        if lock is not None:
            sweep(folder)  # what killed writers of this run left: every writer is gone while we hold the lock
        yield
    finally:
        _HELD.discard(key)
        if lock is not None:
            lock.release()


def _acquire(folder: Path, quiet: bool) -> FileLock | None:
    """The folder's lock, acquired (waiting for another holder); None for a finished run that cannot be locked."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not quiet:
                print(f"{folder.name}: another process is training this run; waiting for it", file=sys.stderr)
            lock.acquire()
        return lock
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        if is_finished(folder):
            return None
        denied = PermissionError(f"{folder}: cannot write there ({err.strerror}), so this unfinished run cannot "
                                 "train; set PSPL_RESULTS (or results=) to a writable folder")
        denied.errno = err.errno  # set, not passed: OSError(code, text) would print "[Errno 13]"
        raise denied from None


def session_entry(start_epoch: int) -> dict:
    """Who trains now: recorded in ``meta.json`` so a reader sees which process trained which epochs."""
    return dict(start_epoch=start_epoch, end_epoch=start_epoch, host=socket.gethostname(), pid=os.getpid())


def load_history(folder: Path) -> pd.DataFrame:
    """The ``history.csv`` of a run folder, with ``attrs`` run_dir and config; a missing or damaged file
    gives one line naming it."""
    path = folder / "history.csv"
    try:
        h = pd.read_csv(path)
    except FileNotFoundError:
        if is_finished(folder):
            raise FileNotFoundError(f"{path} is missing although meta.json says the run finished: restore it, or "
                                    "retrain the run with force=True (--force)") from None
        raise FileNotFoundError(f"{path} is missing: the run has not finished an epoch yet") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}): restore it, or retrain the run with "
                         "force=True (--force)") from None
    h.attrs.update(run_dir=str(folder), config=RunConfig.load(folder / "config.json"))
    return h


def load_checkpoint(path: Path, device="cpu") -> dict:
    """A run's checkpoint (``last.pt``, ``best.pt``) as saved, tensors on ``device``.

    Raises FileNotFoundError when it is not there, ValueError (one line naming the file and the fix) when
    it does not load: truncated, emptied or overwritten.
    """
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:
        why = (str(e).splitlines() or [""])[0]
        raise ValueError(f"{path} is damaged and does not load ({type(e).__name__}: {why}): delete it; without "
                         "last.pt a run trains again from epoch 0 (force=True retrains from scratch)") from None


def load_model(c: RunConfig, which: str = "best", results=None, device="cpu") -> torch.nn.Module:
    """The trained model of a finished (or running) run: ``which`` = "best" (validation PSNR) or "last"."""
    path = run_folder(c, results) / f"{which}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train(config) first")
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range)
    model.load_state_dict(load_checkpoint(path, device)["model"])
    return model.to(device).eval()
