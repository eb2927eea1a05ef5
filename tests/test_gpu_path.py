"""The trainer's CUDA and DDP branches, exercised on a CPU: CUDA's functions are replaced by recording
stand-ins, DDP runs as gloo processes, bf16 as CPU autocast. What only a GPU can settle (speed, CUDA
kernels' rounding) is measured by ``make gpu-check`` (bench/gpu_check.py) instead.

The CPU path itself must not move: ``test_cpu_histories_are_those_of_the_unchanged_trainer`` pins whole
runs to fingerprints taken from the trainer before the GPU path was reworked.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import pspl_nb.train as T
from pspl_nb.config import profile
from pspl_nb.models import MODELS, build_model



def smoke(**kw):
    return profile("smoke", **kw)


# ---- the CPU path does not move ------------------------------------------------------------------------

def fingerprint(folder) -> str:
    """sha256 (16 hex digits) of a run's history (without its clock columns), eval_scores.csv and updates.csv:
    every float as pandas writes it, i.e. exactly."""
    history = pd.read_csv(folder / "history.csv").drop(columns=["wall_time", "train_time"])
    parts = [t.to_csv(index=False) for t in (history, pd.read_csv(folder / "eval_scores.csv"),
                                            pd.read_csv(folder / "updates.csv"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# Run ids and fingerprints of smoke runs (2 epochs, seed 3, one torch thread) made by the trainer of commit
# 5fba741, before its GPU path was reworked, with torch 2.13.0+cpu on an AVX512 CPU: the machine and
# arithmetic of the committed reference grids. Another torch or CPU kernel set may round differently, so
# there the comparison is skipped; test_the_inner_loop_equals_a_plain_reference_step holds everywhere.
UNCHANGED = {
    "pspl": (dict(), "edsr_baseline-tiny-x2-pspl-s3-518fcc6e11", "67ca7bd1ce3f29f9"),
    "l1": (dict(weighting="none"), "edsr_baseline-tiny-x2-l1-s3-00bcd0c8b3", "9807bd1ec614941c"),
    "uniform": (dict(weighting="uniform"), "edsr_baseline-tiny-x2-uniform-s3-96412ae03d", "d5e5d1509054bac0"),
    "contrast": (dict(weighting="contrast"), "edsr_baseline-tiny-x2-contrast-s3-c3c0759d29", "2039e4d7673d5bd2"),
    "l1_sgd": (dict(weighting="none", optimizer="sgd", lr=1e-6), "edsr_baseline-tiny-x2-l1_sgd-s3-495b6b5ba2",
               "5660877987bcd33d"),
    "drrn_y_device": (dict(model="drrn", channels="y", loader="device", base="l2"), "drrn-tiny-x2-pspl-s3-3b3626a6ca",
                      "5e8cd0a540125eea"),
}
SAME_MACHINE = torch.__version__ == "2.13.0+cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512"


@pytest.mark.parametrize("name", list(UNCHANGED))
def test_cpu_histories_are_those_of_the_unchanged_trainer(tmp_path, data_root, name):
    overrides, run_id, expected = UNCHANGED[name]
    c = smoke(epochs=2, seed=3, **overrides)
    assert c.run_id() == run_id  # the CPU float32 run id does not move either
    if not SAME_MACHINE:
        pytest.skip("fingerprints were taken with torch 2.13.0+cpu on AVX512 kernels")
    T.train(c, results=tmp_path, data_root=data_root, progress=False)
    assert fingerprint(tmp_path / "runs" / run_id) == expected


def reference_epoch(run, batches, epoch):
    """The trainer's inner loop as it was written before the GPU path was reworked (one process)."""
    c, n = run.c, run.c.iters_per_epoch
    to_range = c.rgb_range / 255.0
    params = list(run.model.parameters())
    losses, weights, updates, lrs = [], [], [], []
    for i, (low, high) in enumerate(batches.epoch(epoch)):
        age = epoch + (i + 1) / n
        lrs.append(T.learning_rate(c, epoch, age))
        for group in run.optimizer.param_groups:
            group["lr"] = lrs[-1]
        low, high = low.float().mul_(to_range), high.float().mul_(to_range)
        before = [p.detach().clone() for p in params]
        with torch.autocast("cpu", enabled=False):
            sr = run.net(low)
        loss = run.criterion(sr.float(), high, age)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        losses.append(loss.detach())
        change = torch._foreach_sub([p.detach() for p in params], before)
        size = sum(p.numel() for p in params)
        updates.append(torch.stack(torch._foreach_norm(change)).square().sum().div(size).sqrt())
        if c.pspl:
            weights.append(T.attention_stats(run.criterion.last_attention))
    return torch.stack(losses), torch.stack(weights) if weights else None, torch.stack(updates), np.array(lrs)


