"""Downloads, checksums, safe extraction and layout normalisation, against a real HTTP server on 127.0.0.1.

The server serves archives the tests build in memory; routes can answer normally, cut the connection
halfway (a Content-Length larger than what is sent), or run a check in the middle of the body.
"""
import dataclasses
import io
import json
import shutil
import socket
import stat
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pooch
import pytest
from PIL import Image

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
    import hashlib

    return hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.hits.append(self.path)
        queue = self.server.routes.get(self.path)
        if not queue:
            self.send_error(404)
            return
        kind, body, hook = queue.pop(0) if len(queue) > 1 else queue[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = len(body) // 2
        self.wfile.write(body[:half])
        self.wfile.flush()
        if kind == "cut":  # HTTP/1.0: returning closes the socket, short of the announced length
            return
        if kind == "stall":  # keep the socket open, silent, past the client's read timeout
            time.sleep(1.0)
            return
        if hook is not None:
            time.sleep(0.2)  # let the client write what it has received
            hook()
        self.wfile.write(body[half:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A live server; ``serve(path, body, kind="ok", hook=None)`` adds a response to a route's queue.

    Responses are used in order; the last one repeats. kind "cut" sends half the body and closes;
    "stall" sends half and then nothing for 1 s.
    """""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    for key in sources.BASE_URLS:
        monkeypatch.setitem(sources.BASE_URLS, key, base)
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)  # retries without the back-off wait

    def serve(path, body, kind="ok", hook=None, replace=False):
        if replace:
            httpd.routes.pop("/" + path, None)
        httpd.routes.setdefault("/" + path, []).append((kind, body, hook))

    serve.hits = httpd.hits
    yield serve
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def leftovers(root):
    """Files that could pass as data: everything under root except the (empty) tmp/downloads folders."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


SET5 = {"baby": png(12, 16, 1), "bird": png(16, 12, 2)}
SET5_LR = {"baby": png(6, 8, 3), "bird": png(8, 6, 4)}


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
    assert records["Set5_HR"]["sha256"] == sha256(hr_tar) and records["Set5_HR"]["bytes"] == len(hr_tar)
    assert not list((tmp_path / "downloads").iterdir())  # archives removed once their images are in place
    hits = len(server.hits)
    dl.fetch("Set5_HR", tmp_path)
    assert len(server.hits) == hits  # nothing downloaded again


@pytest.mark.network
def test_recorded_checksum_guards_later_downloads(server, tmp_path):
    good = make_tar({f"Set5_HR/{k}.png": v for k, v in SET5.items()})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", good)
    dl.fetch("Set5_HR", tmp_path)
    # The mirror now serves something else; after the user deletes the set, the re-download must fail.
    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({"Set5_HR/baby.png": png(12, 16, 9)}), replace=True)
    shutil.rmtree(tmp_path / "Set5")
    with pytest.raises(dl.DownloadError, match="checksums.json"):
        dl.fetch("Set5_HR", tmp_path)
    assert not (tmp_path / "Set5").exists() and not list((tmp_path / "downloads").iterdir())


@pytest.mark.network
def test_published_checksum_mismatch_leaves_nothing(server, tmp_path):
    # The real registry entry keeps DIV2K's published sha256, which a generated zip cannot match.
    body = make_zip({"DIV2K_valid_LR_bicubic/X4/0801x4.png": png()})
    server("DIV2K_valid_LR_bicubic_X4.zip", body)
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("DIV2K_valid_LR_bicubic_X4", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "DIV2K_valid_LR_bicubic_X4.zip" in msg and sources.SOURCES[
        "DIV2K_valid_LR_bicubic_X4"].sha256 in msg
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_div2k_zip_with_matching_checksum_lands_in_layout(server, tmp_path, monkeypatch):
    body = make_zip({"DIV2K_valid_LR_bicubic/X4/0801x4.png": png(), "DIV2K_valid_LR_bicubic/X4/0802x4.png": png()})
    src = dataclasses.replace(sources.SOURCES["DIV2K_valid_LR_bicubic_X4"], sha256=sha256(body))
    monkeypatch.setitem(sources.SOURCES, src.key, src)
    server("DIV2K_valid_LR_bicubic_X4.zip", body)
    dl.fetch(src.key, tmp_path)
    assert sorted(p.name for p in (tmp_path / "DIV2K_valid/LR_bicubic/X4").iterdir()) == ["0801x4.png", "0802x4.png"]
    assert "DIV2K_valid_LR_bicubic_X4" not in dl.load_checksums(tmp_path)  # published: nothing to record


@pytest.mark.network
def test_pooch_writes_a_temporary_name_until_complete(server, tmp_path):
    seen = {}

    def mid_body():
        folder = tmp_path / "downloads"
        seen["final"] = (folder / "Set5_HR.tar.gz").exists()
        seen["partial"] = [p.name for p in folder.iterdir()]

    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({"a/baby.png": png(64, 64)}), hook=mid_body)
    dl.fetch("Set5_HR", tmp_path)
    assert seen["final"] is False and len(seen["partial"]) == 1 and seen["partial"][0].startswith("tmp")


@pytest.mark.network
def test_cut_connection_retries_then_fails_leaving_nothing(server, tmp_path):
    body = make_tar({"Set5_HR/baby.png": png(64, 64)})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, kind="cut")
    with pytest.raises(dl.DownloadError, match="interrupted") as err:
        dl.fetch("Set5_HR", tmp_path)
    assert "\n" not in str(err.value)
    assert len(server.hits) == dl.ATTEMPTS
    assert leftovers(tmp_path) == []  # no partial archive, no checksum recorded, no set folder


@pytest.mark.network
def test_cut_connection_then_good_retry_succeeds(server, tmp_path):
    body = make_tar({"Set5_HR/baby.png": png(64, 64)})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, kind="cut")
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body)
    dl.fetch("Set5_HR", tmp_path)
    assert len(server.hits) == 2 and (tmp_path / "Set5/HR/baby.png").exists()
    assert dl.load_checksums(tmp_path)["Set5_HR"]["sha256"] == sha256(body)


