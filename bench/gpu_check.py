"""``make gpu-check``: what only a CUDA machine can settle about the kit, in one command of at most 8 minutes.

    python -m bench.gpu_check                   # one CUDA GPU -> results/gpu-check/gpu_check.json, table.md
    python -m bench.gpu_check --dry             # every phase on the CPU at toy sizes (tests/test_gpu_check.py)
    python -m bench.gpu_check --phases speed    # some phases only

Phases, in order, each under its own time limit (``LIMITS``, seconds; 480 in all):

    env       torch, CUDA, cuDNN, the GPU, torch's default TF32 settings, the kit's commit
    sampler   the device sampler's batches = the host loader's, bit for bit; seconds to plan an epoch, to cut a batch
    metrics   SSIM map on the GPU = on the CPU (float64: 1e-10; float32 moments, with TF32 switched on: 1e-4);
              scores of the same uint8 images = the CPU's numpy protocol (1e-9 dB, SSIM 1e-10); a model's
              evaluation on the GPU = on the CPU (0.01 dB: the convolutions round differently)
    models    one fp32 and one bf16 step of every model (full size): finite loss, and under bf16 a float32
              image off bf16's grid reaches the loss
    profiles  every profile for a few iterations through the real trainer (on the embedded images);
              a run stopped after one epoch and resumed = the uninterrupted run
    speed     the trainer's own inner loop (``train.train_epoch``) for EDSR-baseline x2, batch 16, LR 48:
              L1 and PSPL x fp32 (IEEE), TF32 and bf16 (+ channels_last), device sampler; the host loader
              once; evaluation seconds per 2K image and its share of an epoch at the paper's protocol
    compiled  the same inner loop with ``compile=True`` (bf16, L1 and PSPL)
    graph     the ceiling of a whole step captured in one CUDA graph (bf16, L1 and PSPL): static batch
              buffers refilled from the device sampler, capturable Adam (a measurement; the trainer does
              not capture)

Every phase records its own failure (an exception, a crash of its process, its time limit) and the table
is written whatever happens. The phases run in one worker process, started again after a phase that
crashed or ran out of time; the driver itself imports no torch. ``--dry`` runs the same code on the CPU at
toy sizes (in bf16 as CPU autocast, compiled with dynamo's eager backend, the graph phase without a graph):
``make test`` runs it, so the command cannot rot unseen.
"""
import argparse
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

PHASES = ("env", "sampler", "metrics", "models", "profiles", "speed", "compiled", "graph")
LIMITS = dict(env=30, sampler=30, metrics=30, models=60, profiles=90, speed=90, compiled=110, graph=40)  # seconds
DRY_LIMITS = {name: 120 for name in PHASES}  # a loaded 2-core CI machine; the dry run takes ~30 s in all
MARK = "@@gpu-check"  # prefix of the worker's progress lines on stdout


@dataclass(frozen=True)
class Sizes:
    """How big each phase's work is: the paper's shapes on a GPU, toy ones for ``--dry``."""

    size: str             # model size preset
    patch: int            # LR patch side
    batch: int
    sampler_iters: int    # iterations per epoch the sampler phase compares and plans
    speed_steps: int      # timed iterations per speed case (after an epoch of as many to warm up)
    graph_steps: int
    eval_lr: tuple        # LR side of the synthetic evaluation images (h, w)
    eval_images: int


GPU = Sizes(size="full", patch=48, batch=16, sampler_iters=100, speed_steps=300, graph_steps=300,
            eval_lr=(678, 1020), eval_images=6)
DRY = Sizes(size="tiny", patch=12, batch=4, sampler_iters=3, speed_steps=2, graph_steps=2, eval_lr=(20, 30),
            eval_images=2)


def row(check: str, value, target: str = "", ok: bool | None = None) -> dict:
    """One line of the table: what was checked, what came out, what it should be, and whether it is (None:
    information only)."""
    return dict(check=check, value=value, target=target, ok=ok)