@pytest.mark.parametrize("weighting, loader", [("pspl", "device"), ("contrast", "host")])
def test_the_inner_loop_equals_a_plain_reference_step(data_root, weighting, loader):
    c = smoke(seed=2, weighting=weighting, loader=loader, iters_per_epoch=6)
    out = []
    for step in (T.train_epoch, reference_epoch):
        run = T.assemble(c, None, torch.device("cpu"), data_root)
        T.wrap_model(run)
        batches = T.Batches(run, data_root)
        if step is T.train_epoch:
            from tqdm.auto import tqdm

            s = step(run, batches, 0, tqdm(disable=True))
            out.append((s.loss, s.weights, s.update, s.lr))
        else:
            out.append(step(run, batches, 0))
    for new, old in zip(*out):
        assert (new is None and old is None) or np.array_equal(np.asarray(new), np.asarray(old))


# ---- resume on CUDA ----------------------------------------------------------------------------------------

def test_a_checkpoint_keeps_the_cuda_generator_and_resume_reads_it_onto_the_host(tmp_path, data_root, monkeypatch):
    """A CUDA run (here a CPU run told it is on cuda:0, with CUDA's generator calls recorded): the checkpoint
    is read with map_location="cpu", the CPU generator gets a CPU state back, the CUDA one its own, and a
    non-fused Adam's step counters stay on the host."""
    c = smoke(seed=4, epochs=1)
    saved_cuda = torch.tensor([7, 8, 9], dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": saved_cuda.clone())
    cuda = torch.device("cuda", 0)
    assert set(T.rng_states(cuda)) == {"torch", "numpy", "python", "cuda"}
    assert set(T.rng_states(torch.device("cpu"))) == {"torch", "numpy", "python"}

    T.train(c, results=tmp_path, data_root=data_root, progress=False)
    folder = tmp_path / "runs" / c.run_id()
    ck = torch.load(folder / "last.pt", weights_only=False)
    ck["rng"] = T.rng_states(cuda)  # what a CUDA run saves
    torch.save(ck, folder / "last.pt")

    loads, restored = [], []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("map_location")) or real_load(*a, **k))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append((state, device)))
    run = T.assemble(c, folder, torch.device("cpu"), data_root)
    run.device = cuda  # the load path of a CUDA run; tensors stay where load_state_dict puts them
    T.resume(run)
    assert loads == ["cpu"]
    assert torch.equal(torch.get_rng_state(), ck["rng"]["torch"])
    assert len(restored) == 1 and torch.equal(restored[0][0], saved_cuda) and restored[0][1] == cuda
    assert run.epoch == 1 and all(s["step"].device.type == "cpu" for s in run.optimizer.state.values())


# ---- DDP binds each rank's GPU before any collective -------------------------------------------------------

