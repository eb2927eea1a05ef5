"""Verified, resumable downloads, safe extraction and layout normalisation for the sources in ``sources.SOURCES``.

A fetch goes: the archive is streamed into ``<root>/downloads/<file>.part`` from the first of the source's
URLs that delivers it (a transfer cut mid-way resumes from the bytes already there with an HTTP Range
request) -> the whole file's sha256 is checked, then it is renamed to its final name -> extraction into a
private temporary folder, refusing the whole archive if any entry is absolute, has a ``..`` component, or is
a link leading outside -> images renamed into the one layout in a staging folder -> each finished folder
renamed into place (all or nothing) -> a marker in ``<root>/.fetched`` -> the archive deleted. A re-run finds
the marker and does nothing; ``force=True`` fetches again (the repair for a damaged image).

Mirrors: a URL that refuses the connection, is malformed, answers an HTTP error or an HTML page, keeps
breaking, stalls (no byte for ``PSPL_STALL_SECONDS`` in total, default 60), or delivers bytes with another
sha256 or that are not an archive is passed over for the next one (``Source.urls``). One checksum checks
every URL, so a mirror needs no trust of its own. A benchmark set whose Hugging Face tarballs all fail comes
from EDSR's ``benchmark.tar`` instead. Before DIV2K is fetched, the free disk is compared with what the
fetch needs; a disk that fills up anyway is reported as such, and keeps the archive already verified.

Two processes fetching one source take turns (a lock per source in ``<root>/.fetched``): the second finds
the first one's result. What a killed fetch left (a partial extraction, a half-written record) is removed by
the next fetch; the ``.part`` of a cut download is kept, to resume.

Checksums: DIV2K's published sha256 is checked. Sources with none published are trusted on first
download: the sha256 of the first successful fetch is written to ``<root>/checksums.json`` and every later
download of that source must match it.
"""
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import requests
import urllib3
from filelock import FileLock, Timeout
from PIL import Image
from tqdm.auto import tqdm

from pspl_nb.atomic import replace_folder, staging_folder, write_json
from pspl_nb.config import TEST_SETS
from pspl_nb.housekeeping import sweep_data_root

from .sources import GROUPS, SOURCES, STANDIN_MARKER, Source, resolve_root

CONNECT_TIMEOUT_S = 25  # below 30 s so an unreachable host fails inside the promised 30 s
READ_TIMEOUT_S = 60  # a stalled transfer (no byte for a minute) counts as interrupted
STALL_S = 60.0  # default of PSPL_STALL_SECONDS: silence a URL may keep, over all its tries, before the next URL
ATTEMPTS = 3  # tries per URL for a transfer cut after it started, each resuming; a refused connection is not retried
RETRY_WAIT_S = 1.0  # wait before try k + 1: k * RETRY_WAIT_S
CHUNK_BYTES = 1 << 20
OFFLINE_HINT = "offline? use the embedded set: python -m pspl_nb.data fetch embedded"
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


class DownloadError(RuntimeError):
    """A download failed from every URL (no network, HTTP error, interrupted, checksum mismatch); one line."""


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the extraction folder; nothing of the archive was extracted."""


class DiskSpaceError(OSError):
    """The data root's disk is too small for a fetch; the message gives the bytes needed and available."""


class _URLFailed(Exception):
    """One URL of a source failed; the message says how, and the next URL is tried."""


def checksums_path(root=None) -> Path:
    """``<root>/checksums.json``: source key -> {"sha256", "bytes", "url"} recorded on first download."""
    return resolve_root(root) / "checksums.json"


def load_checksums(root=None) -> dict:
    """The trust-on-first-download records, {} when none were made yet."""
    path = checksums_path(root)
    return json.loads(path.read_text()) if path.exists() else {}


def stall_seconds() -> float:
    """Seconds a URL may send nothing, summed over its tries, before it is given up for the next one:
    ``$PSPL_STALL_SECONDS``, default ``STALL_S`` (60). ValueError naming the variable if it is not > 0."""
    text = os.environ.get("PSPL_STALL_SECONDS", "").strip()
    try:
        value = float(text) if text else STALL_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"PSPL_STALL_SECONDS={text!r}: expected a number of seconds > 0 (default {STALL_S:g})")
    return value