# ---- the worker's side: the phases ---------------------------------------------------------------------------

class Context:
    """What every phase shares: the device, the sizes, the data root and the output folder."""

    def __init__(self, dry: bool, out: Path, data: Path | None = None):
        import torch

        self.dry, self.out = dry, out
        if not dry and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device: run `python -m bench.gpu_check --dry` for the CPU rehearsal")
        self.device = torch.device("cpu" if dry else "cuda")
        self.sizes = DRY if dry else GPU
        self.data = data or out / "data"
        from pspl_nb.data import ensure_embedded

        ensure_embedded(self.data)  # scikit-image's bundled photographs: no network needed

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def config(self, name: str = "paper", **changes):
        """A profile on the embedded images with this check's device, sizes and no snapshots."""
        from pspl_nb.config import profile

        base = dict(dataset="embedded", val_set="embedded_valid", eval_sets=("embedded_valid",), eval_limit=1,
                    attention_steps=(), test_sets=(), device=self.device.type, workers=0, size=self.sizes.size)
        if name in ("paper", "gpu", "rehearse"):
            base.update(patch=self.sizes.patch, batch=self.sizes.batch)
        return profile(name, **{**base, **changes})


def phase_env(ctx: Context) -> list:
    import torch

    from pspl_nb.run_folder import code_version

    rows = [row("torch", torch.__version__), row("CUDA (torch build)", torch.version.cuda),
            row("cuDNN", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None),
            row("python", platform.python_version()), row("kit commit", code_version()),
            row("torch default: TF32 matrix products", torch.backends.cuda.matmul.allow_tf32),
            row("torch default: TF32 convolutions", torch.backends.cudnn.allow_tf32),
            row("float32 matmul precision", torch.get_float32_matmul_precision())]
    if ctx.device.type == "cuda":
        p = torch.cuda.get_device_properties(ctx.device)
        rows += [row("GPU", p.name), row("compute capability", f"{p.major}.{p.minor}"),
                 row("GPU memory (GiB)", round(p.total_memory / 2**30, 1)),
                 row("GPUs visible", torch.cuda.device_count())]
    else:
        rows.append(row("GPU", "none (--dry: everything on the CPU)"))
    return rows


def phase_sampler(ctx: Context) -> list:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from pspl_nb.data import TrainPatches
    from pspl_nb.data.datasets import EpochBatches
    from pspl_nb.data.device_patches import DevicePatches

    s, rows = ctx.sizes, []
    for y_channel in (False, True):
        host = TrainPatches("embedded", 2, s.patch, s.batch, s.sampler_iters, seed=1, y_channel=y_channel,
                            root=ctx.data)
        device = DevicePatches(host, ctx.device)
        sampler = EpochBatches(s.sampler_iters, s.batch)
        same = total = 0
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            ids = [[i for _, i in indices] for indices in sampler]
            for (lr, hr), (d_lr, d_hr) in zip(DataLoader(host, batch_sampler=sampler), device.epoch(epoch, ids)):
                same += torch.equal(d_lr.cpu(), lr) and torch.equal(d_hr.cpu(), hr)
                total += 1
        rows.append(row(f"device sampler = host loader, {'Y' if y_channel else 'RGB'}, 2 epochs",
                        f"{same}/{total} batches equal", "all, bit for bit", same == total))
    epoch_of_1000 = TrainPatches("embedded", 2, s.patch, s.batch, 1000, seed=1, root=ctx.data)
    t0 = time.perf_counter()
    epoch_of_1000.plans(0, np.arange(1000 * s.batch))
    rows.append(row("planning an epoch of 1000 iterations (background thread)", f"{time.perf_counter() - t0:.2f} s",
                    "well under an epoch's training time"))
    ids = [list(range(t * s.batch, (t + 1) * s.batch)) for t in range(s.sampler_iters)]
    batches = device.epoch(5, ids)
    next(batches)
    ctx.sync()
    t0 = time.perf_counter()
    n = sum(1 for _ in batches)
    ctx.sync()
    rows.append(row("cutting a planned batch (Y)", f"{(time.perf_counter() - t0) / max(n, 1) * 1e3:.3f} ms", ""))
    return rows


