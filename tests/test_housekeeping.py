"""Temporary files name their writer; what a dead writer left is removed, what a live one writes never is."""
import os
import subprocess
import time

import pytest

from pspl_nb import housekeeping as hk


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_temporary_names_carry_their_writer():
    name = hk.temp_name("last.pt")
    assert name.startswith(f".last.pt.{os.getpid()}@") and name.endswith(".tmp") and hk.is_temporary(name)
    assert hk.temp_prefix("embedded").startswith(f".embedded.{os.getpid()}@")
    assert not hk.is_temporary("last.pt") and not hk.is_temporary(".lock") and not hk.is_temporary("x.part")


def test_sweep_removes_only_what_dead_writers_left(tmp_path, dead_pid):
    host = hk.owner_tag().split("@")[1]
    dead = tmp_path / f".last.pt.{dead_pid}@{host}.0123456789ab.tmp"
    live = tmp_path / hk.temp_name("history.csv")
    other_host_new = tmp_path / f".meta.json.{dead_pid}@elsewhere.0123456789ab.tmp"
    other_host_old = tmp_path / f".best.pt.{dead_pid}@elsewhere.0123456789ab.tmp"
    legacy_old = tmp_path / f".last.pt.{'a' * 32}.tmp"
    folder = tmp_path / f".embedded.{dead_pid}@{host}.k3j_x9"
    for path in (dead, live, other_host_new, other_host_old, legacy_old):
        path.write_bytes(b"x")
    (folder / "embedded_train").mkdir(parents=True)
    (tmp_path / "last.pt").write_bytes(b"the run")
    day_ago = time.time() - hk.STALE_AFTER_S - 60
    for path in (other_host_old, legacy_old):
        os.utime(path, (day_ago, day_ago))
    removed = hk.sweep(tmp_path)
    assert sorted(p.name for p in removed) == sorted(p.name for p in (dead, other_host_old, legacy_old, folder))
    assert live.exists() and other_host_new.exists() and (tmp_path / "last.pt").exists()


def test_data_root_sweep_reaches_extractions_installs_and_caches(tmp_path, dead_pid):
    host = hk.owner_tag().split("@")[1]
    partial = tmp_path / ".tmp" / f".Set5_HR.{dead_pid}@{host}.ab12cd"
    (partial / "raw").mkdir(parents=True)
    (partial / "raw" / "baby.png").write_bytes(b"x" * 1000)
    old_install = tmp_path / "Set5" / f".HR.{dead_pid}@{host}.0123456789ab.old"
    old_install.mkdir(parents=True)
    cache = tmp_path / "DIV2K_train" / "cache" / f".HR.{dead_pid}@{host}.0123456789ab.npy"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"x")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "DIV2K_train_HR.zip.part").write_bytes(b"resumable")
    removed = hk.sweep_data_root(tmp_path)
    assert sorted(removed) == sorted([partial, old_install, cache])
    assert (tmp_path / "downloads" / "DIV2K_train_HR.zip.part").exists()


def test_clean_runs_counts_runs_and_hours(tmp_path):
    for name, seconds in (("a", 7200), ("b", 1800)):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.json").write_text("{}")
        (tmp_path / "runs" / name / "history.csv").write_text(f"epoch,wall_time\n1,{seconds}\n")
    said = []
    assert hk.clean_runs(tmp_path, answer=lambda: "n", out=lambda *s, **kw: said.append(" ".join(s))) == 1
    assert "this deletes 2 trained runs (2.5 h of training)" in said[0] and (tmp_path / "runs").exists()
    assert hk.clean_runs(tmp_path, answer=lambda: "yes\n", out=lambda *s, **kw: None) == 0
    assert not (tmp_path / "runs").exists()
    assert hk.clean_runs(tmp_path, out=lambda *s, **kw: None) == 0  # nothing left: nothing to ask
