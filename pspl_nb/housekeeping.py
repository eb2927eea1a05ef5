"""What killed processes leave behind, and the trained runs a user deletes on purpose.

Temporary names. Every temporary file or folder the kit writes names its writer, ``<pid>@<host>``
(``temp_name``, ``temp_prefix``): ``.last.pt.4242@node1.9f3c2a71b0de.tmp``. ``sweep`` removes only the
ones whose writer is gone, so a process never deletes what another is still writing, even in a folder
that several machines share (there a file of another host is removed only when it is a day old, since
its pid cannot be checked from here). Names from before the writer was recorded are also removed after
a day.

Deleting runs. ``make clean`` keeps every trained run; ``make clean-runs`` (``clean_runs``) says how many
runs and how many hours of training it would delete, and deletes only after a typed "yes" or with
``FORCE=1``.

Standard library only: ``make clean-runs`` runs this module with the system Python, before or after
``.venv`` exists.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

STALE_AFTER_S = 24 * 3600  # a temporary file whose writer cannot be checked is removed at this age
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TAGGED = re.compile(r"\.(\d+)@([A-Za-z0-9-]+)\.")
# Temporary names written before they carried their writer: <x>.<32 hex>.tmp, .embedded-*, .standin-*,
# <folder>.old-<32 hex>, cache .<name>.<32 hex>.npy/.json, <file>.<32 hex> (download records).
_LEGACY = re.compile(r"^\..*\.[0-9a-f]{32}(\.tmp|\.npy|\.json)?$|^\.(embedded|standin)-|\.old-[0-9a-f]{32}$")


def owner_tag() -> str:
    """``<pid>@<host>`` of this process, the writer recorded in every temporary name."""
    return f"{os.getpid()}@{_HOST}"


def temp_name(name: str, suffix: str = ".tmp") -> str:
    """A unique hidden temporary name for a file ``name``: ``.<name>.<pid>@<host>.<12 hex><suffix>``."""
    return f".{name}.{owner_tag()}.{uuid.uuid4().hex[:12]}{suffix}"


def temp_prefix(name: str) -> str:
    """A ``tempfile.mkdtemp`` prefix for a temporary folder of ``name``: ``.<name>.<pid>@<host>.``."""
    return f".{name}.{owner_tag()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:  # a zombie has exited: its writes are over
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary name of the kit (hidden, with a writer tag or an older pattern)."""
    return name.startswith(".") and bool(_TAGGED.search(name) or _LEGACY.search(name))


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether temporary ``path`` is left over: its writer (from the name) has exited, or, when the writer
    cannot be checked (another host, or a name without one), it is older than ``STALE_AFTER_S``."""
    tag = _TAGGED.search(path.name)
    if tag and tag[2] == _HOST:
        return not _pid_alive(int(tag[1]))
    try:
        return (time.time() if now is None else now) - path.lstat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def sweep(folder: Path, any_name: bool = False) -> list[Path]:
    """Remove the stale temporary entries of ``folder`` (not recursive); returns what was removed.

    Only entries with a temporary name (``is_temporary``) are considered, unless ``any_name``: a folder
    that holds nothing but temporary entries, such as ``<data root>/.tmp``. Errors (a read-only folder,
    an entry another process removes first) are ignored: sweeping is never why something fails.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        if not (any_name or is_temporary(path.name)) or not is_stale(path):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def sweep_data_root(root: Path) -> list[Path]:
    """``sweep`` every place the data code writes temporary entries: the root (set builds, records),
    ``.tmp`` (extractions), ``.fetched``, ``downloads`` (never a ``.part``: it is kept to resume), each set
    folder (folders replaced during an install) and its ``cache``."""
    root = Path(root)
    removed = sweep(root) + sweep(root / ".tmp", any_name=True) + sweep(root / ".fetched") + sweep(root / "downloads")
    try:
        sets = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        sets = []
    for folder in sets:
        removed += sweep(folder) + sweep(folder / "cache")
    return removed


# ---- make clean-runs -------------------------------------------------------------------------------------

# What `make clean-runs` deletes: every folder of trained runs, and the notebook outputs of the GPU profiles
RUN_FOLDERS = ("runs", "rehearse", "gpu", "paper")


def trained_runs(results: Path) -> list[Path]:
    """Run folders (holding ``config.json``) under ``RUN_FOLDERS`` of ``results``."""
    results = Path(results)
    return sorted(p.parent for name in RUN_FOLDERS for p in (results / name).rglob("config.json")
                  if p.parent.parent.name == "runs")


def training_hours(run: Path) -> float:
    """Hours a run trained: the cumulative ``wall_time`` (s) of the last row of its ``history.csv`` (0 if none)."""
    try:
        with open(run / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return float(rows[-1]["wall_time"]) / 3600 if rows else 0.0
    except (OSError, KeyError, ValueError):
        return 0.0


def clean_runs(results: Path, force: bool = False, answer=None, out=print) -> int:
    """Delete ``RUN_FOLDERS`` under ``results`` after saying what they hold; returns an exit status.

    ``answer()`` gives the user's reply (default: a line of standard input); only "yes" deletes, unless
    ``force``. Returns 0 when deleted or nothing was there, 1 when not confirmed.
    """
    results = Path(results)
    folders = [results / name for name in RUN_FOLDERS if (results / name).exists()]
    if not folders:
        out(f"no trained runs under {results}: nothing to delete")
        return 0
    runs = trained_runs(results)
    hours = sum(training_hours(r) for r in runs)
    counted = f"{len(runs)} trained run{'s' * (len(runs) != 1)}"
    out(f"this deletes {counted} ({hours:.1f} h of training) and the notebook outputs in "
        + ", ".join(str(f) for f in folders))
    if not force:
        out("type yes to delete them (or run make clean-runs FORCE=1): ", end="")
        reply = (answer or sys.stdin.readline)()
        if reply.strip().lower() != "yes":
            out("\nnothing deleted")
            return 1
    for folder in folders:
        shutil.rmtree(folder)
    out(f"deleted {counted}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.housekeeping", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("clean-runs", help="delete every trained run, after saying what and asking")
    cmd.add_argument("--results", default="results", help="results folder (default: results)")
    cmd.add_argument("--force", action="store_true", help="do not ask")
    a = p.parse_args(argv)
    return clean_runs(Path(a.results), a.force, out=lambda *s, **kw: print(*s, **kw, flush=True))


if __name__ == "__main__":
    sys.exit(main())