def phase_metrics(ctx: Context) -> list:
    import numpy as np
    import torch

    from pspl_nb import metrics
    from pspl_nb.data import load_eval_set
    from pspl_nb.evaluate import evaluate
    from pspl_nb.models import build_model
    from pspl_nb.ssim import ssim_map

    rows, dev = [], ctx.device
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 96, 96, generator=g, dtype=torch.float64) * 255
    y = (x + 20 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 255)
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    for moments, dtype, tol in (("float64", torch.float64, 1e-10), ("float32", torch.float32, 1e-4)):
        for tf32 in ((False, True) if moments == "float32" else (False,)):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            try:
                a = ssim_map(x.to(dev, dtype), y.to(dev, dtype), 255.0, "zeros", moments=moments).cpu().double()
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
            b = ssim_map(x.to(dtype), y.to(dtype), 255.0, "zeros", moments=moments).double()
            diff = (a - b).abs().max().item()
            rows.append(row(f"SSIM map {moments} moments, device vs CPU" + (", TF32 on" if tf32 else ""),
                            f"{diff:.1e}", f"<= {tol:g}", diff <= tol))
    pairs = load_eval_set("embedded_valid", 2, root=ctx.data, limit=2)
    rng = np.random.default_rng(0)
    worst = [0.0, 0.0]
    for p in pairs:
        sr = np.clip(p.hr.astype(int) + rng.integers(-6, 7, p.hr.shape), 0, 255).astype(np.uint8)
        t = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None].to(dev).float() for im in (sr, p.hr)]
        on_device = metrics.scores_of_batch(*t, 2, y_channel=True)
        worst[0] = max(worst[0], abs(on_device["psnr"].item() - metrics.psnr(sr, p.hr, 2)))
        worst[1] = max(worst[1], abs(on_device["ssim"].item() - metrics.ssim(sr, p.hr, 2)))
    rows.append(row("scores of the same uint8 images: device vs numpy (PSNR)", f"{worst[0]:.1e} dB", "<= 1e-9 dB",
                    worst[0] <= 1e-9))
    rows.append(row("scores of the same uint8 images: device vs numpy (SSIM)", f"{worst[1]:.1e}", "<= 1e-10",
                    worst[1] <= 1e-10))
    crops = [p._replace(lr=p.lr[:64, :64], hr=p.hr[:128, :128]) for p in pairs]
    torch.manual_seed(0)
    model = build_model("edsr_baseline", 2, ctx.sizes.size)
    on_cpu = evaluate(model, crops, 2, edsr_metric=True)
    on_device = evaluate(model.to(dev), crops, 2, edsr_metric=True)
    diff = (on_device.psnr - on_cpu.psnr).abs().max()
    rows.append(row("evaluation of one model, device vs CPU (PSNR)", f"{diff:.1e} dB", "<= 0.01 dB",
                    bool(diff <= 0.01)))
    return rows