def free_port() -> str:
    with socket.socket() as s:  # torchrun's static rendezvous needs a concrete free port
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def two_ranks(env: dict, script: str, *args, timeout: int = 300) -> list:
    """Run ``script`` (Python source) as the two processes of a DDP group on this machine, in ``env`` with the
    variables torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); returns
    their (returncode, stderr)."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env={**env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                              "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for r in (0, 1)]
    return [(p.wait(timeout), p.stderr.read()) for p in procs]


BIND_ORDER = textwrap.dedent("""
    import functools, json, os, sys
    import torch, torch.distributed as dist
    import pspl_nb.train as T
    from pspl_nb.config import profile

    events = []

    class Stop(Exception):
        pass

    # CUDA as the trainer sees it: available, its device binding recorded
    torch.cuda.is_available = lambda: True
    torch.cuda.set_device = lambda device: events.append(["bind", str(device)])
    real_init = dist.init_process_group

    @functools.wraps(real_init)  # its signature too: the trainer asks it for device_id
    def init(backend=None, **kw):
        events.append(["init", backend, str(kw.get("device_id"))])
        real_init("gloo")  # NCCL needs GPUs; the order of calls is what is checked

    def collective(name):
        def call(*a, **k):
            events.append(["collective", name])
            raise Stop
        return call

    dist.init_process_group = init
    for name in ("broadcast_object_list", "barrier", "all_reduce", "all_gather", "broadcast", "gather_object"):
        setattr(dist, name, collective(name))
    try:
        for _ in T.train_epochs(profile("smoke", device="cuda"), results=sys.argv[1], progress=False):
            pass
    except Stop:
        pass
    with open(os.path.join(sys.argv[1], f"events{os.environ['RANK']}.json"), "w") as f:
        json.dump(events, f)
