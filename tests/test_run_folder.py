"""A run's files on a bad day: damaged or missing files, a read-only results folder, a full disk, what a
killed writer left, a run entered twice by one thread, a batch that cannot fit. Each gives one line naming
the file or the setting and what to do, and nothing is lost."""
import errno
import json
import os
import resource
import shutil
import subprocess
import sys

import pytest
import torch

import pspl_nb.run_folder as R
import pspl_nb.train as T
from pspl_nb import atomic
from pspl_nb.config import profile
from pspl_nb.housekeeping import owner_tag


def smoke(**kw):
    return profile("smoke", **{"epochs": 1, **kw})


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root):
    """A results folder holding one finished one-epoch run; tests copy it before damaging it."""
    results = tmp_path_factory.mktemp("finished")
    T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
    return results


@pytest.fixture
def results(finished, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(finished, copy)
    return copy


def folder_of(results, **kw):
    return R.run_folder(smoke(seed=21, **kw), results)


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_truncated_last_pt_is_named(results, data_root):
    c = smoke(seed=21, epochs=2)  # one more epoch: train resumes from last.pt
    folder = R.run_folder(c, results)
    shutil.copytree(folder_of(results), folder)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "state": "running"}))
    data = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        T.train(c, results=results, data_root=data_root, progress=False)
    assert one_line(err).startswith(f"{folder / 'last.pt'} is damaged and does not load") and "delete it" in str(err.value)


def test_invalid_meta_json_is_named(results, data_root):
    (folder_of(results) / "meta.json").write_text('{"state": "fini')
    with pytest.raises(ValueError) as err:
        T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
    assert one_line(err).startswith(f"{folder_of(results) / 'meta.json'} is not valid JSON")
    assert "delete it, and the next train(config) of this run resumes from last.pt" in str(err.value)


def test_invalid_config_json_is_named(results, data_root):
    (folder_of(results) / "config.json").write_text('{"model": "edsr_baseline", "batch": true}')
    with pytest.raises(ValueError) as err:
        T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
    msg = one_line(err)
    assert msg.startswith(f"{folder_of(results) / 'config.json'} is not a valid RunConfig") and "RunConfig.batch=True" in msg


def test_finished_run_without_history_is_named(results, data_root):
    (folder_of(results) / "history.csv").unlink()
    with pytest.raises(FileNotFoundError) as err:
        T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
    assert one_line(err) == (f"{folder_of(results) / 'history.csv'} is missing although meta.json says the run "
                             "finished: restore it, or retrain the run with force=True (--force)")


def read_only(results, monkeypatch):
    """Make ``results`` read-only: by its permissions, or (as root, who ignores them) by making the lock,
    the one thing a load writes, fail as it fails there."""
    if os.geteuid() != 0:
        for path in [results, *results.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return

    class ReadOnlyLock:
        def __init__(self, path, *a, **kw):
            self.path = path

        def acquire(self, *a, **kw):
            raise PermissionError(errno.EACCES, "Permission denied", str(self.path))

    monkeypatch.setattr(R, "FileLock", ReadOnlyLock)
    real_mkdir = type(results).mkdir

    def mkdir(self, *a, **kw):
        if str(self).startswith(str(results)) and not self.exists():
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(type(results), "mkdir", mkdir)


def test_a_read_only_results_folder_loads_finished_runs(results, data_root, monkeypatch):
    expected = R.load_history(folder_of(results))
    read_only(results, monkeypatch)
    try:
        h = T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
        assert h.equals(expected)
        with pytest.raises(PermissionError) as err:  # an unfinished run cannot train there
            T.train(smoke(seed=22), results=results, data_root=data_root, progress=False)
        assert one_line(err).startswith(f"{R.run_folder(smoke(seed=22), results)}: cannot write there")
        assert "set PSPL_RESULTS (or results=) to a writable folder" in str(err.value)
    finally:
        for path in [results, *results.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_a_full_results_disk_is_named_and_keeps_last_pt(tmp_path, data_root, monkeypatch):
    """torch.save reports a full disk as a RuntimeError without its cause; the free space tells."""
    c = smoke(seed=23, epochs=2)
    epochs = T.train_epochs(c, results=tmp_path, data_root=data_root, progress=False)
    next(epochs)
    last = R.run_folder(c, tmp_path) / "last.pt"
    before = last.read_bytes()

    def save(obj, path):
        open(path, "wb").write(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(atomic.DiskFullError) as err:
        next(epochs)
    msg = one_line(err)
    assert msg.startswith(f"{last.parent}/") and "disk full (0 bytes free on the disk of" in msg
    assert "it needs about" in msg and "set PSPL_RESULTS to a larger disk" in msg
    assert last.read_bytes() == before and not list(last.parent.glob(".*.tmp"))


def test_atomic_write_names_enospc_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("old")

    def write(p):
        p.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(atomic.DiskFullError, match=rf"^{path}: disk full .*the previous history.csv is intact$"):
        atomic.atomic_write(path, write)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]
    with pytest.raises(ZeroDivisionError):  # any other failure is left as it is
        atomic.atomic_write(path, lambda p: 1 / 0)


def test_what_a_killed_writer_left_in_a_run_folder_is_removed_at_the_next_start(results, data_root):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host = int(done.stdout), owner_tag().split("@")[1]
    folder = folder_of(results)
    left = folder / f".last.pt.{dead}@{host}.0123456789ab.tmp"
    left.write_bytes(b"x" * 4096)
    live = folder / f".best.pt.{owner_tag()}.0123456789ab.tmp"  # this process, still able to finish it
    live.write_bytes(b"x")
    T.train(smoke(seed=21), results=results, data_root=data_root, progress=False)
    assert not left.exists() and live.exists()


def test_a_run_entered_again_while_its_generator_is_open_says_so(tmp_path, data_root):
    c = smoke(seed=24, epochs=2)
    epochs = T.train_epochs(c, results=tmp_path, data_root=data_root, progress=False)
    next(epochs)
    with pytest.raises(RuntimeError) as err:
        T.train(c, results=tmp_path, data_root=data_root, progress=False)
    assert one_line(err).startswith(f"{c.run_id()} is already open in this thread: a train_epochs generator")
    assert "Deadlock" not in str(err.value)
    epochs.close()
    assert list(T.train(c, results=tmp_path, data_root=data_root, progress=False).epoch) == [1, 2]


@pytest.mark.processes
def test_a_batch_that_cannot_fit_is_refused_before_anything_is_allocated(tmp_path, subprocess_env):
    """In a subprocess whose address space is capped at 6 GiB, so that a regression fails with a
    MemoryError instead of calling the out-of-memory killer on the machine."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    done = subprocess.run([sys.executable, "-m", "pspl_nb.train", "--profile", "smoke", "--results", str(tmp_path),
                           "--set", "batch=100000000"], env=subprocess_env, capture_output=True, text=True, preexec_fn=cap,
                          timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: RunConfig.batch=100000000: a batch of 100000000 patches 16x16 at x2 needs at "
                           "least") and last.endswith("available: lower batch (or patch)")
    assert not list(tmp_path.rglob("last.pt"))