def phase_models(ctx: Context) -> list:
    import torch

    from pspl_nb.models import MODEL_CARDS, MODELS, build_model
    from pspl_nb.train import make_criterion, train_step

    rows, dev, p = [], ctx.device, ctx.sizes.patch // 2 * 2
    for name in MODELS:
        card = MODEL_CARDS[name]
        channels = 1 if card.channels == "Y" else 3
        c = ctx.config("paper", model=name, channels=card.channels.lower())
        results = []
        for bf16 in (False, True):
            torch.manual_seed(0)
            model = build_model(name, 2, ctx.sizes.size, channels).to(dev)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            low = torch.rand(2, channels, p, p, device=dev) * 255
            high = torch.rand(2, channels, 2 * p, 2 * p, device=dev) * 255
            seen = []
            criterion = make_criterion(c)

            def spy(sr, hr, age, criterion=criterion, seen=seen):
                seen.append(sr.detach())
                return criterion(sr, hr, age)

            amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)
            loss = train_step(model, spy, optimizer, low, high, 1.0, amp).item()
            off = (seen[0] != seen[0].bfloat16().float()).float().mean().item()
            results.append((loss, seen[0].dtype, off))
        (l32, _, _), (l16, dtype, off) = results
        ok = all(map(torch.isfinite, torch.tensor([l32, l16]))) and dtype == torch.float32 and off > 0.9
        rows.append(row(f"{name}: fp32 and bf16 steps", f"loss {l32:.4g} / {l16:.4g}; bf16 output {dtype}, "
                        f"{off:.0%} off bf16's grid", "finite; float32, > 90% off the grid", ok))
    return rows


def phase_profiles(ctx: Context) -> list:
    import torch

    from pspl_nb.config import PROFILES
    from pspl_nb.run_folder import read_meta, run_folder
    from pspl_nb.train import train, train_epochs

    rows, results = [], ctx.out / "runs"
    for name in PROFILES:
        workers = 0 if ctx.dry else min(PROFILES[name].get("workers", 0), 2)  # worker processes: the real run only
        c = ctx.config(name, iters_per_epoch=3, epochs=1, milestones=(), workers=workers)
        t0 = time.perf_counter()
        h = train(c, results=results, data_root=ctx.data, progress=False, force=True)
        meta = read_meta(run_folder(c, results))
        rows.append(row(f"profile {name}: 3 iterations through the trainer",
                        f"loss {h.loss.iloc[-1]:.4g}, {meta['numerics']}, {meta['loader']} loader, "
                        f"{meta['optimizer']}, {time.perf_counter() - t0:.1f} s", "finished, finite loss",
                        meta["state"] == "finished" and bool(torch.isfinite(torch.tensor(h.loss.iloc[-1])))))
    c = ctx.config("gpu", iters_per_epoch=4, epochs=2, milestones=(1,), loader="device", seed=3)
    whole = train(c, results=results / "whole", data_root=ctx.data, progress=False, force=True)
    epochs = train_epochs(c, results=results / "stopped", data_root=ctx.data, progress=False, force=True)
    next(epochs)
    epochs.close()  # stopped after the first epoch, as a stopped notebook race leaves it
    for report in train_epochs(c, results=results / "stopped", data_root=ctx.data, progress=False):
        steps = [s["step"] for s in report.run.optimizer.state.values()]  # after the resume
    resumed = train(c, results=results / "stopped", data_root=ctx.data, progress=False)
    loss = float(((resumed.loss - whole.loss).abs() / whole.loss).max())
    psnr = float((resumed.psnr_embedded_valid - whole.psnr_embedded_valid).abs().max())
    exact = loss == 0 and psnr == 0
    rows.append(row("stopped after epoch 1 and resumed vs uninterrupted",
                    f"loss {loss:.1e} (relative), PSNR {psnr:.1e} dB",
                    "equal (CPU); <= 1e-3 and 0.05 dB (cuDNN's kernels are not deterministic)",
                    exact or (ctx.device.type == "cuda" and loss <= 1e-3 and psnr <= 0.05)))
    rows.append(row("optimiser step counters live on", ", ".join(sorted({str(s.device) for s in steps})),
                    "the GPU with the fused Adam, the CPU otherwise"))
    return rows


def trainer_pace(ctx: Context, c, warm_epochs: int = 1) -> float:
    """Iterations per second of the trainer's own inner loop (``train.train_epoch``, with its bookkeeping and
    finiteness checks) for config ``c``: one epoch to warm up (cuDNN's search, compilation), then one timed."""
    import torch
    from tqdm.auto import tqdm

    from pspl_nb import train as T

    T.set_float32_precision(c, ctx.device)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run = T.assemble(c, None, ctx.device, ctx.data)
    T.wrap_model(run)
    batches, bar = T.Batches(run, ctx.data), tqdm(disable=True)
    for epoch in range(warm_epochs):
        T.train_epoch(run, batches, epoch, bar)
    ctx.sync()
    t0 = time.perf_counter()
    T.train_epoch(run, batches, warm_epochs, bar)
    ctx.sync()
    return c.iters_per_epoch / (time.perf_counter() - t0)


