"""Downloads, mirrors, resume, disk checks, checksums, safe extraction and layout normalisation, against real
HTTP servers on 127.0.0.1.

The servers serve archives the tests build in memory. They honour ``Range: bytes=N-`` (answering 206) and
can instead answer 404, cut the connection after 60 % of the body, stall, hang, ignore Range, answer an HTML
page, or run a check in the middle of the body.
"""
import collections
import dataclasses
import errno
import hashlib
import io
import json
import re
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pspl_nb import places
from pspl_nb.atomic import write_json
from pspl_nb.config import TEST_SETS
from pspl_nb.data import download as dl
from pspl_nb.data import sources
from pspl_nb.data.__main__ import main as cli_main


def png(h=12, w=12, seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_tar(files: dict, gz=True, symlinks=(), hardlinks=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in symlinks:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        for name, target in hardlinks:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def make_zip(files: dict, symlinks=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Hit = collections.namedtuple("Hit", "path range status sent")


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 (one request per connection, so returning early closes the socket mid-body)."""

    def do_GET(self):  # noqa: N802 - http.server's name
        queue = self.server.routes.get(self.path)
        asked = self.headers.get("Range")
        if not queue:
            self.server.hits.append(Hit(self.path, asked, 404, 0))
            self.send_error(404)
            return
        kind, body, hook = queue.pop(0) if len(queue) > 1 else queue[0]
        start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1]) if asked and kind != "norange" else 0
        if start >= len(body):
            self.server.hits.append(Hit(self.path, asked, 416, 0))
            self.send_error(416)
            return
        part = body[start:]
        sent = {"cut": int(len(part) * 0.6), "stall": len(part) // 2}.get(kind, len(part))
        # Recorded before sending: the client may be done before this thread gets to run again.
        self.server.hits.append(Hit(self.path, asked, 206 if start else 200, sent))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "text/html; charset=utf-8" if kind == "html" else "application/octet-stream")
        self.send_header("Content-Length", str(len(part)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if kind == "hang":  # headers, then silence
            self.wfile.flush()
            time.sleep(5.0)
            return
        if hook is not None:
            self.wfile.write(part[: sent // 2])
            self.wfile.flush()
            time.sleep(0.2)  # let the client write what it has received
            hook()
            self.wfile.write(part[sent // 2 : sent])
            return
        self.wfile.write(part[:sent])
        self.wfile.flush()
        if kind == "stall":  # keep the socket open, silent, past the client's read timeout
            time.sleep(1.0)

    def log_message(self, *args):
        pass


class Server:
    """A live server; ``serve(path, body, kind="ok", hook=None)`` queues a response for a route.

    Responses of a route are used in order, the last one repeating. kind "ok" honours Range; "cut" sends
    60 % of what it answers and closes; "stall" sends half and then nothing for 1 s; "hang" sends the headers
    and then nothing for 5 s; "norange" ignores Range and sends the whole body; "html" is "ok" with
    Content-Type text/html. Unknown routes answer 404. ``hits``: one Hit per request.
    """

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.routes, self.httpd.hits = {}, []
        self.hits = self.httpd.hits
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def __call__(self, path, body, kind="ok", hook=None, replace=False):
        if replace:
            self.httpd.routes.pop("/" + path, None)
        self.httpd.routes.setdefault("/" + path, []).append((kind, body, hook))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch):
    """The only host of every source (all of ``BASE_URLS`` point at it), retries without back-off."""
    srv = Server()
    for key in sources.BASE_URLS:
        monkeypatch.setitem(sources.BASE_URLS, key, [srv.base])
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)
    # the archives served here are small stand-ins, not EDSR's benchmark.tar with its published md5
    monkeypatch.setitem(sources.SOURCES, "benchmark_edsr", dataclasses.replace(sources.SOURCES["benchmark_edsr"], md5=None))
    yield srv
    srv.close()


@pytest.fixture
def mirror():
    """A second server, wired to no source: a test lists it in ``BASE_URLS`` where it needs it."""
    srv = Server()
    yield srv
    srv.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leftovers(root):
    """Files that could pass as data: everything under root except the (empty) tmp/downloads folders and
    the per-source lock files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".lock")


def published(monkeypatch, key: str, body: bytes):
    """Give registry source ``key`` the sha256 and size of ``body``, as if the DIV2K site published them."""
    src = dataclasses.replace(sources.SOURCES[key], sha256=sha256(body), size=len(body))
    monkeypatch.setitem(sources.SOURCES, key, src)
    return src


SET5 = {"baby": png(12, 16, 1), "bird": png(16, 12, 2)}
SET5_LR = {"baby": png(6, 8, 3), "bird": png(8, 6, 4)}
VALID_X4 = make_zip({f"DIV2K_valid_LR_bicubic/X4/08{i:02d}x4.png": png(32, 32, i) for i in range(1, 9)})


@pytest.mark.network
def test_good_fetch_normalises_records_checksum_and_is_idempotent(server, tmp_path):
    hr_tar = make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()})
    lr_tar = make_tar({f"Set5_LR_x2/{k}.png": v for k, v in SET5_LR.items()})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", hr_tar)
    server("Set5/resolve/main/data/Set5_LR_x2.tar.gz", lr_tar)
    assert dl.fetch("Set5_HR", tmp_path) == tmp_path / "Set5"
    dl.fetch("Set5_LR_x2", tmp_path)
    assert (tmp_path / "Set5/HR/baby.png").read_bytes() == SET5["baby"]
    assert (tmp_path / "Set5/LR_bicubic/X2/birdx2.png").read_bytes() == SET5_LR["bird"]
    records = json.loads((tmp_path / "checksums.json").read_text())
    assert records["Set5_HR"] == {"sha256": sha256(hr_tar), "bytes": len(hr_tar), "url": server.base + (
        "Set5/resolve/main/data/Set5_HR.tar.gz")}
    assert not list((tmp_path / "downloads").iterdir())  # archives removed once their images are in place
    hits = len(server.hits)
    dl.fetch("Set5_HR", tmp_path)
    assert len(server.hits) == hits  # nothing downloaded again