@pytest.mark.network
def test_stalled_transfer_is_retried(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "READ_TIMEOUT_S", 0.3)
    body = make_tar({"Set5_HR/baby.png": png(64, 64)})
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body, kind="stall")
    server("Set5/resolve/main/data/Set5_HR.tar.gz", body)
    dl.fetch("Set5_HR", tmp_path)
    assert len(server.hits) == 2 and (tmp_path / "Set5/HR/baby.png").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.network
def test_connection_refused_is_fast_and_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PSPL_URL_HF", f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("Set5_HR", tmp_path)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert "\n" not in msg and "127.0.0.1" in msg and "Set5_HR.tar.gz" in msg
    assert "python -m pspl_nb.data fetch embedded" in msg
    assert leftovers(tmp_path) == []


@pytest.mark.network
def test_cli_reports_one_line_and_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PSPL_URL_HF", f"http://127.0.0.1:{free_port()}/")
    assert cli_main(["fetch", "Set5", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot reach http://127.0.0.1:")


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


@pytest.mark.network
def test_edsr_benchmark_tar_splits_into_sets(server, tmp_path):
    body = make_tar({
        "benchmark/Set5/HR/baby.png": SET5["baby"],
        "benchmark/Set5/LR_bicubic/X2/babyx2.png": SET5_LR["baby"],
        "benchmark/B100/HR/3096.png": png(),
        "benchmark/B100/LR_bicubic/X3/3096x3.png": png(4, 4),
        "benchmark/Set5/LR_bicubic/X2/._babyx2.png": b"resource fork",
    }, gz=False)
    server("benchmark.tar", body)
    dl.fetch("benchmarks_edsr", tmp_path)
    assert (tmp_path / "Set5/LR_bicubic/X2/babyx2.png").read_bytes() == SET5_LR["baby"]
    assert [p.name for p in (tmp_path / "B100/LR_bicubic/X3").iterdir()] == ["3096x3.png"]
    assert not (tmp_path / "Set5/LR_bicubic/X2/._babyx2.png").exists()


@pytest.mark.network
def test_unsafe_archive_through_fetch_is_refused_and_not_trusted(server, tmp_path):
    server("Set5/resolve/main/data/Set5_HR.tar.gz", make_tar({"Set5_HR/baby.png": png(), "../evil.png": png()}))
    with pytest.raises(dl.UnsafeArchiveError, match=r"\.\./evil\.png"):
        dl.fetch("Set5_HR", tmp_path)
    assert leftovers(tmp_path) == [] and not (tmp_path.parent / "evil.png").exists()


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
    assert div2k.url == "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"
    assert div2k.size == 3530603713 and div2k.sha256.startswith("9d0b9c46")
    assert sources.SOURCES["B100_LR_x4"].url == (
        "https://huggingface.co/datasets/eugenesiow/BSD100/resolve/main/data/BSD100_LR_x4.tar.gz")
    assert sources.SOURCES["edsr_baseline_x3"].url.endswith("/EDSR/models/edsr_baseline_x3-abf2a44e.pt")
    assert len(sources.GROUPS["div2k"]) == 8 and len(sources.GROUPS["benchmarks"]) == 16
    assert pooch.__version__  # downloads go through pooch


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PSPL_DATA", str(tmp_path))
    assert sources.default_root() == tmp_path
    monkeypatch.delenv("PSPL_DATA")
    assert sources.default_root().name == "data" and (sources.default_root().parent / "pspl_nb").is_dir()
