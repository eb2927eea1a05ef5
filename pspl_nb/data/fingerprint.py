"""A data set in a few numbers: the fingerprint a run records of the data it was trained and scored on.

The fingerprint of a set at scale s covers the files a run reads from it: ``HR/<stem>.png`` and
``LR_bicubic/X{s}/<stem>x{s}.png`` (only the first ``limit`` stems of a validation set cut by
``eval_limit``). It holds their count, their total bytes, and two blake2b digests: one of the file names,
one of every file's name, size and content. Contents are sampled, not read whole: a file is hashed
entirely up to ``2 * SAMPLE_BYTES``, a larger one by its first and last ``SAMPLE_BYTES`` plus its size
(DIV2K's 800 training pairs then cost ~200 MB of reads instead of 4.5 GB). A PNG re-encoded, cropped,
truncated or replaced changes its size or the compressed bytes at either end, so it changes the digest;
an edit that keeps the size and touches only the middle of a large file would not (``make verify``
decodes every pixel). Digests are cached per process by (path, size, mtime), so re-checking is a stat.

``check_set`` refuses an incomplete set before anything trains on it, in one line with the command that
repairs it: fewer HR images than a complete copy holds, an HR image without its LR (where the set ships
LR images at that scale), an LR image without its HR.
"""
import functools
import hashlib
from pathlib import Path

from . import embedded
from .datasets import expected_images, repair_command, set_dir
from .sources import resolve_root, set_name

SAMPLE_BYTES = 1 << 16
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """blake2b (16 bytes, hex) of a file's content, or of its size, head and tail when it is larger than
    ``2 * SAMPLE_BYTES`` (module docstring). Cached by (path, size, mtime_ns)."""
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.blake2b(str(info.st_size).encode(), digest_size=16)
        with open(path, "rb") as f:
            if info.st_size <= 2 * SAMPLE_BYTES:
                digest.update(f.read())
            else:
                digest.update(f.read(SAMPLE_BYTES))
                f.seek(-SAMPLE_BYTES, 2)
                digest.update(f.read(SAMPLE_BYTES))
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


@functools.lru_cache(maxsize=None)
def _embedded_count(name: str) -> int:
    return len(embedded.images(name))  # builds the crops once per process: ~0.5 s


def _complete_count(name: str, root: Path) -> int:
    return _embedded_count(name) if name.startswith("embedded_") else expected_images(name, root)


def check_set(name: str, scale: int, root=None, limit: int | None = None, lr_required: bool = True) -> list[Path]:
    """The files a run reads from set ``name`` at ``scale`` (HR and LR, sorted), after checking the set is whole.

    Args:
        name: a set Name or dataset key ("div2k" and "embedded" mean their training sets).
        scale: 2, 3 or 4. limit: only the first ``limit`` HR images are read (None: all).
        lr_required: the LR files must exist (training); otherwise they must exist only where the set has
            an ``LR_bicubic/X{scale}`` folder (evaluation computes the missing ones from HR).
    Raises:
        FileNotFoundError, one line naming the missing set, the first missing file or the count short of a
        complete copy, and the command that fetches or repairs it.
    """
    root = resolve_root(root)
    name = set_name(name)
    folder = set_dir(name, root)  # builds an embedded set, names the fetch command of a missing one
    repair = f"repair with `{repair_command(name, root)}`"
    hr = sorted((folder / "HR").glob("*.png"))
    complete = _complete_count(name, root)
    if len(hr) < (complete if limit is None else min(limit, complete)):
        raise FileNotFoundError(f"{folder / 'HR'} holds {len(hr)} images, a complete {name} has {complete}: "
                                f"the set is incomplete; {repair}")
    lr_folder = folder / "LR_bicubic" / f"X{scale}"
    lr_needed = lr_required or lr_folder.is_dir()
    used = hr[:limit]
    lr = [lr_folder / f"{f.stem}x{scale}.png" for f in used] if lr_needed else []
    missing = next((p for p in lr if not p.is_file()), None)
    if missing:
        raise FileNotFoundError(f"{missing} is missing (the LR image of {name}/HR/{missing.stem[:-len(f'x{scale}')]}"
                                f".png at x{scale}); {repair}")
    if lr_needed and limit is None:
        stems = {f.stem for f in hr}
        orphan = next((p for p in sorted(lr_folder.glob("*.png")) if p.stem[:-len(f"x{scale}")] not in stems), None)
        if orphan:
            raise FileNotFoundError(f"{orphan} has no HR image ({name}/HR/{orphan.stem[:-len(f'x{scale}')]}.png is "
                                    f"missing); {repair}")
    return used + lr


def fingerprint(files: list[Path], folder: Path) -> dict:
    """{"files", "bytes", "names", "content"} of ``files`` (paths under ``folder``, named relative to it)."""
    names = hashlib.blake2b(digest_size=16)
    content = hashlib.blake2b(digest_size=16)
    total = 0
    for f in files:
        rel, size = f.relative_to(folder).as_posix(), f.stat().st_size
        names.update(rel.encode() + b"\0")
        content.update(f"{rel}\0{size}\0{file_digest(f)}\0".encode())
        total += size
    return dict(files=len(files), bytes=total, names=names.hexdigest(), content=content.hexdigest())


def set_fingerprint(name: str, scale: int, root=None, limit: int | None = None, lr_required: bool = True) -> dict:
    """``check_set`` then ``fingerprint`` of the files a run reads from set ``name``."""
    root = resolve_root(root)
    return fingerprint(check_set(name, scale, root, limit, lr_required), root / set_name(name))


def describe_change(before: dict, now: dict) -> str:
    """What differs between two fingerprints of one set, in a few words."""
    if before.get("files") != now["files"]:
        return f"{now['files']} files now, {before.get('files')} when the run recorded it"
    if before.get("names") != now["names"]:
        return "other file names than when the run recorded it"
    if before.get("bytes") != now["bytes"]:
        return f"{now['bytes']:,} bytes now, {before.get('bytes'):,} when the run recorded it"
    return "file contents differ from when the run recorded it"