def expected_sha256(src: Source, root=None) -> tuple[str | None, str]:
    """(sha256 or None, where it comes from: "published", "checksums.json" or "none")."""
    if src.sha256:
        return src.sha256, "published"
    recorded = load_checksums(root).get(src.key)
    return (recorded["sha256"], "checksums.json") if recorded else (None, "none")


def file_sha256(path, algorithm: str = "sha256") -> str:
    """Hex digest (sha256, or ``algorithm``) of a file, read in 1 MiB blocks (a 3.5 GB zip takes ~10 s)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _rejection(src: Source, digest: str, known: str | None, origin: str, path: Path) -> str | None:
    """Why the file at ``path``, of sha256 ``digest``, is not ``src`` (None when it is, or when nothing is known)."""
    if known and digest != known:
        return f"sha256 {digest[:16]}... differs from the {origin} value {known}"
    if src.sha256_prefix and not digest.startswith(src.sha256_prefix):
        return f"sha256 {digest[:16]}... does not start with {src.sha256_prefix} as its name says"
    md5 = file_sha256(path, "md5") if src.md5 else None
    if md5 and md5 != src.md5:
        return f"md5 {md5} differs from the published {src.md5}"
    return None


def _stream(url: str, part: Path, src: Source, read_timeout: float = READ_TIMEOUT_S) -> None:
    """Append the rest of ``url`` to ``part``, asking for it from byte ``part``'s size on (HTTP Range).

    A server that ignores Range answers 200 with the whole file: ``part`` is then rewritten from byte 0.
    Raises _URLFailed for a refused connection, a malformed URL, an HTTP error or an HTML page (none is
    worth a retry), requests' or urllib3's exceptions for a transfer cut or silent for ``read_timeout``
    seconds mid-way (retried by ``_transfer``), DiskSpaceError when the disk fills up.
    """
    offset = part.stat().st_size if part.exists() else 0
    # identity: the archive's own bytes, which the sha256 and the byte offsets of Range refer to.
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT_S, read_timeout))
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL) as err:
        raise _URLFailed(f"malformed URL ({err}); check PSPL_URL_{src.base.upper()}") from None
    except requests.ConnectionError as err:  # refused, DNS failure, connect timeout: a retry would only delay
        if _stalled(err):
            raise
        raise _URLFailed(f"cannot connect ({type(err).__name__})") from None
    with response:
        if response.status_code == 416 and offset:  # nothing after byte `offset`: the .part is whole already
            return
        if response.status_code >= 400:
            raise _URLFailed(f"HTTP {response.status_code}")
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("text/html"):  # a login, error or "moved" page answered with 200
            raise _URLFailed(f"an HTML page (Content-Type {kind}), not {src.filename}")
        if response.status_code != 206:
            offset = 0
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink()
            raise requests.exceptions.InvalidHeader(f"Content-Range does not start at byte {offset}")
        length = int(response.headers.get("Content-Length", 0))
        try:
            with open(part, "ab" if offset else "wb") as out, tqdm(
                    total=offset + length if length else src.size, initial=offset, unit="B", unit_scale=True,
                    desc=src.filename, leave=False) as bar:
                # Raw reads keep every byte received before a cut (requests' iter_content drops the last chunk).
                for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            have = part.stat().st_size if part.exists() else 0
            need = f"{src.size - have:,} more bytes" if src.size else "more space"
            raise DiskSpaceError(f"disk full while downloading {src.filename} into {part.parent} "
                                 f"({shutil.disk_usage(part.parent).free:,} bytes free, it needs {need}); "
                                 f"{have:,} bytes kept in {part.name}: free some space and run the fetch again "
                                 "to resume") from None


def _stalled(err: Exception) -> bool:
    """Whether ``err`` (requests or urllib3) is a read that timed out: a silent server, not a cut one."""
    while err is not None:
        if isinstance(err, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
            return True
        err = err.args[0] if err.args and isinstance(err.args[0], Exception) else err.__context__
    return False


def _transfer(url: str, part: Path, src: Source) -> None:
    """``_stream`` tried up to ``ATTEMPTS`` times, each try resuming where the last one was cut; a URL
    silent for ``stall_seconds()`` in total is given up at once."""
    budget = stall_seconds()
    silent = 0.0
    for attempt in range(1, ATTEMPTS + 1):
        wait = min(READ_TIMEOUT_S, budget - silent)
        try:
            return _stream(url, part, src, wait)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:  # short body, reset, stall
            if _stalled(err):
                silent += wait
                if silent >= budget:
                    raise _URLFailed(f"stalled: no data for {budget:g} s (PSPL_STALL_SECONDS)") from None
            if attempt == ATTEMPTS:
                raise _URLFailed(f"transfer interrupted {ATTEMPTS} times ({type(err).__name__})") from None
            time.sleep(attempt * RETRY_WAIT_S)


def _not_an_archive(path: Path, src: Source) -> str | None:
    """Why the file at ``path`` cannot be the archive ``src`` names (None when it can, or for weights)."""
    if src.content == "weights" or zipfile.is_zipfile(path) or tarfile.is_tarfile(path):
        return None
    with open(path, "rb") as f:
        head = f.read(512)
    if re.search(rb"<!doctype html|<html", head, re.IGNORECASE):
        return f"an HTML page, not {src.filename} (an error or login page served with status 200?)"
    return f"not a zip or tar archive (its first bytes: {head[:24]!r})"


def _from_url(url: str, part: Path, src: Source, known: str | None, origin: str) -> str:
    """Complete ``part`` from ``url`` and return its sha256; _URLFailed (``part`` deleted) if it is not ``src``."""
    resumed = part.exists() and part.stat().st_size > 0
    _transfer(url, part, src)
    digest = file_sha256(part)
    if resumed and (_rejection(src, digest, known, origin, part) or _not_an_archive(part, src)):
        # The kept bytes may come from another mirror or an older upload: one more try from byte 0.
        part.unlink()
        _transfer(url, part, src)
        digest = file_sha256(part)
    reason = _not_an_archive(part, src) or _rejection(src, digest, known, origin, part)
    if reason:
        part.unlink()
        raise _URLFailed(f"{reason}; deleted")
    return digest


def download(src: Source, root=None) -> Path:
    """Download one source file (or reuse a verified copy); returns its path.

    Archives go to ``<root>/downloads/``, weights to ``<root>/weights/``. The URLs of ``src.urls`` are tried
    in order. Raises DownloadError with one line naming every URL and what it answered (refused, HTTP
    error, cut ``ATTEMPTS`` times, other sha256) when none delivers the file. Until its sha256 matched, the
    file is only ``<name>.part``; the bytes of a cut transfer stay there and the next call resumes them.
    """
    return _download(src, resolve_root(root))[0]


def _download(src: Source, root: Path) -> tuple[Path, str, str]:
    """``download``, returning (path, the URL that delivered it, its sha256)."""
    folder = root / ("weights" if src.content == "weights" else "downloads")
    final, part = folder / src.filename, folder / f"{src.filename}.part"
    known, origin = expected_sha256(src, root)
    if final.exists():  # left by an earlier run (weights; an archive whose extraction failed)
        digest = file_sha256(final)
        if not _rejection(src, digest, known, origin, final):
            return final, src.url, digest
        final.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in src.urls:
        try:
            digest = _from_url(url, part, src, known, origin)
        except _URLFailed as err:
            failures.append(f"{url}: {err}")
            continue
        os.replace(part, final)
        return final, url, digest
    kept = f"; {part.stat().st_size:,} bytes kept in {part.name}, a re-run resumes them" if part.exists() else ""
    raise DownloadError(f"{src.filename}: no URL delivered it ({'; '.join(failures)}){kept}; "
                        f"a mirror can be added with PSPL_URL_{src.base.upper()}; {OFFLINE_HINT}")


def _record_checksum(src: Source, url: str, digest: str, nbytes: int, root: Path) -> None:
    records = load_checksums(root)
    if src.sha256 or src.key in records:
        return
    records[src.key] = {"sha256": digest, "bytes": nbytes, "url": url}
    write_json(checksums_path(root), records, sort_keys=True, setting="PSPL_DATA")
    tqdm.write(f"{src.key}: no published checksum; pinned sha256 {digest[:16]}... in {checksums_path(root)} "
               "(trust on first download)", file=sys.stderr)


def space_needed(keys, root=None, force: bool = False) -> int:
    """Peak free disk, in bytes, that fetching the sources ``keys`` in order needs.

    An archive is downloaded, extracted beside itself, then deleted, and its PNGs are about as large as the
    archive (PNG does not compress further). So while source i is extracted the disk holds the images of
    the sources before it, archive i and its images: the peak is ``max_i (sum_{j<i} size_j + 2 size_i)``,
    less what a ``.part`` of source i already holds. All of DIV2K: 7.06e9 bytes (its 3.5 GB HR zip comes
    first). Sources already fetched (unless ``force``) and sources of unknown size count 0.
    """
    root = resolve_root(root)
    installed = peak = 0
    for key in keys:
        src = SOURCES[key]
        if not src.size or (not force and is_fetched(key, root)):
            continue
        part = root / "downloads" / f"{src.filename}.part"
        peak = max(peak, installed + 2 * src.size - (part.stat().st_size if part.exists() else 0))
        installed += src.size
    return peak


def check_free_space(keys, root=None, force: bool = False) -> None:
    """Raise DiskSpaceError (one line: bytes needed, bytes available) when ``space_needed`` exceeds the free
    space of the disk holding the data root (``shutil.disk_usage``)."""
    root = resolve_root(root)
    need = space_needed(keys, root, force)
    if need:
        free = shutil.disk_usage(next(p for p in (root, *root.parents) if p.exists())).free
        if free < need:
            raise DiskSpaceError(f"this fetch needs {need:,} bytes of free disk in {root}, {free:,} available: "
                                 "free some space or point PSPL_DATA at a larger disk")


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
            found = [i for i, p in enumerate(parts[:-2]) if p in TEST_SETS]
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


def _source_lock(src: Source, root: Path) -> FileLock:
    """The lock of source ``src`` under ``root``, acquired; says so when another process holds it."""
    (root / ".fetched").mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / ".fetched" / f"{src.key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        tqdm.write(f"{src.key}: another process is fetching it; waiting for it", file=sys.stderr)
        lock.acquire()
    return lock


def fetch_source(src: Source, root=None, force: bool = False) -> Path:
    """Download, verify, extract and normalise one source; returns its folder (or file, for weights).

    ``force``: fetch again even when the marker says it is in place (repairs a damaged or deleted image).
    A set folder that holds a synthetic stand-in is removed whole before the first real image lands in it.
    One process at a time fetches a source; one that waited for another finds the source in place.
    Raises DiskSpaceError when the disk fills up (a verified archive is kept for the next try),
    DownloadError when no URL delivers the file or the delivered archive does not extract.
    """
    root = resolve_root(root)
    lock = _source_lock(src, root)
    try:
        if src.content == "weights":
            if force:
                (root / "weights" / src.filename).unlink(missing_ok=True)
            path, url, digest = _download(src, root)
            _record_checksum(src, url, digest, path.stat().st_size, root)
            return path
        if not force and is_fetched(src.key, root):
            return root / src.dest
        archive, url, digest = _download(src, root)
        plan = _install_archive(src, archive, url, root)
        _record_checksum(src, url, digest, archive.stat().st_size, root)
        write_json(_marker(root, src.key), {"sha256": digest, "url": url, "folders": sorted(plan)}, sort_keys=True,
                   setting="PSPL_DATA")
        archive.unlink()  # the images are in place; keeping DIV2K's zips would double its 5.8 GB
        return root / src.dest
    finally:
        lock.release()


def _install_archive(src: Source, archive: Path, url: str, root: Path) -> dict:
    """Extract ``archive`` into a private folder under ``<root>/.tmp``, normalise it and install its folders;
    returns the plan (``layout_of``). An archive that does not extract is deleted unless a checksum vouches
    for it; one whose extraction was stopped (a full disk, Ctrl-C) is kept: the next fetch uses it again."""
    try:
        with staging_folder(root / ".tmp", src.key) as work:
            raw = work / "raw"
            plan = layout_of(src, safe_extract(archive, raw), raw)
            for set_folder in {root / folder.split("/")[0] for folder in plan}:
                if (set_folder / STANDIN_MARKER).exists():  # never mix real images into a synthetic set
                    shutil.rmtree(set_folder)
            for folder, entries in plan.items():
                staged = work / "staged" / folder
                staged.mkdir(parents=True)
                for name, f in entries.items():
                    if f.suffix.lower() == ".png":
                        os.replace(f, staged / name)
                    else:  # lossless re-encode so every set is .png
                        Image.open(f).save(staged / name)
                replace_folder(staged, root / folder)
            return plan
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(root).free
        raise DiskSpaceError(f"disk full while extracting {archive.name} into {root}: {free:,} bytes free, its "
                             f"images need about {_unpacked_bytes(archive):,}; the verified archive is kept in "
                             f"{archive}: free some space and run the fetch again") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, UnsafeArchiveError, ValueError) as err:
        if expected_sha256(src, root)[0] is None:  # never trusted: let the next fetch download it afresh
            archive.unlink(missing_ok=True)
        if isinstance(err, (UnsafeArchiveError, ValueError)):
            raise
        raise DownloadError(f"{archive.name} from {url} does not extract ({type(err).__name__}: {err}); "
                            f"{'deleted, a re-run downloads it again' if not archive.exists() else 'kept'}") from None


def _unpacked_bytes(archive: Path) -> int:
    """Total size of the files in a zip or tar archive (0 if it cannot be read)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return sum(i.file_size for i in zf.infolist())
        with tarfile.open(archive) as tf:
            return sum(i.size for i in tf.getmembers() if i.isfile())
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error):
        return 0