NUMERICS = {"fp32": dict(amp=False, tf32=False, channels_last=False),
            "tf32": dict(amp=False, tf32=True, channels_last=False),
            "bf16": dict(amp=True, tf32=False, channels_last=True)}  # the gpu profile's
PSPL_TARGETS = {"bf16": ">= 300 it/s (step captured)", "tf32": ">= 200 it/s"}  # EDSR-baseline x2, batch 16, LR 48


def speed_rows(ctx: Context, compile: bool) -> tuple[list, dict]:
    """Paces of L1 and PSPL in each numerics (bf16 only when compiled), with PSPL / L1 per numerics.
    ``--dry`` leaves out TF32 (a flag the CPU ignores) and, compiled, L1."""
    rows, pace = [], {}
    kinds = ("bf16",) if compile else ("fp32", "bf16") if ctx.dry else tuple(NUMERICS)
    for kind in kinds:
        for weighting in ("pspl",) if compile and ctx.dry else ("none", "pspl"):
            c = ctx.config("paper", model="edsr_baseline", weighting=weighting, iters_per_epoch=ctx.sizes.speed_steps,
                           loader="device", compile=compile, **NUMERICS[kind])
            pace[kind, weighting] = trainer_pace(ctx, c)
            arm, how = "PSPL" if weighting == "pspl" else "L1", "compiled" if compile else "eager"
            target = PSPL_TARGETS.get(kind, "") if arm == "PSPL" else ""
            rows.append(row(f"{how} {kind} {arm}", f"{pace[kind, weighting]:.1f} it/s", target))
        if (kind, "none") in pace:
            ratio = pace[kind, "none"] / pace[kind, "pspl"]
            rows.append(row(f"{how} {kind}: PSPL / L1 step time", f"{ratio:.3f}", "<= 1.03",
                            ratio <= 1.03 if ctx.device.type == "cuda" else None))
    return rows, pace


def phase_speed(ctx: Context) -> list:
    import numpy as np

    from pspl_nb.data import EvalPair
    from pspl_nb.evaluate import evaluate, stage_pairs
    from pspl_nb.models import build_model

    rows, pace = speed_rows(ctx, compile=False)
    c = ctx.config("paper", model="edsr_baseline", iters_per_epoch=ctx.sizes.speed_steps, loader="host",
                   workers=0 if ctx.dry else 4, **NUMERICS["bf16"])
    rows.append(row("eager bf16 PSPL, host loader (4 workers)", f"{trainer_pace(ctx, c):.1f} it/s", ""))
    h, w = ctx.sizes.eval_lr
    rng = np.random.default_rng(0)
    images = [EvalPair(str(k), rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                       rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8)) for k in range(ctx.sizes.eval_images)]
    staged = stage_pairs(images, "rgb", ctx.device)
    model = build_model("edsr_baseline", 2, ctx.sizes.size).to(ctx.device)
    evaluate(model, staged, 2, edsr_metric=True)  # warm-up: cuDNN's search for the shape
    ctx.sync()
    t0 = time.perf_counter()
    evaluate(model, staged, 2, edsr_metric=True)
    ctx.sync()
    per_image = (time.perf_counter() - t0) / len(images)
    epoch_train = 1000 / pace["bf16", "pspl"]
    share = 100 * per_image / (epoch_train + 100 * per_image)
    rows.append(row(f"evaluation per {2 * w}x{2 * h} image (x2, batched, inference mode)",
                    f"{per_image * 1e3:.1f} ms", ""))
    rows.append(row("evaluation's share of an epoch (100 images per 1000 bf16 PSPL iterations)", f"{share:.1%}",
                    "<= 15% at the target pace", share <= 0.15 if ctx.device.type == "cuda" else None))
    return rows


