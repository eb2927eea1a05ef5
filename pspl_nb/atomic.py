"""Files and folders written so that a kill leaves the old version or the new one, never half of one.

Everything is written under a temporary name that names its writer (``housekeeping.temp_name``) and renamed
into place: ``atomic_write`` for a file (``write_json`` for JSON), ``staging_folder`` and ``replace_folder``
for a folder built beside its final place. What a killed writer leaves is recognised by its name and swept
later (``housekeeping.sweep``). A file that fails for lack of space raises ``DiskFullError``, one line
naming the file, the space free and the space needed.
"""
import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from pspl_nb.housekeeping import sweep, temp_name, temp_prefix

FULL_BELOW_BYTES = 1 << 20  # a write that fails with less than this free on its disk failed for lack of space


class DiskFullError(OSError):
    """A file could not be written for lack of disk space; the previous version of the file is intact."""


def atomic_write(path: Path, write, setting: str = "PSPL_RESULTS") -> None:
    """``write(tmp_path)`` then rename over ``path``: a kill leaves either the old file or the new one.

    The temporary name is unique per call, so two writers can never interleave inside one temporary file;
    it is removed whatever happens. Raises DiskFullError (one line: the file, the space free and needed, and
    the environment variable ``setting`` that moves the folder) when the disk filled up, whether the writer
    reports it as ``ENOSPC`` or, as ``torch.save`` does, as a RuntimeError without the cause.
    """
    tmp = path.with_name(temp_name(path.name))
    try:
        write(tmp)
        os.replace(tmp, path)
    except Exception as err:
        full = _disk_full_message(err, path, tmp, setting)
        if full:
            error = DiskFullError(full)
            error.errno = errno.ENOSPC  # set, not passed: OSError(code, text) would print "[Errno 28]"
            raise error from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _disk_full_message(err: Exception, path: Path, tmp: Path, setting: str) -> str | None:
    """The one-line report of a write of ``path`` that failed for lack of space, None when that is not why."""
    try:  # measured before the partial file is deleted: what it holds is what the disk had left
        free = shutil.disk_usage(path.parent).free
        written = tmp.stat().st_size if tmp.exists() else 0
    except OSError:
        return None
    no_space = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
    if not no_space and free >= FULL_BELOW_BYTES:
        return None
    before = path.stat().st_size if path.exists() else 0
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    return (f"{path}: disk full ({free:,} bytes free on the disk of {path.parent} after writing {written:,} bytes "
            f"of it; it needs about {max(written, before):,}): free some space or set {setting} to a larger "
            f"disk, then run again{kept}")


def write_json(path: Path, obj, sort_keys: bool = False, setting: str = "PSPL_RESULTS") -> None:
    """``obj`` as indented JSON at ``path`` (its folder created if needed), written with ``atomic_write``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"
    atomic_write(path, lambda p: p.write_text(text), setting)


@contextmanager
def staging_folder(parent: Path, name: str):
    """A private folder under ``parent`` (named for ``name`` and this writer) in which to build folders before
    ``replace_folder`` puts them in place; removed at the end whatever happens. What killed builders left in
    ``parent`` is swept first."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep(parent)
    work = Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_folder(staged: Path, final: Path) -> None:
    """Put the finished folder ``staged`` at ``final`` with renames, so readers see the old folder or the new
    one; the old one is moved aside under a temporary name, then deleted. ``staged`` and ``final`` must be on
    one file system."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(temp_name(final.name, ".old"))
    if final.exists():
        os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old, ignore_errors=True)