@pytest.mark.network
def test_force_fetches_again_and_repairs(server, tmp_path):
    body = make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body)
    dl.fetch("Set5_HR", tmp_path)
    (tmp_path / "Set5/HR/baby.png").write_bytes(SET5["baby"][:40])  # truncated on disk
    dl.fetch("Set5_HR", tmp_path, force=True)
    assert len(server.hits) == 2 and (tmp_path / "Set5/HR/baby.png").read_bytes() == SET5["baby"]


@pytest.mark.network
def test_recorded_checksum_guards_later_downloads(server, tmp_path):
    good = make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", good)
    dl.fetch("Set5_HR", tmp_path)
    # The mirror now serves something else; a forced re-download must fail.
    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({"Set5_HR/baby.png": png(12, 16, 9)}), replace=True)
    with pytest.raises(dl.DownloadError, match="checksums.json"):
        dl.fetch("Set5_HR", tmp_path, force=True)
    assert (tmp_path / "Set5/HR/baby.png").read_bytes() == SET5["baby"]  # the good copy stays
    assert not list((tmp_path / "downloads").iterdir())


@pytest.mark.network
def test_published_checksum_mismatch_leaves_nothing(server, tmp_path):
    # The real registry entry keeps DIV2K's published sha256, which a generated zip cannot match.
    server("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "DIV2K_valid_LR_bicubic_X4.zip" in msg and sources.SOURCES[
        "DIV2K_valid_LR_bicubic_X4"].sha256 in msg
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_div2k_zip_with_matching_checksum_lands_in_layout(server, tmp_path, monkeypatch):
    src = published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", VALID_X4)
    server("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    dl.fetch(src.key, tmp_path)
    assert sorted(p.name for p in (tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir()) == [
        f"08{i:02d}x4.png" for i in range(1, 9)]
    assert "DIV2K_valid_LR_bicubic_X4" not in dl.load_checksums(tmp_path)  # published: nothing to record


@pytest.mark.network
def test_download_stays_a_part_file_until_verified(server, tmp_path):
    seen = {}

    def mid_body():
        folder = tmp_path / "downloads"
        seen["final"] = (folder / "Set5_HR.tar.gz").exists()
        seen["partial"] = [p.name for p in folder.iterdir()]

    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({"a/baby.png": png(64, 64)}), hook=mid_body)
    dl.fetch("Set5_HR", tmp_path)
    assert seen == {"final": False, "partial": ["Set5_HR.tar.gz.part"]}


# Mirrors: every URL of a source is tried in order, all checked against the same sha256.

@pytest.mark.network
def test_primary_404_then_mirror_delivers(server, mirror, tmp_path, monkeypatch):
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", VALID_X4)
    monkeypatch.setitem(sources.BASE_URLS, "div2k", [server.base, mirror.base])
    mirror("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert [h.status for h in server.hits] == [404] and [h.status for h in mirror.hits] == [200]
    assert len(list((tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir())) == 8
    marker = json.loads((tmp_path / ".fetched/DIV2K_valid_LR_bicubic_X4.json").read_text())
    assert marker["url"] == mirror.base + "DIV2K_valid_LR_bicubic_X4.zip"


@pytest.mark.network
def test_refused_primary_then_mirror_delivers(server, tmp_path, monkeypatch):
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", VALID_X4)
    monkeypatch.setitem(sources.BASE_URLS, "div2k", [f"http://127.0.0.1:{free_port()}/", server.base])
    server("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    start = time.monotonic()
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert time.monotonic() - start < 10  # a refused connection is not retried
    assert len(server.hits) == 1 and (tmp_path / "DIV2K_valid/LR_bicubic/X4/0801x4.png").exists()


@pytest.mark.network
def test_wrong_bytes_are_rejected_then_mirror_delivers(server, mirror, tmp_path, monkeypatch):
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", VALID_X4)
    monkeypatch.setitem(sources.BASE_URLS, "div2k", [server.base, mirror.base])
    server("DIV2K_valid_LR_bicubic_X4.zip", make_zip({"DIV2K_valid_LR_bicubic/X4/0801x4.png": png(32, 32, 99)}))
    mirror("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert len(server.hits) == 1 and len(mirror.hits) == 1
    assert (tmp_path / "DIV2K_valid/LR_bicubic/X4/0801x4.png").read_bytes() == png(32, 32, 1)


@pytest.mark.network
def test_every_url_failing_gives_one_line_naming_each(server, tmp_path, monkeypatch):
    refused = f"http://127.0.0.1:{free_port()}/"
    monkeypatch.setitem(sources.BASE_URLS, "div2k", [server.base, refused])
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{server.base}DIV2K_valid_LR_bicubic_X4.zip: HTTP 404" in msg
    assert f"{refused}DIV2K_valid_LR_bicubic_X4.zip: cannot connect" in msg
    assert "PSPL_URL_DIV2K" in msg and "fetch embedded" in msg
    assert leftovers(tmp_path) == []


def test_base_urls_come_from_the_environment_first(monkeypatch):
    monkeypatch.setenv("PSPL_URL_HF", "http://a.example/ http://b.example/")
    assert sources.SOURCES["Set5_HR"].urls == [f"http://{h}.example/Set5/resolve/main/data/Set5_HR.tar.gz"
                                               for h in "ab"]
    monkeypatch.setitem(sources.BASE_URLS, "edsr", "http://c.example")  # a single string is one base
    assert sources.SOURCES["benchmark_edsr"].urls == ["http://c.example/benchmark.tar"]


# Resume: a cut transfer continues from its .part file with a Range request.

@pytest.mark.network
def test_cut_at_60_percent_resumes_with_range_and_verifies(server, tmp_path, monkeypatch):
    body = make_zip({f"DIV2K_valid_LR_bicubic/X4/08{i:02d}x4.png": png(64, 64, i) for i in range(1, 9)})
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", body)
    server("DIV2K_valid_LR_bicubic_X4.zip", body, kind="cut")
    server("DIV2K_valid_LR_bicubic_X4.zip", body)
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    first, second = server.hits
    assert first.range is None and first.sent == int(len(body) * 0.6)
    assert second.range == f"bytes={first.sent}-" and second.status == 206
    assert first.sent + second.sent == len(body)  # the first 60 % was not sent twice
    assert len(list((tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir())) == 8


@pytest.mark.network
def test_server_ignoring_range_restarts_from_zero(server, tmp_path, monkeypatch):
    body = make_zip({f"DIV2K_valid_LR_bicubic/X4/08{i:02d}x4.png": png(64, 64, i) for i in range(1, 9)})
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", body)
    server("DIV2K_valid_LR_bicubic_X4.zip", body, kind="cut")
    server("DIV2K_valid_LR_bicubic_X4.zip", body, kind="norange")
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert [(h.range is not None, h.status, h.sent) for h in server.hits][1] == (True, 200, len(body))
    assert len(list((tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir())) == 8


@pytest.mark.network
def test_part_kept_after_failures_is_resumed_by_the_next_run(server, tmp_path):
    body = make_tar({"Set5_HR/baby.png": png(64, 64)})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, kind="cut")
    with pytest.raises(dl.DownloadError, match="interrupted") as err:
        dl.fetch("Set5_HR", tmp_path)
    assert "\n" not in str(err.value) and "a re-run resumes them" in str(err.value)
    assert len(server.hits) == dl.ATTEMPTS and all(h.range for h in server.hits[1:])
    part = tmp_path / "downloads/Set5_HR.tar.gz.part"
    assert leftovers(tmp_path) == ["downloads/Set5_HR.tar.gz.part"]  # no archive, no record, no set
    kept = part.stat().st_size
    assert kept == sum(h.sent for h in server.hits) < len(body)
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, replace=True)
    dl.fetch("Set5_HR", tmp_path)
    assert server.hits[-1].range == f"bytes={kept}-" and server.hits[-1].sent == len(body) - kept
    assert dl.load_checksums(tmp_path)["Set5_HR"]["sha256"] == sha256(body)


@pytest.mark.network
def test_complete_part_is_verified_not_downloaded_again(server, tmp_path, monkeypatch):
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", VALID_X4)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads/DIV2K_valid_LR_bicubic_X4.zip.part").write_bytes(VALID_X4)  # a run killed at the end
    server("DIV2K_valid_LR_bicubic_X4.zip", VALID_X4)
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert [(h.range, h.status) for h in server.hits] == [(f"bytes={len(VALID_X4)}-", 416)]
    assert len(list((tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir())) == 8


@pytest.mark.network
def test_stale_part_from_another_file_is_discarded(server, tmp_path, monkeypatch):
    body = make_zip({f"DIV2K_valid_LR_bicubic/X4/08{i:02d}x4.png": png(64, 64, i) for i in range(1, 9)})
    published(monkeypatch, "DIV2K_valid_LR_bicubic_X4", body)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads/DIV2K_valid_LR_bicubic_X4.zip.part").write_bytes(b"x" * 100)  # not a prefix of body
    server("DIV2K_valid_LR_bicubic_X4.zip", body)
    dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    assert [h.range for h in server.hits] == ["bytes=100-", None]  # resumed, mismatched, fetched from 0
    assert len(list((tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir())) == 8


@pytest.mark.network
def test_stalled_transfer_is_retried(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "READ_TIMEOUT_S", 0.3)
    body = make_tar({"Set5_HR/baby.png": png(64, 64)})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, kind="stall")
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body)
    dl.fetch("Set5_HR", tmp_path)
    assert len(server.hits) == 2 and (tmp_path / "Set5/HR/baby.png").exists()


@pytest.mark.network
def test_connection_refused_is_fast_and_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PSPL_URL_HF", f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("Set5_HR", tmp_path)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "\n" not in msg and "127.0.0.1" in msg and "Set5_HR.tar.gz" in msg and "cannot connect" in msg
    assert "python -m pspl_nb.data fetch embedded" in msg
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_cli_reports_one_line_and_exit_status(tmp_path, monkeypatch, capsys):
    for base in ("HF", "EDSR"):
        monkeypatch.setenv(f"PSPL_URL_{base}", f"http://127.0.0.1:{free_port()}/")
    assert cli_main(["fetch", "Set5", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: Set5: Set5_HR.tar.gz: no URL delivered it (http://127.0.0.1:")
    assert "| fallback: benchmark.tar: no URL delivered it" in err[-1]


@pytest.mark.network
def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="HTTP 404") as err:
        dl.fetch("Set14_HR", tmp_path)
    assert "Set14_HR.tar.gz" in str(err.value)


@pytest.mark.network
def test_weights_checked_against_the_hash_in_their_name(server, tmp_path):
    server("models/edsr_baseline_x2-1bc95232.pt", b"not the EDSR weights")
    with pytest.raises(dl.DownloadError, match="1bc95232"):
        dl.fetch("edsr_baseline_x2", tmp_path)
    assert leftovers(tmp_path) == []


BENCHMARK_TAR = make_tar({
    "benchmark/Set5/HR/baby.png": SET5["baby"],
    "benchmark/Set5/LR_bicubic/X2/babyx2.png": SET5_LR["baby"],
    "benchmark/Set14/HR/zebra.png": png(),
    "benchmark/B100/HR/3096.png": png(),
    "benchmark/B100/LR_bicubic/X3/3096x3.png": png(4, 4),
    "benchmark/Urban100/HR/img_001.png": png(),
    "benchmark/Set5/LR_bicubic/X2/._babyx2.png": b"resource fork",
}, gz=False)


@pytest.mark.network
def test_edsr_benchmark_tar_splits_into_sets(server, tmp_path):
    server("benchmark.tar", BENCHMARK_TAR)
    dl.fetch("benchmarks_edsr", tmp_path)
    assert (tmp_path / "Set5/LR_bicubic/X2/babyx2.png").read_bytes() == SET5_LR["baby"]
    assert [p.name for p in (tmp_path / "B100/LR_bicubic/X3").iterdir()] == ["3096x3.png"]
    assert not (tmp_path / "Set5/LR_bicubic/X2/._babyx2.png").exists()


@pytest.mark.network
def test_a_published_md5_is_checked_besides_the_pinned_sha256(server, tmp_path, monkeypatch):
    server("benchmark.tar", BENCHMARK_TAR)

    def publish(md5):
        monkeypatch.setitem(sources.SOURCES, "benchmark_edsr",
                            dataclasses.replace(sources.SOURCES["benchmark_edsr"], md5=md5))

    publish(hashlib.md5(b"another benchmark.tar").hexdigest())
    with pytest.raises(dl.DownloadError, match=r"benchmark.tar: md5 [0-9a-f]{32} differs from the published"):
        dl.fetch("benchmarks_edsr", tmp_path)
    assert not (tmp_path / "Set5").exists() and not dl.load_checksums(tmp_path)  # nothing installed, nothing pinned
    publish(hashlib.md5(BENCHMARK_TAR).hexdigest())
    dl.fetch("benchmarks_edsr", tmp_path)
    assert (tmp_path / "Set5/HR/baby.png").exists() and "benchmark_edsr" in dl.load_checksums(tmp_path)


@pytest.mark.network
def test_benchmarks_fall_back_to_edsr_tar_once(server, tmp_path, capsys):
    server("benchmark.tar", BENCHMARK_TAR)  # no Hugging Face route: every tarball answers 404
    assert dl.fetch("benchmarks", tmp_path) == tmp_path
    assert all((tmp_path / name / "HR").is_dir() for name in TEST_SETS)
    assert [h.path for h in server.hits].count("/benchmark.tar") == 1  # it installed all four sets
    assert len(server.hits) == 2  # Set5_HR's 404, then benchmark.tar; the other sets need nothing
    assert "trying EDSR's benchmark.tar instead" in capsys.readouterr().err
    hits = len(server.hits)
    dl.fetch("Set14", tmp_path)
    assert len(server.hits) == hits


@pytest.mark.network
def test_real_download_replaces_a_standin_set(server, tmp_path):
    (tmp_path / "Set5/HR").mkdir(parents=True)
    (tmp_path / "Set5/HR/woman.png").write_bytes(png())
    (tmp_path / "Set5" / sources.STANDIN_MARKER).write_text("{}")
    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()}))
    dl.fetch("Set5_HR", tmp_path)
    assert sorted(p.name for p in (tmp_path / "Set5").iterdir()) == ["HR"]
    assert sorted(p.name for p in (tmp_path / "Set5/HR").iterdir()) == ["baby.png", "bird.png"]


# Free disk: checked before anything is downloaded.

DIV2K_BYTES = [sources.SOURCES[k].size for k in sources.GROUPS["div2k"]]


def test_space_needed_is_the_peak_of_archive_plus_extraction(tmp_path):
    assert dl.space_needed(sources.GROUPS["div2k"], tmp_path) == 2 * DIV2K_BYTES[0] == 7_061_207_426
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads/DIV2K_train_HR.zip.part").write_bytes(b"x" * 1000)  # already on disk
    assert dl.space_needed(sources.GROUPS["div2k"], tmp_path) == 2 * DIV2K_BYTES[0] - 1000
    # The HR zip in place: the peak moves to the next archive, after the 3.5 GB of HR images.
    (tmp_path / "DIV2K_train/HR").mkdir(parents=True)
    (tmp_path / "DIV2K_train/HR/0001.png").write_bytes(png())
    write_json(tmp_path / ".fetched/DIV2K_train_HR.json", {"folders": ["DIV2K_train/HR"]})
    later = max(sum(DIV2K_BYTES[1:i]) + 2 * DIV2K_BYTES[i] for i in range(1, 8))
    assert dl.space_needed(sources.GROUPS["div2k"], tmp_path) == later
    assert dl.space_needed(sources.GROUPS["div2k"], tmp_path, force=True) == 2 * DIV2K_BYTES[0] - 1000
    assert dl.space_needed(sources.GROUPS["benchmarks"], tmp_path) == 0  # sizes unknown: not counted


@pytest.mark.network
def test_too_little_disk_fails_before_any_download(server, tmp_path, monkeypatch, capsys):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**10, 9 * 10**9, 10**9))
    with pytest.raises(dl.DiskSpaceError) as err:
        dl.fetch("div2k", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "7,061,207,426 bytes" in msg and "1,000,000,000 available" in msg
    assert isinstance(err.value, OSError) and server.hits == []
    assert cli_main(["fetch", "div2k", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: this fetch needs 7,061,207,426 bytes")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**11, 0, 10**11))
    dl.check_free_space(sources.GROUPS["div2k"], tmp_path)  # enough: no error


def test_lr_names_are_normalised():
    assert [dl._lr_name(s, 2) for s in ("baby", "baby_x2", "babyx2", "0801x2")] == ["babyx2.png"] * 3 + ["0801x2.png"]
    assert dl._lr_name("img_x3", 2) == "img_x3x2.png"  # only the suffix of the scale at hand is stripped


def unsafe_archives(tmp):
    """Archives with one dangerous entry each; absolute paths aim inside ``tmp`` so a regression stays there."""
    absolute = str(tmp / "evil.png")
    return {
        "tar ..": make_tar({"ok.png": b"1", "../evil.png": b"2"}),
        "tar nested ..": make_tar({"a/../../evil.png": b"2"}),
        "tar absolute": make_tar({absolute: b"2"}),
        "tar symlink out": make_tar({"ok.png": b"1"}, symlinks=[("sub/link", "../../outside")]),
        "tar absolute symlink": make_tar({}, symlinks=[("link", "/etc/passwd")]),
        "tar hardlink out": make_tar({"ok.png": b"1"}, hardlinks=[("link", "../outside")]),
        "zip ..": make_zip({"ok.png": b"1", "../evil.png": b"2"}),
        "zip absolute": make_zip({absolute: b"2"}),
        "zip backslash ..": make_zip({"..\\evil.png": b"2"}),
        "zip symlink out": make_zip({"ok.png": b"1"}, symlinks=[("link", "../../outside")]),
    }


@pytest.mark.parametrize("case", sorted(unsafe_archives(Path("/x"))))
def test_unsafe_entries_refused_before_anything_is_written(case, tmp_path):
    archive = tmp_path / ("a.zip" if case.startswith("zip") else "a.tar.gz")
    archive.write_bytes(unsafe_archives(tmp_path)[case])
    with pytest.raises(dl.UnsafeArchiveError):
        dl.safe_extract(archive, tmp_path / "out" / "x")
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))
    assert not (tmp_path / "evil.png").exists()


def test_links_that_stay_inside_are_skipped_not_created(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(make_tar({"d/ok.png": b"1"}, gz=False, symlinks=[("d/link", "ok.png")],
                                 hardlinks=[("hard", "d/ok.png")]))
    written = dl.safe_extract(archive, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["d/ok.png"]
    assert not (tmp_path / "out/d/link").exists() and not (tmp_path / "out/hard").exists()


def test_registry_keeps_the_published_facts():
    div2k = sources.SOURCES["DIV2K_train_HR"]
    assert div2k.urls == ["https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
                          "https://huggingface.co/datasets/goodfellowliu/DIV2K/resolve/main/DIV2K_train_HR.zip"]
    assert div2k.url == div2k.urls[0] and div2k.size == 3530603713 and div2k.sha256.startswith("9d0b9c46")
    assert sources.SOURCES["B100_LR_x4"].url == (
        "https://huggingface.co/datasets/eugenesiow/BSD100/resolve/main/data/BSD100_LR_x4.tar.gz")
    assert sources.SOURCES["edsr_baseline_x3"].url.endswith("/EDSR/models/edsr_baseline_x3-abf2a44e.pt")
    assert len(sources.GROUPS["div2k"]) == 8 and len(sources.GROUPS["benchmarks"]) == 16


def test_data_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PSPL_DATA", str(tmp_path))
    assert places.data_root() == tmp_path
    monkeypatch.delenv("PSPL_DATA")
    assert places.data_root().name == "data" and (places.data_root().parent / "pspl_nb").is_dir()


# A hostile network and a full disk: each is one line, and nothing verified is lost.

SET5_HR = "Set5/resolve/main/data/Set5_HR.tar.gz"
SET5_TAR = make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()})
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>"


@pytest.mark.network
@pytest.mark.parametrize("kind, body", [("html", HTML), ("ok", HTML), ("ok", b"\x00junk" * 100)],
                         ids=["html-page", "html-as-octet-stream", "junk"])
def test_a_page_or_junk_instead_of_the_archive_goes_to_the_next_mirror(server, mirror, tmp_path, monkeypatch, kind,
                                                                      body):
    """Benchmarks have no published checksum, so only the content can tell a login page from the tarball."""
    monkeypatch.setitem(sources.BASE_URLS, "hf", [server.base, mirror.base])
    server(SET5_HR, body, kind=kind)
    mirror(SET5_HR, SET5_TAR)
    dl.fetch("Set5_HR", tmp_path)
    assert (tmp_path / "Set5/HR/baby.png").read_bytes() == SET5["baby"] and len(mirror.hits) == 1
    assert dl.load_checksums(tmp_path)["Set5_HR"]["url"] == mirror.base + SET5_HR  # the junk was never trusted


@pytest.mark.network
def test_only_a_page_served_is_one_line(server, tmp_path):
    server(SET5_HR, HTML)
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("Set5_HR", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and f"{server.base}{SET5_HR}: an HTML page, not Set5_HR.tar.gz" in msg
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_a_malformed_mirror_url_is_named_and_not_retried(server, tmp_path, monkeypatch):
    monkeypatch.setenv("PSPL_URL_HF", f"htp:/mirror.example/ {server.base}")
    server(SET5_HR, SET5_TAR)
    dl.fetch("Set5_HR", tmp_path)  # the next mirror delivers
    monkeypatch.setenv("PSPL_URL_HF", "htp:/mirror.example/")
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("Set14_HR", tmp_path)
    msg = str(err.value)
    assert time.monotonic() - start < 5 and "interrupted" not in msg
    assert "htp:/mirror.example/Set14/resolve/main/data/Set14_HR.tar.gz: malformed URL (" in msg
    assert "check PSPL_URL_HF" in msg


@pytest.mark.network
def test_a_stalled_mirror_gives_up_in_the_stated_time(server, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("PSPL_STALL_SECONDS", "0.5")
    monkeypatch.setitem(sources.BASE_URLS, "hf", [server.base, mirror.base])
    server(SET5_HR, SET5_TAR, kind="hang")
    mirror(SET5_HR, SET5_TAR)
    start = time.monotonic()
    dl.fetch("Set5_HR", tmp_path)
    assert time.monotonic() - start < 3 and len(server.hits) == 1 and len(mirror.hits) == 1
    monkeypatch.setitem(sources.BASE_URLS, "hf", [server.base])
    server("Set14/resolve/main/data/Set14_HR.tar.gz", b"x", kind="hang")
    with pytest.raises(dl.DownloadError, match=r"Set14_HR.tar.gz: stalled: no data for 0.5 s \(PSPL_STALL_SECONDS\)"):
        dl.fetch("Set14_HR", tmp_path)
    monkeypatch.setenv("PSPL_STALL_SECONDS", "soon")
    with pytest.raises(ValueError, match="PSPL_STALL_SECONDS='soon': expected a number of seconds > 0"):
        dl.fetch("Set14_HR", tmp_path)


@pytest.mark.network
def test_two_fetches_of_one_file_take_turns(server, tmp_path, capsys):
    """The second fetch waits for the first, then finds the set in place: one download, both succeed."""
    server(SET5_HR, SET5_TAR, hook=lambda: time.sleep(1.0))  # the first transfer takes a second
    results, errors = [], []

    def fetch():
        try:
            results.append(dl.fetch("Set5_HR", tmp_path))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join(60)
    assert errors == [] and results == [tmp_path / "Set5"] * 2
    assert len(server.hits) == 1
    assert "Set5_HR: another process is fetching it; waiting for it" in capsys.readouterr().err
    assert (tmp_path / "Set5/HR/bird.png").read_bytes() == SET5["bird"]


@pytest.mark.network
def test_a_disk_full_during_extraction_keeps_the_archive(server, tmp_path, monkeypatch):
    server(SET5_HR, SET5_TAR)
    real = dl._copy_out

    def full(stream, dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl, "_copy_out", full)
    with pytest.raises(dl.DiskSpaceError) as err:
        dl.fetch("Set5_HR", tmp_path)
    archive = tmp_path / "downloads/Set5_HR.tar.gz"
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"disk full while extracting Set5_HR.tar.gz into {tmp_path}: ")
    assert f"its images need about {len(SET5['baby']) + len(SET5['bird']):,}; the verified archive is kept in " \
           f"{archive}" in msg
    assert archive.read_bytes() == SET5_TAR and not (tmp_path / "Set5").exists()
    assert not any((tmp_path / ".tmp").iterdir())  # the partial extraction is gone too
    monkeypatch.setattr(dl, "_copy_out", real)
    dl.fetch("Set5_HR", tmp_path)  # space freed: the kept archive is used, nothing downloaded again
    assert len(server.hits) == 1 and (tmp_path / "Set5/HR/baby.png").read_bytes() == SET5["baby"]


@pytest.mark.network
def test_a_disk_full_during_download_is_named_and_keeps_the_bytes(server, tmp_path, monkeypatch):
    server(SET5_HR, SET5_TAR)
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

    def opener(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if str(path).endswith(".part") and "b" in mode and mode[0] in "aw" else f

    monkeypatch.setattr(dl, "open", opener, raising=False)
    with pytest.raises(dl.DiskSpaceError) as err:
        dl.fetch("Set5_HR", tmp_path)
    assert str(err.value).startswith(f"disk full while downloading Set5_HR.tar.gz into {tmp_path / 'downloads'} (")
    assert str(err.value).endswith("100 bytes kept in Set5_HR.tar.gz.part: free some space and run the fetch again to "
                                   "resume")
    assert len(server.hits) == 1  # a full disk is not the mirror's fault: no other URL, no retry


@pytest.mark.network
def test_a_killed_fetchs_partial_extraction_is_removed_by_the_next_fetch(server, tmp_path):
    from pspl_nb.housekeeping import owner_tag

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = owner_tag().split("@")[1]
    dead = tmp_path / ".tmp" / f".Set5_HR.{int(done.stdout)}@{host}.k3j_x9"
    (dead / "raw").mkdir(parents=True)
    (dead / "raw" / "baby.png").write_bytes(b"x" * 10_000)
    live = tmp_path / ".tmp" / f".Set14_HR.{owner_tag()}.p0q1r2"  # a fetch still running
    live.mkdir()
    server(SET5_HR, SET5_TAR)
    dl.fetch("Set5_HR", tmp_path)
    assert not dead.exists() and live.exists()