def phase_compiled(ctx: Context) -> list:
    import functools

    import torch

    if ctx.dry:  # inductor compiles for minutes on a small CPU; dynamo's own tracing is what can rot
        torch.compile = functools.partial(torch.compile, backend="eager")
    return speed_rows(ctx, compile=True)[0]


def phase_graph(ctx: Context) -> list:
    """The pace of a whole step (forward, loss, backward, Adam) replayed from one CUDA graph: what capturing
    the trainer's step could reach. On the CPU (``--dry``) the same step runs without a graph."""
    import torch

    from pspl_nb import train as T

    rows, dev = [], ctx.device
    for weighting in ("none", "pspl"):
        c = ctx.config("paper", model="edsr_baseline", weighting=weighting, loader="device", **NUMERICS["bf16"])
        torch.manual_seed(0)
        run = T.assemble(c, None, dev, ctx.data)
        net = run.model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(net.parameters(), lr=c.lr, betas=(0.9, c.adam_beta2), eps=1e-8,
                                     capturable=dev.type == "cuda")
        batches = T.Batches(run, ctx.data)
        stream = (pair for epoch in range(10**6) for pair in batches.epoch(epoch))
        low, high = next(stream)
        static_low = torch.empty(low.shape, device=dev).contiguous(memory_format=torch.channels_last)
        static_high = torch.empty(high.shape, device=dev)

        def refill(pair):
            static_low.copy_(pair[0]).mul_(c.rgb_range / 255.0)
            static_high.copy_(pair[1]).mul_(c.rgb_range / 255.0)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=False):
                sr = net(static_low)
            loss = run.criterion(sr.float(), static_high, 1.0)
            loss.backward()
            optimizer.step()
            return loss

        refill((low, high))
        if dev.type == "cuda":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the graph: cuDNN's search, the loss's cached matrices
                for _ in range(3):
                    optimizer.zero_grad(set_to_none=True)
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                step()
            replay = graph.replay
        else:
            def replay():
                optimizer.zero_grad(set_to_none=True)
                step()
        for _ in range(3):
            refill(next(stream))
            replay()
        ctx.sync()
        t0 = time.perf_counter()
        for _ in range(ctx.sizes.graph_steps):
            refill(next(stream))
            replay()
        ctx.sync()
        it_s = ctx.sizes.graph_steps / (time.perf_counter() - t0)
        arm = "PSPL" if weighting == "pspl" else "L1"
        rows.append(row(f"whole-step {'CUDA graph' if dev.type == 'cuda' else 'eager stand-in (CPU)'} bf16 {arm}",
                        f"{it_s:.1f} it/s", ">= 300 it/s" if arm == "PSPL" else ""))
    return rows