""")


@pytest.mark.processes
def test_each_ddp_rank_binds_its_gpu_before_the_first_collective(tmp_path, subprocess_env):
    for code, err in two_ranks(subprocess_env, BIND_ORDER, str(tmp_path)):
        assert code == 0, err[-3000:]
    for rank in (0, 1):
        events = json.loads((tmp_path / f"events{rank}.json").read_text())
        assert events[0] == ["bind", f"cuda:{rank}"], events
        assert events[1] == ["init", "nccl", f"cuda:{rank}"], events
        assert events[2][0] == "collective", events


# ---- grid workers inside a scheduler's GPU mask ------------------------------------------------------------

@pytest.mark.parametrize("mask, expected", [("4,6", ["4", "6", "4"]),
                                            ("MIG-a1, MIG-b2", ["MIG-a1", "MIG-b2", "MIG-a1"])])
def test_grid_workers_index_into_the_parents_gpu_mask(monkeypatch, mask, expected):
    import multiprocessing

    from pspl_nb.experiments import _claim_slot, worker_masks

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    workers, per_device = worker_masks((0, 1), 3)
    counter, seen = multiprocessing.Value("i", 0), []
    for _ in range(3):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)  # each worker starts from the parent's environment
        _claim_slot(counter, workers, per_device)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == expected and per_device == {expected[0]: 2, expected[1]: 1}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    with pytest.raises(ValueError, match="sees 2 GPU"):
        worker_masks((0, 2), 3)


def test_a_grid_worker_that_sees_no_gpu_refuses_to_train_on_the_cpu(tmp_path, data_root, monkeypatch):
    from pspl_nb.experiments import _run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="sees no GPU"):
        _run((smoke(), tmp_path, data_root, 1, True))
    assert not (tmp_path / "runs").exists()


# ---- several runs on one GPU budget memory for all of them; the probe measures what will run ---------------

def test_the_device_sampler_budgets_for_every_run_placed_on_the_gpu(monkeypatch):
    gb = 1e9
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * gb, 80 * gb))
    cuda = torch.device("cuda", 0)
    assert T.device_loader_fits(8.5 * gb, cuda, runs=1)  # one DIV2K copy on an empty 80 GB card
    assert not T.device_loader_fits(8.5 * gb, cuda, runs=8)  # eight runs there: eight copies do not fit
    monkeypatch.setenv(T.RUNS_PER_DEVICE, "8")
    assert not T.device_loader_fits(8.5 * gb, cuda)
    assert not T.device_loader_fits(1, torch.device("cpu"), runs=1)


def test_the_probe_runs_the_trainers_steps_on_its_loader_and_leaves_no_process_behind(data_root, monkeypatch,
                                                                                       instant_pool):
    import multiprocessing
    import threading

    import pspl_nb.experiments as E

    steps, kinds = [], []
    real_step, real_batches = T.take_step, T.Batches

    class Recorded(real_batches):
        def __init__(self, run, root):
            super().__init__(run, root)
            kinds.append((self.kind, os.environ[T.RUNS_PER_DEVICE]))

    monkeypatch.setenv(T.RUNS_PER_DEVICE, "1")  # the probe worker sets it; restored after the test
    monkeypatch.setattr(T, "Batches", Recorded)
    monkeypatch.setattr(T, "take_step", lambda run, low, high, *a: steps.append((low.dtype, tuple(low.shape)))
                        or real_step(run, low, high, *a))
    seconds = E._probe_worker((smoke(loader="device"), 3, 1, threading.Barrier(1), data_root, 4))
    assert seconds > 0 and kinds == [("device", "4")]
    assert steps == [(torch.uint8, (4, 3, 16, 16))] * 4  # warm-up and timed steps, real uint8 batches

    # the probe's own processes, answered at once: what remains is its barrier's manager
    monkeypatch.setattr(E, "ProcessPoolExecutor", instant_pool(lambda n: [1.0] * n))
    E.probe_concurrency(smoke(), candidates=(1, 2), steps=5)
    assert multiprocessing.active_children() == []


# ---- bf16 autocast leaves the output image in float32 ------------------------------------------------------

def off_bf16_grid(t: torch.Tensor) -> float:
    """Share of the elements of a float32 tensor that bf16 cannot represent."""
    return (t != t.bfloat16().float()).float().mean().item()


@pytest.mark.parametrize("name", list(MODELS))
def test_under_bf16_autocast_the_criterion_receives_a_float32_image_off_the_bf16_grid(name):
    scale, channels = (2, 1) if name in ("drrn", "lapsrn") else (2, 3)
    torch.manual_seed(0)
    model = build_model(name, scale, "tiny", channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    low, high = torch.rand(2, channels, 12, 12) * 255, torch.rand(2, channels, 24, 24) * 255
    seen = []

    def criterion(sr, hr, age):
        seen.append(sr.detach())
        return (sr - hr).abs().mean()

    loss = T.train_step(model, criterion, optimizer, low, high, 1.0, torch.autocast("cpu", dtype=torch.bfloat16))
    assert torch.isfinite(loss)
    assert seen[0].dtype == torch.float32 and off_bf16_grid(seen[0]) > 0.9
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        inside = model(low)
    assert inside.dtype == torch.float32 and off_bf16_grid(inside) > 0.9


def test_imresize_keeps_its_input_dtype_and_values_under_autocast():
    from pspl_nb.resize import imresize

    x = torch.rand(2, 3, 10, 14) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = imresize(x, 2)
    assert inside.dtype == torch.float32 and torch.equal(inside, imresize(x, 2))


# ---- DDP takes the objective's and the log's statistics over the global batch ------------------------------

SHARDED_LOSS = textwrap.dedent("""
    import os, sys
    import torch, torch.distributed as dist
    from pspl_nb.pspl import PSPLLoss
    from pspl_nb.train import ShardedBatch

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    sr, hr = torch.rand(4, 3, 24, 24) * 255, torch.rand(4, 3, 24, 24) * 255
    out = {}
    for weights in ("mean", "contrast"):
        for age in (0.05, 1.0):
            whole = sr.clone().requires_grad_()
            loss = PSPLLoss(data_range=255.0, ssim="official", weights=weights)(whole, hr, age)
            loss.backward()
            shard = sr[rank * 2:(rank + 1) * 2].clone().requires_grad_()
            mine = PSPLLoss(data_range=255.0, ssim="official", weights=weights, batch=ShardedBatch(world))
            part = mine(shard, hr[rank * 2:(rank + 1) * 2], age)
            part.backward()
            mean = part.detach().clone()
            dist.all_reduce(mean)
            # DDP averages the ranks' gradients: each rank's share of the single-process gradient is its own / world
            out[f"{weights}-{age}"] = [loss.item(), mean.item() / world,
                                       (shard.grad / world - whole.grad[rank * 2:(rank + 1) * 2]).abs().max().item(),
                                       whole.grad.abs().max().item()]
    torch.save(out, os.path.join(sys.argv[1], f"rank{rank}.pt"))
    dist.destroy_process_group()
