"""Verified downloads, safe extraction and layout normalisation for the sources in ``sources.SOURCES``.

A fetch goes: pooch download into ``<root>/downloads`` (streamed to a temporary name, moved into place
only after its sha256 matched) -> extraction into a private temporary folder, refusing the whole archive
if any entry is absolute, has a ``..`` component, or is a link leading outside -> images renamed into
the one layout in a staging folder -> each finished folder renamed into place (all or nothing) -> a
marker in ``<root>/.fetched`` -> the archive deleted. A re-run finds the marker and does nothing.

Checksums: DIV2K's published sha256 is checked. Sources with none published are trusted on first
download: the sha256 of the first successful fetch is written to ``<root>/checksums.json`` and every later
download of that source must match it.
"""
import json
import logging
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from pathlib import Path, PurePosixPath

import pooch
import requests
from PIL import Image
from tqdm.auto import tqdm

from .sources import EVAL_NAMES, GROUPS, SOURCES, Source, resolve_root

CONNECT_TIMEOUT_S = 25  # below 30 s so an unreachable host fails inside the promised 30 s
READ_TIMEOUT_S = 60  # a stalled transfer (no byte for a minute) counts as interrupted
ATTEMPTS = 3  # tries for a transfer interrupted after it started; refused connections are not retried
RETRY_WAIT_S = 1.0  # wait before try k + 1: k * RETRY_WAIT_S
OFFLINE_HINT = "offline? use the embedded set: python -m pspl_nb.data fetch embedded"
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


class _NoHashAdvice(logging.Filter):
    """Drop pooch's "use this value as known_hash" advice: the kit records unpublished hashes itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SHA256 hash of downloaded file")


class DownloadError(RuntimeError):
    """A download failed (no network, HTTP error, interrupted, checksum mismatch); the message is one line."""


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the extraction folder; nothing of the archive was extracted."""


def checksums_path(root=None) -> Path:
    """``<root>/checksums.json``: source key -> {"sha256", "bytes", "url"} recorded on first download."""
    return resolve_root(root) / "checksums.json"


def load_checksums(root=None) -> dict:
    """The trust-on-first-download records, {} when none were made yet."""
    path = checksums_path(root)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def expected_sha256(src: Source, root=None) -> tuple[str | None, str]:
    """(sha256 or None, where it comes from: "published", "checksums.json" or "none")."""
    if src.sha256:
        return src.sha256, "published"
    recorded = load_checksums(root).get(src.key)
    return (recorded["sha256"], "checksums.json") if recorded else (None, "none")


def download(src: Source, root=None) -> Path:
    """Download one source file (or reuse a verified copy); returns its path.

    Archives go to ``<root>/downloads/``, weights to ``<root>/weights/``. Raises DownloadError with one
    line naming the URL when the host is unreachable, the server answers an error, the transfer is cut
    ``ATTEMPTS`` times, or the sha256 differs from the published or recorded one. A failed download leaves
    only pooch's temporary ``tmp*`` file at worst (when the process is killed), never the final name.
    """
    root = resolve_root(root)
    folder = root / ("weights" if src.content == "weights" else "downloads")
    known, origin = expected_sha256(src, root)
    url = src.url
    quiet = _NoHashAdvice()
    pooch.get_logger().addFilter(quiet)
    try:
        path = _retrieve(url, known, origin, src, folder)
    finally:
        pooch.get_logger().removeFilter(quiet)
    if src.sha256_prefix and not pooch.file_hash(str(path)).startswith(src.sha256_prefix):
        path.unlink()
        raise DownloadError(f"{url}: sha256 does not start with {src.sha256_prefix} as its name says; deleted")
    return path