def work(phases, dry: bool, out: Path, data: Path | None) -> None:
    """The worker: run ``phases`` in order, each result (or its error) written to ``out/phases/<name>.json``,
    its start and end announced on stdout for the driver's clock."""
    (out / "phases").mkdir(parents=True, exist_ok=True)
    ctx = None
    for name in phases:
        print(f"{MARK} start {name}", flush=True)
        t0 = time.perf_counter()
        try:
            ctx = ctx or Context(dry, out, data)
            result = dict(status="ran", rows=globals()[f"phase_{name}"](ctx))
        except Exception as e:  # recorded, and the next phase still runs
            result = dict(status="error", rows=[], error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        result["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "phases" / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"{MARK} end {name}", flush=True)


# ---- the driver's side: limits, restarts, the table ----------------------------------------------------------

def _pump(stream, lines: queue.Queue) -> None:
    """Copy a worker's stdout into ``lines``, then None at its end (a thread per worker: its own pipe and
    queue, bound when the thread is made, so a late-starting thread never reads the next worker's pipe)."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def drive(phases, dry: bool, out: Path, limits: dict, data: Path | None = None) -> dict:
    """Run ``phases`` in worker processes under their time limits; returns {phase: result}."""
    results, todo = {}, list(phases)
    while todo:
        cmd = [sys.executable, "-m", "bench.gpu_check", "--worker", "--phases", ",".join(todo), "--out", str(out)]
        cmd += (["--dry"] if dry else []) + (["--data", str(data)] if data else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True,
                                cwd=Path(__file__).resolve().parents[1])
        lines = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        current, deadline = todo[0], time.monotonic() + limits[todo[0]]
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:  # the phase ran out of time: stop the worker, go on with the next phase
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                results[current] = dict(status="timed out", rows=[], error=f"over its {limits[current]} s limit")
                todo.remove(current)
                break
            if line is None:  # the worker exited: normally after the last phase, else it crashed in one
                proc.wait()
                if current in todo:
                    results[current] = dict(status="crashed", rows=[],
                                            error=f"its process exited with {proc.returncode}")
                    todo.remove(current)
                break
            if line.startswith(f"{MARK} start "):
                current = line.split()[-1]
                deadline = time.monotonic() + limits[current]
            elif line.startswith(f"{MARK} end "):
                name = line.split()[-1]
                results[name] = json.loads((out / "phases" / f"{name}.json").read_text())
                todo.remove(name)
            else:
                sys.stdout.write(line)
    return {name: results[name] for name in phases}


def verdict(result: dict) -> str:
    """ok (every check with a target met), FAILED (one is not), or how the phase ended otherwise."""
    if result["status"] != "ran":
        return result["status"]
    return "FAILED" if any(r["ok"] is False for r in result["rows"]) else "ok"


def table(results: dict, limits: dict, header: str) -> str:
    """The compact markdown table of every phase's rows."""
    lines = [header, "", "| phase | check | value | target | |", "|---|---|---|---|---|"]
    for name, result in results.items():
        lines.append(f"| **{name}** | {verdict(result)} in {result.get('seconds', '-')} s (limit {limits[name]} s) "
                     f"| {result.get('error', '')} | | |")
        for r in result["rows"]:
            mark = {True: "ok", False: "**no**", None: ""}[r["ok"]]
            lines.append(f"| | {r['check']} | {r['value']} | {r['target']} | {mark} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="every phase on the CPU at toy sizes")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {','.join(PHASES)}")
    p.add_argument("--out", default=None, help="output folder (default results/gpu-check, results/gpu-check/dry)")
    p.add_argument("--data", default=None, help="data root holding (or receiving) the embedded set (default OUT/data)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    phases = [x for x in a.phases.split(",") if x]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        p.error(f"unknown phase(s) {unknown}; expected some of {PHASES}")
    root = Path(__file__).resolve().parents[1]
    out = Path(a.out) if a.out else root / "results" / "gpu-check" / ("dry" if a.dry else "")
    if a.worker:
        work(phases, a.dry, out, a.data and Path(a.data))
        return 0
    limits = DRY_LIMITS if a.dry else LIMITS
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    results = drive(phases, a.dry, out, limits, a.data and Path(a.data))
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                            text=True).stdout.strip()
    summary = dict(started=started, minutes=round((time.perf_counter() - t0) / 60, 2), dry=a.dry, commit=commit,
                   host=platform.node(), limits=limits, sizes=asdict(DRY if a.dry else GPU),
                   verdicts={k: verdict(v) for k, v in results.items()}, phases=results)
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    header = (f"# make gpu-check{' --dry (CPU, toy sizes)' if a.dry else ''}\n\ncommit `{commit}`, {started}, "
              f"{summary['minutes']} min on {platform.node()}")
    (out / "table.md").write_text(table(results, limits, header))
    print(table(results, limits, header))
    print(f"wrote {out / 'table.md'} and {out / 'gpu_check.json'}")
    return 0 if all(v == "ok" for v in summary["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