""")


@pytest.mark.processes
def test_the_controls_normalise_by_the_global_batch_across_gloo_processes(tmp_path, subprocess_env):
    for code, err in two_ranks(subprocess_env, SHARDED_LOSS, str(tmp_path)):
        assert code == 0, err[-3000:]
    for rank in (0, 1):
        for key, (whole, sharded, grad_diff, grad_max) in torch.load(tmp_path / f"rank{rank}.pt").items():
            assert sharded == pytest.approx(whole, rel=1e-5), key
            assert grad_diff <= 1e-5 * grad_max, key


def test_the_world_size_enters_numerics_and_the_run_id_only_when_there_are_several_processes(monkeypatch):
    c = smoke()
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single = (c.numerics(), c.run_id())
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert (c.numerics(), c.run_id()) == single == ("cpu", single[1])
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert c.numerics() == "cpu-ddp4" and c.run_id() != single[1]


def test_epoch_statistics_are_taken_over_every_rank(monkeypatch):
    """``global_steps`` averages the ranks' losses and mean weights and combines minima and maxima
    (all_reduce replaced by a stand-in for a second rank whose values are twice this one's)."""
    from torch.distributed import ReduceOp

    def all_reduce(t, op=ReduceOp.SUM):
        other = 2 * t
        if op == ReduceOp.SUM:
            t += other
        else:
            (torch.minimum if op == ReduceOp.MIN else torch.maximum)(t, other, out=t)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    steps = T.EpochSteps(torch.tensor([1.0, 2.0]), torch.tensor([[0.5, 0.1, 1.0], [0.7, 0.2, 1.5]]),
                         torch.tensor([1e-4, 2e-4]), np.array([1e-3, 1e-3]))
    out = T.global_steps(steps, 2)
    assert out.loss.tolist() == pytest.approx([1.5, 3.0])  # (1 + 2) / 2, (2 + 4) / 2
    assert out.weights.flatten().tolist() == pytest.approx([0.75, 0.1, 2.0, 1.05, 0.2, 3.0])
    assert torch.equal(out.update, steps.update) and T.global_steps(steps, 1) is steps


# ---- TF32 is a stated choice, and the SSIM map stays IEEE float32 ------------------------------------------

def test_the_ssim_map_filters_in_ieee_float32_whatever_the_tf32_setting(monkeypatch):
    import pspl_nb.ssim as S

    seen = []
    real = S._filter_moments
    monkeypatch.setattr(S, "_filter_moments", lambda *a: seen.append(
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)) or real(*a))
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        S.ssim_map(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), moments="float32")
        after = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert seen == [(False, False)] and after == (True, True)


def test_tf32_enters_numerics_on_cuda_only_and_the_paper_profile_says_ieee():
    assert profile("smoke", device="cuda", tf32=True).numerics() == "cuda-tf32"
    assert profile("smoke", device="cuda").numerics() == "cuda"
    assert profile("smoke", device="cpu", tf32=True).numerics() == "cpu"
    assert profile("smoke", device="cpu", tf32=True).run_id() == profile("smoke", device="cpu").run_id()
    assert profile("paper").tf32 is False


def test_the_run_sets_its_tf32_choice_on_cuda(monkeypatch):
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for choice in (True, False):
            state = T.set_float32_precision(smoke(tf32=choice), torch.device("cuda", 0))
            assert state == dict(matmul=choice, cudnn=choice, in_effect=True)
        torch.backends.cuda.matmul.allow_tf32 = True
        assert T.set_float32_precision(smoke(), torch.device("cpu"))["in_effect"] is False
        assert torch.backends.cuda.matmul.allow_tf32 is True  # nothing set off CUDA
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


# ---- fused optimiser on CUDA, recorded ---------------------------------------------------------------------

def test_the_optimiser_is_fused_on_cuda_and_the_default_elsewhere():
    params = list(build_model("edsr_baseline", 2, "tiny").parameters())
    for name, cls in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)):
        fused = T.make_optimizer(smoke(optimizer=name), params, torch.device("cuda"))
        plain = T.make_optimizer(smoke(optimizer=name), params, torch.device("cpu"))
        assert isinstance(fused, cls) and fused.defaults["fused"] is True
        assert not plain.defaults.get("fused") and not plain.defaults.get("foreach")
        assert T.optimizer_kind(fused) == f"{cls.__name__} (fused)"
        assert T.optimizer_kind(plain) == f"{cls.__name__} (for-loop)"


