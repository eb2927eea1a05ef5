"""The training engine: files of a run, load-instead-of-retrain, resume after SIGKILL, non-finite loss,
DDP on CPU with gloo, and the CLI."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

import pspl_nb.train as T
from pspl_nb.config import profile

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}


def smoke(**kw):
    return profile("smoke", **kw)


def test_a_run_writes_its_folder_and_loads_instead_of_retraining(tmp_path, data_root):
    c = smoke(seed=1)
    h = T.train(c, results=tmp_path, data_root=data_root, progress=False)
    run = tmp_path / "runs" / c.run_id()
    assert {"config.json", "meta.json", "history.csv", "last.pt", "best.pt", "attention.npz"} <= \
        {p.name for p in run.iterdir()}
    assert list(h.epoch) == [1, 2, 3] and h.attrs["config"] == c
    assert {"psnr_embedded_valid", "ssim_embedded_valid", "att_mean", "lr", "age", "wall_time"} <= set(h.columns)
    assert h.psnr_embedded_valid.between(15, 50).all() and h.att_max.le(c.gamma).all()
    assert json.loads((run / "meta.json").read_text())["state"] == "finished"
    snap = dict(torch.load(run / "best.pt", weights_only=False))
    assert snap["epoch"] == h.psnr_embedded_valid.idxmax() + 1

    stamp = (run / "last.pt").stat().st_mtime_ns
    again = T.train(c, results=tmp_path, data_root=data_root, progress=False)
    assert (run / "last.pt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, h)
    T.train(c, results=tmp_path, data_root=data_root, progress=False, force=True)
    assert (run / "last.pt").stat().st_mtime_ns != stamp


def test_attention_is_recorded_at_the_configured_ages(tmp_path, data_root):
    import numpy as np

    c = smoke(attention_steps=(0.25, 1, 2))
    T.train(c, results=tmp_path, data_root=data_root, progress=False)
    snap = np.load(tmp_path / "runs" / c.run_id() / "attention.npz")
    ages = snap["ages"]
    assert len(ages) == 3 and all(a >= s and a - s < 1 / c.iters_per_epoch + 1e-9 for a, s in zip(ages, (0.25, 1, 2)))
    assert snap["attention"].shape[0] == 3 and snap["attention"].max() <= c.gamma
    assert snap["sr"].shape[2:] == snap["hr"].shape[:2]


def test_plain_l1_run_has_no_attention_stats(tmp_path, data_root):
    h = T.train(smoke(weighting="none", epochs=1), results=tmp_path, data_root=data_root, progress=False)
    assert h.att_mean.isna().all() and h.attrs["config"].arm == "l1"


def cli(tmp_path, *args):
    return [sys.executable, "-m", "pspl_nb.train", "--profile", "smoke", "--results", str(tmp_path), *args]


def test_resume_after_sigkill_gives_the_uninterrupted_history(tmp_path, data_root):
    args = ["--seed", "2", "--set", "epochs=4", "--set", "iters_per_epoch=20"]
    proc = subprocess.Popen(cli(tmp_path / "killed", *args), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    c = smoke(seed=2, epochs=4, iters_per_epoch=20)
    hist = tmp_path / "killed" / "runs" / c.run_id() / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (hist.exists() and len(pd.read_csv(hist)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-epoch 3, or mid-write of a file
    proc.wait()
    assert len(pd.read_csv(hist)) < 4, "the run finished before it could be killed"
    subprocess.run(cli(tmp_path / "killed", *args), env=ENV, check=True, capture_output=True)
    resumed = pd.read_csv(hist)
    whole = T.train(c, results=tmp_path / "whole", data_root=data_root, progress=False)
    cols = [k for k in whole.columns if k != "wall_time"]
    pd.testing.assert_frame_equal(resumed[cols], whole[cols].reset_index(drop=True))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_root, monkeypatch):
    real = T.make_criterion

    def poisoned(c):
        loss = real(c)

        def f(sr, hr, age):
            value = loss(sr, hr, age)
            return value * float("nan") if age > 1.5 else value
        return f

    monkeypatch.setattr(T, "make_criterion", poisoned)
    c = smoke(weighting="none")
    with pytest.raises(T.NonFiniteLoss, match=r"loss=nan at epoch 2"):
        T.train(c, results=tmp_path, data_root=data_root, progress=False)
    ck = torch.load(tmp_path / "runs" / c.run_id() / "last.pt", weights_only=False)
    assert ck["epoch"] == 1


def test_patch_too_large_names_the_field(tmp_path, data_root):
    with pytest.raises(ValueError, match=r"RunConfig.patch=4000"):
        T.train(smoke(patch=4000), results=tmp_path, data_root=data_root, progress=False)


def test_ddp_with_two_gloo_processes_agrees_and_writes_once(tmp_path, data_root):
    with socket.socket() as s:  # torchrun's static rendezvous needs a concrete free port
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "pspl_nb.train", "--profile", "smoke", "--results", str(tmp_path / "ddp"), "--seed", "4",
           "--set", "device=cpu"]
    done = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = list((tmp_path / "ddp" / "runs").iterdir())
    assert len(runs) == 1
    meta = json.loads((runs[0] / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["ranks_agree"] is True and meta["state"] == "finished"
    ddp = pd.read_csv(runs[0] / "history.csv")
    single = T.train(smoke(seed=4), results=tmp_path / "single", data_root=data_root, progress=False)
    # the same global batches, gradients averaged over ranks: equal up to float summation order
    assert (ddp.psnr_embedded_valid - single.psnr_embedded_valid).abs().max() < 0.05


def test_cli_overrides_and_errors(tmp_path, data_root):
    done = subprocess.run(cli(tmp_path, "--pspl", "off", "--set", "epochs=1", "--set", "base=l2"), env=ENV,
                          capture_output=True, text=True, check=True)
    assert "edsr_baseline-tiny-x2-l2-s0-" in done.stdout
    bad = subprocess.run(cli(tmp_path, "--set", "lr=-1"), env=ENV, capture_output=True, text=True)
    assert bad.returncode == 2 and "RunConfig.lr=-1.0" in bad.stderr


def test_run_grid_runs_in_parallel_skips_finished_runs_and_returns_a_tidy_table(tmp_path, data_root):
    from pspl_nb.experiments import run_grid

    configs = [smoke(weighting=w, seed=1, epochs=2) for w in ("none", "pspl")]
    T.train(configs[0], results=tmp_path, data_root=data_root, progress=False)
    stamp = (tmp_path / "runs" / configs[0].run_id() / "last.pt").stat().st_mtime_ns
    table = run_grid(configs + configs[:1], jobs=2, results=tmp_path, data_root=data_root, progress=False)
    assert (tmp_path / "runs" / configs[0].run_id() / "last.pt").stat().st_mtime_ns == stamp
    assert sorted(table.arm.unique()) == ["l1", "pspl"] and len(table) == 4
    assert {"run_id", "seed", "model", "alpha", "epoch", "psnr_embedded_valid"} <= set(table.columns)
    assert table.groupby("run_id").epoch.apply(list).tolist() == [[1, 2], [1, 2]]
