"""The training engine: files of a run, load-instead-of-retrain, resume after SIGKILL, non-finite loss,
DDP on CPU with gloo, and the CLI."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

import pspl_nb.train as T
from pspl_nb.config import profile

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
    # each column is what it says: iterations and ages, the scheduled lr, weights between their min and max,
    # wall time that holds the training time and grows
    assert list(h.iteration) == [12, 24, 36] and list(h.age) == [1.0, 2.0, 3.0]
    assert list(h.lr) == [T.learning_rate(c, e, e + 1.0) for e in range(3)] == [c.lr, c.lr, c.lr * c.lr_decay]
    assert (h.att_min <= h.att_mean).all() and (h.att_mean <= h.att_max).all() and (h.att_min >= 0).all()
    assert (h.wall_time.diff().fillna(h.wall_time) >= h.train_time).all() and (h.train_time > 0).all()
    # best.pt holds the best epoch's weights: scored again, they give the history's best validation PSNR
    from pspl_nb.data import load_eval_set
    from pspl_nb.evaluate import evaluate
    from pspl_nb.run_folder import load_model

    pairs = load_eval_set(c.val_set, c.scale, root=data_root, limit=c.eval_limit)
    again = evaluate(load_model(c, "best", tmp_path), pairs, c.scale).psnr.mean()
    assert again == pytest.approx(h.psnr_embedded_valid.max(), abs=1e-9)

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


@pytest.mark.processes
def test_resume_after_sigkill_gives_the_uninterrupted_history(tmp_path, data_root, subprocess_env):
    args = ["--seed", "2", "--set", "epochs=4", "--set", "iters_per_epoch=20"]
    proc = subprocess.Popen(cli(tmp_path / "killed", *args), env=subprocess_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    c = smoke(seed=2, epochs=4, iters_per_epoch=20)
    hist = tmp_path / "killed" / "runs" / c.run_id() / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (hist.exists() and len(pd.read_csv(hist)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-epoch 3, or mid-write of a file
    proc.wait()
    assert len(pd.read_csv(hist)) < 4, "the run finished before it could be killed"
    subprocess.run(cli(tmp_path / "killed", *args), env=subprocess_env, check=True, capture_output=True)
    resumed = pd.read_csv(hist)
    whole = T.train(c, results=tmp_path / "whole", data_root=data_root, progress=False)
    cols = [k for k in whole.columns if k not in ("wall_time", "train_time")]
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


def test_an_epoch_of_a_multiple_of_check_every_steps_is_checked_once_each(tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(T, "CHECK_EVERY", 6)  # smoke epochs are 12 steps: checked after 6 and 12, nothing left
    h = T.train(smoke(epochs=1, seed=11), results=tmp_path, data_root=data_root, progress=False)
    assert len(h) == 1


def test_patch_too_large_names_the_field(tmp_path, data_root):
    with pytest.raises(ValueError, match=r"RunConfig.patch=4000"):
        T.train(smoke(patch=4000), results=tmp_path, data_root=data_root, progress=False)


@pytest.mark.processes
def test_ddp_with_two_gloo_processes_agrees_and_writes_once(tmp_path, data_root, subprocess_env):
    """The uniform control under DDP: its weight is the global batch's mean attention, and the logged loss
    and weight statistics are the global batch's, so the history is the single process's up to the order
    of float sums; the world size is part of the run's numerics and id."""
    with socket.socket() as s:  # torchrun's static rendezvous needs a concrete free port
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "pspl_nb.train", "--profile", "smoke", "--results", str(tmp_path / "ddp"), "--seed", "4",
           "--set", "device=cpu", "--set", "weighting=uniform"]
    done = subprocess.run(run, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = list((tmp_path / "ddp" / "runs").iterdir())
    assert len(runs) == 1
    meta = json.loads((runs[0] / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["ranks_agree"] is True and meta["state"] == "finished"
    assert meta["numerics"] == "cpu-ddp2"
    ddp = pd.read_csv(runs[0] / "history.csv")
    single = T.train(smoke(seed=4, weighting="uniform"), results=tmp_path / "single", data_root=data_root,
                     progress=False)
    assert runs[0].name != single.attrs["config"].run_id()
    # the same global batches, gradients averaged over ranks: equal up to float summation order
    for column in ("loss", "att_mean", "att_min", "att_max"):
        assert ddp[column].to_numpy() == pytest.approx(single[column].to_numpy(), rel=1e-3), column
    assert (ddp.psnr_embedded_valid - single.psnr_embedded_valid).abs().max() < 0.05


@pytest.mark.processes
def test_cli_overrides_and_errors(tmp_path, subprocess_env):
    done = subprocess.run(cli(tmp_path, "--pspl", "off", "--set", "epochs=1", "--set", "base=l2"), env=subprocess_env,
                          capture_output=True, text=True, check=True)
    assert "edsr_baseline-tiny-x2-l2-s0-" in done.stdout
    bad = subprocess.run(cli(tmp_path, "--set", "lr=-1"), env=subprocess_env, capture_output=True, text=True)
    assert bad.returncode == 2 and "RunConfig.lr=-1.0" in bad.stderr


@pytest.mark.processes
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


def test_loaders_and_worker_counts_give_the_same_history(tmp_path, data_root):
    """Persistent DataLoader workers (the epoch travels in the index) and the device sampler (here on CPU
    tensors) give the batches of the single-process host loader, so the whole history is identical."""
    c = smoke(seed=5, epochs=2)
    cols = ["loss", "att_mean", "psnr_embedded_valid", "ssim_embedded_valid", "psnr_embedded_tune"]
    base = T.train(c, results=tmp_path / "w0", data_root=data_root, progress=False)[cols]
    for name, variant in (("w2", c.replace(workers=2)), ("device", c.replace(loader="device"))):
        other = T.train(variant, results=tmp_path / name, data_root=data_root, progress=False)
        pd.testing.assert_frame_equal(other[cols], base)
        meta = json.loads((tmp_path / name / "runs" / c.run_id() / "meta.json").read_text())
        assert meta["loader"] == ("device" if name == "device" else "host")


def test_meta_records_numerics_sessions_and_the_optimiser_follows_the_config(tmp_path, data_root):
    c = smoke(seed=6, epochs=1, adam_beta2=0.99, lr_mult=2.0)
    run = tmp_path / "runs" / c.run_id()
    for report in T.train_epochs(c, results=tmp_path, data_root=data_root, progress=False):
        assert report.run.optimizer.param_groups[0]["betas"] == (0.9, 0.99)
        assert report.row["lr"] == pytest.approx(2 * c.lr)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["numerics"] == "cpu" and meta["state"] == "finished" and meta["check_every"] == T.CHECK_EVERY
    assert [(s["start_epoch"], s["end_epoch"]) for s in meta["sessions"]] == [(0, 1)]


@pytest.mark.processes
def test_a_run_asked_twice_at_once_is_trained_once(tmp_path, subprocess_env):
    """Two processes start the same run while a third holds its lock: both wait, then one trains and the
    other loads the finished run; meta.json shows a single training session covering every epoch."""
    from filelock import FileLock

    args = ["--seed", "8", "--set", "epochs=2"]
    c = smoke(seed=8, epochs=2)
    folder = tmp_path / "runs" / c.run_id()
    folder.mkdir(parents=True)
    lock = FileLock(folder / ".lock")
    lock.acquire()
    logs = [tmp_path / f"stderr{k}.txt" for k in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as sink:  # the child holds its own copy of the descriptor
            procs.append(subprocess.Popen(cli(tmp_path, *args), env=subprocess_env, stdout=subprocess.PIPE,
                                          stderr=sink, text=True))
    waiting = "another process is training this run"
    try:  # the event: each process says it waits for the lock, after its imports and before training
        deadline = time.time() + 240
        while time.time() < deadline and not all(waiting in log.read_text() for log in logs):
            assert all(p.poll() is None for p in procs), [log.read_text()[-1500:] for log in logs]
            time.sleep(0.1)
    finally:
        lock.release()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    errs = [log.read_text() for log in logs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for e in errs]
    assert all(waiting in err for err in errs)  # both were blocked by the lock held here
    meta = json.loads((folder / "meta.json").read_text())
    assert [(s["start_epoch"], s["end_epoch"]) for s in meta["sessions"]] == [(0, 2)]
    assert outs[0] == outs[1]  # the same history printed by both
    assert not list(folder.glob("*.tmp"))


@pytest.mark.processes
def test_submitit_local_executor_runs_a_grid_in_the_same_run_folders(tmp_path, data_root):
    from pspl_nb.experiments import collect, submit_grid

    configs = [smoke(weighting=w, seed=9, epochs=1) for w in ("none", "pspl")]
    T.train(configs[0], results=tmp_path, data_root=data_root, progress=False)  # half the grid is done
    stamp = (tmp_path / "runs" / configs[0].run_id() / "last.pt").stat().st_mtime_ns
    jobs = submit_grid(configs + configs[:1], tmp_path / "submitit", cluster="local", results=tmp_path,
                       data_root=data_root, timeout_min=10)
    assert len(jobs) == 2  # the duplicate is submitted once
    table = collect(jobs)
    assert sorted(table.arm.unique()) == ["l1", "pspl"]
    assert (tmp_path / "runs" / configs[0].run_id() / "last.pt").stat().st_mtime_ns == stamp  # loaded, not retrained


def test_grid_workers_are_spread_over_the_gpus_they_are_given(monkeypatch):
    import multiprocessing

    from pspl_nb.experiments import _claim_slot, worker_masks

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    workers, per_device = worker_masks((0, 3), 5)
    counter = multiprocessing.Value("i", 0)
    seen = []
    for _ in range(5):
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        _claim_slot(counter, workers, per_device)
        seen.append((os.environ["CUDA_VISIBLE_DEVICES"], os.environ[T.RUNS_PER_DEVICE]))
    assert seen == [("0", "3"), ("3", "2"), ("0", "3"), ("3", "2"), ("0", "3")]


def test_probe_picks_the_smallest_count_no_larger_one_beats_by_ten_percent(monkeypatch, instant_pool):
    """The decision rule, on a measured table (here a stand-in for the timings, which vary by machine)."""
    import pspl_nb.experiments as E

    paces = {1: 100.0, 2: 180.0, 4: 190.0, 8: 150.0}  # seconds so that n * steps / s gives these paces
    monkeypatch.setattr(E, "_probe_worker", None)

    monkeypatch.setattr(E, "ProcessPoolExecutor", instant_pool(lambda n: [n * 50 / paces[n]] * n))
    out = E.probe_concurrency(smoke(), candidates=(1, 2, 4, 8), steps=50)
    assert out["it_per_s"] == pytest.approx(paces) and out["best"] == 2


def test_probe_worker_times_real_training_steps(data_root, monkeypatch):
    """What each probe process runs: real steps of the config's model and loss (in-process here)."""
    import threading

    monkeypatch.setenv(T.RUNS_PER_DEVICE, "1")  # the probe worker sets it; restored after the test

    from pspl_nb.experiments import _probe_worker

    few, more = (_probe_worker((smoke(), steps, 1, threading.Barrier(1), data_root, 1)) for steps in (1, 6))
    assert 0 < few < more


def test_per_image_scores_and_step_sizes_are_recorded_every_epoch(tmp_path, data_root):
    c = smoke(seed=3, iters_per_epoch=10, weighting="none")  # plain L1: PSPL moves almost nothing at first
    h = T.train(c, results=tmp_path, data_root=data_root, progress=False)
    run = tmp_path / "runs" / c.run_id()
    images = pd.read_csv(run / "eval_scores.csv")
    means = images.groupby(["epoch", "set"]).psnr.mean().unstack()
    for name in c.eval_sets:  # the history's means are the means of these rows
        assert means[name].to_numpy() == pytest.approx(h[f"psnr_{name}"].to_numpy(), abs=1e-9)
    assert images.groupby(["epoch", "set"]).size().eq(c.eval_limit).all()
    steps = pd.read_csv(run / "updates.csv")
    assert len(steps) == c.epochs * T.BLOCKS and steps.groupby("epoch").steps.sum().eq(10).all()
    assert steps.age.iloc[:3].tolist() == pytest.approx([0.1, 0.2, 0.3])
    # Adam's first step moves every parameter with a gradient by lr * g / (|g| + eps), about lr each
    assert steps.update_per_lr.iloc[0] == pytest.approx(1.0, abs=0.02)
    assert steps.update_rms.iloc[0] == pytest.approx(steps.lr.iloc[0] * steps.update_per_lr.iloc[0])
    assert h.update_per_lr.to_numpy() == pytest.approx(steps.groupby("epoch").update_per_lr.mean().to_numpy())


def test_update_rms_is_the_root_mean_square_of_the_parameter_change():
    params = [torch.zeros(3), torch.zeros(2, 2)]
    before = [p.clone() for p in params]
    params[0] += torch.tensor([3.0, 0.0, 0.0])
    params[1] += 4.0
    assert T.update_rms(before, params).item() == pytest.approx(((9 + 4 * 16) / 7) ** 0.5)


def test_adam_ignores_a_constant_loss_scale_and_sgd_follows_it():
    from pspl_nb.models import build_model

    steps = {}
    for optimizer in ("adam", "sgd"):
        for scale in (1.0, 2.0):
            torch.manual_seed(0)
            model = build_model("edsr_baseline", 2, "tiny")
            opt = T.make_optimizer(smoke(optimizer=optimizer, lr=1e-3), model.parameters())
            x, y = torch.rand(2, 3, 8, 8) * 255, torch.rand(2, 3, 16, 16) * 255
            params = list(model.parameters())
            before = [p.detach().clone() for p in params]
            (scale * (model(x) - y).abs().mean()).backward()
            opt.step()
            steps[optimizer, scale] = T.update_rms(before, params).item()
    assert steps["adam", 2.0] == pytest.approx(steps["adam", 1.0], rel=1e-4)
    assert steps["sgd", 2.0] == pytest.approx(2 * steps["sgd", 1.0], rel=1e-5)


def test_lr_ramp_multiplies_each_tenth_of_an_epoch_and_holds_its_last_value():
    c = smoke(lr=1e-3, milestones=(100,), lr_ramp=(0.1, 0.5, 2.0))
    ages = {0.025: 0.1, 0.1: 0.1, 0.1 + 1 / 40: 0.5, 0.2: 0.5, 0.3: 2.0, 5.0: 2.0}
    for age, m in ages.items():
        assert T.learning_rate(c, int(age), age) == pytest.approx(1e-3 * m), age
    assert c.arm == "pspl" and c.replace(weighting="none").arm == "l1_lrramp"
    assert c.replace(optimizer="sgd").arm == "pspl_sgd"
    with pytest.raises(ValueError, match="RunConfig.lr_ramp"):
        smoke(lr_ramp=(1.0, -0.5))


def test_a_diverged_run_is_recorded_and_reported_again_instead_of_retrained(tmp_path, data_root, monkeypatch):
    real = T.make_criterion
    monkeypatch.setattr(T, "make_criterion", lambda c: lambda sr, hr, age: real(c)(sr, hr, age) * float("inf"))
    c = smoke(weighting="none", epochs=1)
    with pytest.raises(T.NonFiniteLoss, match="loss=inf at epoch 1"):
        T.train(c, results=tmp_path, data_root=data_root, progress=False)
    meta = json.loads((tmp_path / "runs" / c.run_id() / "meta.json").read_text())
    assert meta["state"] == "diverged" and "loss=inf" in meta["diverged"]
    monkeypatch.setattr(T, "make_criterion", real)
    with pytest.raises(T.NonFiniteLoss, match="recorded earlier"):
        T.train(c, results=tmp_path, data_root=data_root, progress=False)
    assert len(T.train(c, results=tmp_path, data_root=data_root, progress=False, force=True)) == 1


def test_the_test_sets_are_scored_once_on_every_image_after_the_last_epoch(tmp_path):
    """Table 1's path: after the last epoch the final model is scored on every image of each test set (here the
    stand-in's Set5 and Set14, two images each, at their real sizes) by the field's protocol, the means land
    in the last history row and ``questions.final_scores`` reads them from there."""
    import numpy as np

    from pspl_nb import metrics, questions
    from pspl_nb.data import build_standin, ensure_embedded, load_eval_set
    from pspl_nb.evaluate import super_resolve
    from pspl_nb.experiments import tidy
    from pspl_nb.run_folder import load_model

    root = tmp_path / "data"
    build_standin(root, train=0, valid=0, counts=2)
    ensure_embedded(root)
    c = smoke(epochs=2, seed=12, test_sets=("Set5", "Set14"))
    h = T.train(c, results=tmp_path, data_root=root, progress=False)
    scores = pd.read_csv(tmp_path / "runs" / c.run_id() / "test_scores.csv")
    assert scores.groupby("set").size().to_dict() == {"Set5": 2, "Set14": 2}
    model = load_model(c, "last", tmp_path)
    for name in c.test_sets:
        pairs = load_eval_set(name, c.scale, root=root)
        sr = [super_resolve(model, p.lr) for p in pairs]  # scored again on the host, by numpy's protocol
        psnr = [metrics.psnr(s, p.hr, c.scale) for s, p in zip(sr, pairs)]
        ssim = [metrics.ssim(s, p.hr, c.scale) for s, p in zip(sr, pairs)]
        assert scores[scores.set == name].psnr.tolist() == pytest.approx(psnr, abs=1e-9)
        assert scores[scores.set == name].ssim.tolist() == pytest.approx(ssim, abs=1e-9)
        assert h[f"psnr_{name}"].iloc[-1] == pytest.approx(np.mean(psnr), abs=1e-9)
        assert h[f"psnr_{name}"].iloc[:-1].isna().all()  # scored after the last epoch only
    table1 = questions.final_scores(tidy(h), sets=c.test_sets)
    assert table1.psnr.tolist() == [h.psnr_Set5.iloc[-1], h.psnr_Set14.iloc[-1]] and set(table1.arm) == {"pspl"}
    stamp = (tmp_path / "runs" / c.run_id() / "test_scores.csv").stat().st_mtime_ns
    T.train(c, results=tmp_path, data_root=root, progress=False)  # finished: loaded, not scored again
    assert (tmp_path / "runs" / c.run_id() / "test_scores.csv").stat().st_mtime_ns == stamp


def test_a_step_at_lr_zero_has_no_size_per_lr_and_raises_no_warning():
    """An lr ramp that starts at 0 (``l1_lrramp``): those steps' ``update_per_lr`` is NaN, the rest rms / lr."""
    import warnings

    from pspl_nb.train import EpochSteps, update_blocks

    lr = np.array([0.0, 0.0, 1e-4, 2e-4])
    steps = EpochSteps(loss=torch.ones(4), weights=None, update=torch.tensor([0.0, 0.0, 1e-4, 3e-4]), lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = update_blocks(profile("smoke").replace(iters_per_epoch=4), 0, steps)
    per = [r["update_per_lr"] for r in rows]
    assert len(rows) == 4 and np.isnan(per[0]) and np.isnan(per[1])
    assert per[2:] == pytest.approx([1.0, 1.5])