def test_meta_records_the_optimiser_and_the_float32_settings(tmp_path, data_root):
    c = smoke(seed=7, epochs=1)
    T.train(c, results=tmp_path, data_root=data_root, progress=False)
    meta = json.loads((tmp_path / "runs" / c.run_id() / "meta.json").read_text())
    assert meta["optimizer"] == "Adam (for-loop)"
    assert meta["tf32"]["in_effect"] is False and set(meta["tf32"]) == {"matmul", "cudnn", "in_effect"}


# ---- evaluation: staged on the device, inference mode, batched by shape ------------------------------------

def test_batched_scores_equal_the_scores_of_one_image_at_a_time():
    from pspl_nb.metrics import scores_of_batch, scores_on_device

    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (3, 3, 40, 36), generator=g).float()
    sr = (hr + torch.randint(-9, 10, hr.shape, generator=g)).clamp(0, 255)
    sr[1] = hr[1]  # identical images: PSNR inf in both
    for y_channel in (True, False):
        batch = scores_of_batch(sr, hr, 2, y_channel, edsr_shave=8)
        for i in range(3):
            one = scores_on_device(sr[i:i + 1], hr[i:i + 1], 2, y_channel, edsr_shave=8)
            for key, value in one.items():
                assert batch[key][i].item() == pytest.approx(value, rel=1e-12, abs=1e-12), (key, i)


def test_batched_evaluation_of_staged_images_agrees_with_one_image_at_a_time(data_root):
    """Batches change only the float rounding inside the model (a batch of N convolves in another order than
    N batches of 1), so a few pixels may round to the other uint8 value: scores agree to 1e-3 dB."""
    from pspl_nb.data import EvalPair, load_eval_set
    from pspl_nb.evaluate import evaluate, shape_batches, stage_pairs

    pairs = load_eval_set("embedded_valid", 2, root=data_root)
    images = [EvalPair(f"{p.name}-{k}", p.lr[k:k + h, :w], p.hr[2 * k:2 * (k + h), :2 * w])
              for p in pairs for k in (0, 3) for h, w in ((20, 24), (16, 30))]  # two shapes, several images of each
    for name, channels in (("edsr_baseline", "rgb"), ("drrn", "y")):
        torch.manual_seed(0)
        model = build_model(name, 2, "tiny", 3 if channels == "rgb" else 1).train()
        one = evaluate(model, images, 2, channels, edsr_metric=True, batched=False)
        staged = stage_pairs(images, channels, "cpu")
        batched = evaluate(model, staged, 2, channels, edsr_metric=True, batched=True)
        assert model.training  # evaluation leaves the model's mode as it found it
        assert list(batched.image) == list(one.image) == [p.name for p in images]
        for column, tolerance in (("psnr", 1e-3), ("ssim", 1e-5), ("edsr_psnr", 1e-3)):
            np.testing.assert_allclose(batched[column], one[column], rtol=0, atol=tolerance)
        # the default on the CPU is one image at a time, the scores bit for bit those of the pairs
        pd.testing.assert_frame_equal(evaluate(model, staged, 2, channels, edsr_metric=True), one)
    groups = shape_batches(stage_pairs(images, "rgb", "cpu"), max_pixels=20 * 24 * 3)
    assert sorted(i for g in groups for i in g) == list(range(len(images))) and max(map(len, groups)) == 3
    assert all(len({tuple(images[i].lr.shape) for i in g}) == 1 for g in groups)


def test_evaluation_in_inference_mode_leaves_nothing_training_cannot_use(data_root):
    """Inference mode makes inference tensors; the resize matrices and SSIM buffers it caches are then used
    by training steps, which must be able to save them for backward and write into them."""
    from pspl_nb.data import EvalPair
    from pspl_nb.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model("vdsr", 2, "tiny")
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (13, 13, 3), dtype=np.uint8)  # the training patch's size: the same cache entries
    evaluate(model, [EvalPair("a", lr, rng.integers(0, 256, (26, 26, 3), dtype=np.uint8))], 2)
    criterion = T.make_criterion(smoke())
    optimizer = torch.optim.Adam(model.parameters())
    low, high = torch.rand(2, 3, 13, 13) * 255, torch.rand(2, 3, 26, 26) * 255
    off = torch.autocast("cpu", enabled=False)
    assert torch.isfinite(T.train_step(model, criterion, optimizer, low, high, 1.0, off))