def _fetch_benchmark(name: str, keys: list[str], root: Path, force: bool, edsr_fresh: bool) -> bool:
    """Fetch benchmark set ``name`` from its Hugging Face tarballs ``keys``, else from EDSR's benchmark.tar.

    ``edsr_fresh``: benchmark.tar was already fetched by this call, so it installed this set too. Returns
    the new value of ``edsr_fresh``. Raises DownloadError naming both failures when neither source works.
    """
    edsr = SOURCES["benchmark_edsr"]
    if (edsr_fresh or not force) and is_fetched(edsr.key, root) and (root / name / "HR").is_dir():
        return edsr_fresh
    try:
        for key in keys:
            fetch_source(SOURCES[key], root, force)
        return edsr_fresh
    except DownloadError as hf_err:
        tqdm.write(f"{name}: {hf_err}; trying EDSR's benchmark.tar instead", file=sys.stderr)
        try:
            fetch_source(edsr, root, force and not edsr_fresh)
        except DownloadError as edsr_err:
            raise DownloadError(f"{name}: {hf_err} | fallback: {edsr_err}") from None
        return True


def fetch(name: str, root=None, force: bool = False) -> Path:
    """Fetch a source key, a set Name ("Set5", "DIV2K_valid", ...) or a group; returns where it landed.

    Groups: "div2k", "benchmarks" (Hugging Face tarballs, each set falling back to EDSR's benchmark.tar),
    "benchmarks_edsr" (EDSR's benchmark.tar only), "weights", "embedded" (built locally, no network) and
    "all" (all of them but benchmarks_edsr). A single source returns its folder (a weights file returns the
    file); a group returns the data root. ``force``: fetch (or build) again what is already in place.
    Raises ValueError for an unknown name, DiskSpaceError when the disk is too small (checked before any
    download), DownloadError (one line) when a download fails.
    """
    root = resolve_root(root)
    sweep_data_root(root)  # what killed fetches and builds left: partial extractions, half-written records
    if name in ("embedded", "all"):
        from .embedded import (  # deferred: it imports torch and the resize module
            MARKER,
            ensure_embedded,
        )

        if force:  # a set without its marker is rebuilt
            for marker in root.glob(f"embedded_*/{MARKER}"):
                marker.unlink()
        ensure_embedded(root)
        if name == "embedded":
            return root
    if name not in SOURCES and name not in GROUPS:
        raise ValueError(f"unknown source {name!r}: expected a group {sorted(GROUPS)} or a key of SOURCES")
    keys = [name] if name in SOURCES else GROUPS[name]
    check_free_space(keys, root, force)
    if name in SOURCES:
        return fetch_source(SOURCES[name], root, force)
    benchmarks: dict[str, list[str]] = {}  # set Name -> its Hugging Face tarballs, fetched after the rest
    for key in keys:
        if SOURCES[key].base == "hf":
            benchmarks.setdefault(SOURCES[key].dest, []).append(key)
        else:
            fetch_source(SOURCES[key], root, force)
    edsr_fresh = False
    for set_name, set_keys in benchmarks.items():
        edsr_fresh = _fetch_benchmark(set_name, set_keys, root, force, edsr_fresh)
    return root