def _retrieve(url: str, known: str | None, origin: str, src: Source, folder: Path) -> Path:
    """pooch.retrieve with the kit's timeouts, retries and one-line errors (see ``download``)."""
    for attempt in range(1, ATTEMPTS + 1):
        # total >= 1: a tqdm with total 0 is falsy and pooch would silently skip it; pooch then sets the
        # total from Content-Length. bar.n counts the bytes received, telling refusals from cut transfers.
        bar = tqdm(total=src.size or 1, unit="B", unit_scale=True, desc=src.filename, leave=False)
        downloader = pooch.HTTPDownloader(progressbar=bar, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        try:
            return Path(pooch.retrieve(url, known, fname=src.filename, path=folder, downloader=downloader))
        except requests.exceptions.HTTPError as err:
            raise DownloadError(f"{url}: HTTP {err.response.status_code}; a mirror can be set with "
                                f"PSPL_URL_{src.base.upper()}; {OFFLINE_HINT}") from None
        except requests.exceptions.RequestException as err:
            if isinstance(err, requests.exceptions.ConnectionError) and bar.n == 0:
                # Refused, DNS failure or connect timeout: retrying would only delay the answer.
                raise DownloadError(f"cannot reach {url} ({type(err).__name__}); {OFFLINE_HINT}") from None
            # Cut mid-transfer (short body, reset, stalled read): pooch already deleted its temporary file.
            if attempt == ATTEMPTS:
                raise DownloadError(f"{url}: transfer interrupted {ATTEMPTS} times ({type(err).__name__}); "
                                    f"nothing kept; {OFFLINE_HINT}") from None
            time.sleep(attempt * RETRY_WAIT_S)
        except ValueError:  # pooch's hash mismatch; the mismatching file was never moved into place
            raise DownloadError(f"{url}: sha256 differs from the {origin} value {known}; "
                                "the download was deleted") from None
        finally:
            bar.close()
    raise AssertionError("unreachable: the last attempt returns or raises")


def _record_checksum(src: Source, path: Path, root: Path) -> None:
    records = load_checksums(root)
    if src.sha256 or src.key in records:
        return
    records[src.key] = {"sha256": pooch.file_hash(str(path)), "bytes": path.stat().st_size, "url": src.url}
    _write_json_atomic(checksums_path(root), records)
    tqdm.write(f"{src.key}: no published checksum; pinned sha256 {records[src.key]['sha256'][:16]}... in "
               f"{checksums_path(root)} (trust on first download)", file=sys.stderr)


def _safe_relpath(name: str, archive: Path) -> PurePosixPath:
    """The entry's path relative to the extraction folder, or UnsafeArchiveError."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in rel.parts:
        raise UnsafeArchiveError(f"{archive.name}: refusing entry {name!r} (absolute path or '..')")
    return rel


def _check_link(rel: PurePosixPath, target: str, relative_to_entry: bool, archive: Path) -> None:
    """Refuse a link whose target, resolved inside the archive, would leave the extraction folder."""
    base = rel.parent if relative_to_entry else PurePosixPath()
    resolved = os.path.normpath(str(base / target))
    if target.startswith(("/", "\\")) or resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive.name}: refusing link {str(rel)!r} -> {target!r} (points outside)")


def safe_extract(archive, target) -> list[Path]:
    """Extract the regular files of a .zip or .tar(.gz) into ``target``; returns their paths.

    Every entry is checked before anything is written: absolute paths, ``..`` components, links pointing
    outside ``target`` and device/fifo entries raise UnsafeArchiveError naming the entry. Links that stay
    inside are skipped, not created (the layout needs only the image files).
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = []
            for info in zf.infolist():
                rel = _safe_relpath(info.filename, archive)
                if stat.S_ISLNK(info.external_attr >> 16):  # the link target is the entry's content
                    _check_link(rel, zf.read(info).decode(), True, archive)
                elif not info.is_dir():
                    members.append((rel, info))
            for rel, info in tqdm(members, desc=f"extract {archive.name}", leave=False):
                written.append(_copy_out(zf.open(info), target / rel))
        return written
    with tarfile.open(archive) as tf:
        members = []
        for info in tf.getmembers():
            rel = _safe_relpath(info.name, archive)
            if info.issym() or info.islnk():  # hard link targets are archive paths, symlinks entry-relative
                _check_link(rel, info.linkname, info.issym(), archive)
            elif info.isfile():
                members.append((rel, info))
            elif not info.isdir():
                raise UnsafeArchiveError(f"{archive.name}: refusing special entry {info.name!r}")
        for rel, info in tqdm(members, desc=f"extract {archive.name}", leave=False):
            written.append(_copy_out(tf.extractfile(info), target / rel))
    return written


def _copy_out(stream, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with stream, open(dest, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return dest


def _lr_name(stem: str, scale: int) -> str:
    # DIV2K and EDSR already say "0801x2"; other mirrors keep the HR name ("baby", "baby_x2").
    return re.sub(rf"_?[xX]{scale}$", "", stem) + f"x{scale}.png"


def layout_of(src: Source, files: list[Path], raw: Path) -> dict[str, dict[str, Path]]:
    """Where each extracted image goes: {folder relative to root: {new file name: extracted path}}.

    Hidden files and macOS resource forks are ignored; so are files outside the four sets in a benchmark
    archive. Two entries landing on the same name raise ValueError naming both.
    """
    plan: dict[str, dict[str, Path]] = {}
    for f in files:
        parts = f.relative_to(raw).parts
        if f.suffix.lower() not in IMAGE_SUFFIXES or any(p.startswith((".", "__MACOSX")) for p in parts):
            continue
        if src.content == "HR":
            folder, name = f"{src.dest}/HR", f.stem + ".png"
        elif src.content == "LR":
            folder, name = f"{src.dest}/LR_bicubic/X{src.scale}", _lr_name(f.stem, src.scale)
        else:  # EDSR benchmark.tar: benchmark/<Set>/HR/*.png and benchmark/<Set>/LR_bicubic/X{s}/*.png
            found = [i for i, p in enumerate(parts[:-2]) if p in EVAL_NAMES]
            if not found:
                continue
            i = found[-1]
            if parts[i + 1] == "HR" and len(parts) == i + 3:
                folder, name = f"{parts[i]}/HR", f.stem + ".png"
            elif parts[i + 1] == "LR_bicubic" and re.fullmatch(r"X[234]", parts[i + 2]) and len(parts) == i + 4:
                s = int(parts[i + 2][1])
                folder, name = f"{parts[i]}/LR_bicubic/X{s}", _lr_name(f.stem, s)
            else:
                continue
        entries = plan.setdefault(folder, {})
        if name in entries:
            raise ValueError(f"{src.filename}: {entries[name]} and {f} both map to {folder}/{name}")
        entries[name] = f
    if not plan:
        raise ValueError(f"{src.filename}: no images found where the {src.content} layout expects them")
    return plan


def _install(staged: Path, final: Path) -> None:
    """Put a finished folder in place with renames, so readers see the old folder or the new one."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
    if final.exists():
        os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def _marker(root: Path, key: str) -> Path:
    return root / ".fetched" / f"{key}.json"


def is_fetched(key: str, root=None) -> bool:
    """True when source ``key`` was fetched, normalised and its folders are still there."""
    root = resolve_root(root)
    marker = _marker(root, key)
    if not marker.exists():
        return False
    folders = json.loads(marker.read_text())["folders"]
    return all((root / f).is_dir() and any((root / f).iterdir()) for f in folders)


def fetch_source(src: Source, root=None) -> Path:
    """Download, verify, extract and normalise one source; returns its folder (or file, for weights)."""
    root = resolve_root(root)
    if src.content == "weights":
        path = download(src, root)
        _record_checksum(src, path, root)
        return path
    if is_fetched(src.key, root):
        return root / src.dest
    archive = download(src, root)
    (root / ".tmp").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{src.key}-", dir=root / ".tmp"))
    try:
        raw = work / "raw"
        plan = layout_of(src, safe_extract(archive, raw), raw)
        for folder, entries in plan.items():
            staged = work / "staged" / folder
            staged.mkdir(parents=True)
            for name, f in entries.items():
                if f.suffix.lower() == ".png":
                    os.replace(f, staged / name)
                else:  # lossless re-encode so every set is .png
                    Image.open(f).save(staged / name)
            _install(staged, root / folder)
    except Exception:
        if expected_sha256(src, root)[0] is None:  # never trusted: let the next fetch download it afresh
            archive.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _record_checksum(src, archive, root)
    _write_json_atomic(_marker(root, src.key), {"sha256": pooch.file_hash(str(archive)), "url": src.url,
                                                "folders": sorted(plan)})
    archive.unlink()  # the images are in place; keeping DIV2K's zips would double its 4.6 GB
    return root / src.dest


def fetch(name: str, root=None) -> Path:
    """Fetch a source key, a set Name ("Set5", "DIV2K_valid", ...) or a group; returns where it landed.

    Groups: "div2k", "benchmarks" (Hugging Face tarballs), "benchmarks_edsr" (EDSR's benchmark.tar),
    "weights", "embedded" (built locally, no network) and "all" (all of them but benchmarks_edsr). A single
    source returns its folder (a weights file returns the file); a group returns the data root.
    Raises ValueError for an unknown name, DownloadError (one line) when a download fails.
    """
    root = resolve_root(root)
    if name in ("embedded", "all"):
        from .embedded import ensure_embedded  # deferred: it imports torch and the resize module

        ensure_embedded(root)
        if name == "embedded":
            return root
    if name in SOURCES:
        return fetch_source(SOURCES[name], root)
    if name not in GROUPS:
        raise ValueError(f"unknown source {name!r}: expected a group {sorted(GROUPS)} or a key of SOURCES")
    for key in GROUPS[name]:
        fetch_source(SOURCES[key], root)
    return root
