"""Is the data loader fast enough? Patches/s of TrainPatches next to EDSR-baseline x2's training-step rate.

Loader: ``TrainPatches("embedded", scale=2, patch=48, batch=16)`` through a DataLoader (``--workers``),
timed over ``--batches`` batches after one warm-up batch (worker start-up and the uint8 cache build
excluded). Model: EDSR-baseline x2 at full size, batch 16 of 48 x 48 LR patches, forward + L1 backward +
Adam step, fp32, on ``--device``. The loader should deliver at least 3x the patches/s the model consumes,
else training waits on data. Not a test: numbers depend on the machine and its load.

    python bench/loader.py --threads 2
    python bench/loader.py --device cuda --workers 4
"""
import argparse
import os
import statistics
import time

import torch
from torch.utils.data import DataLoader

from pspl_nb.data import TrainPatches, default_root
from pspl_nb.models import build_model

BATCH, PATCH, SCALE = 16, 48, 2


def loader_rate(workers: int, batches: int, root) -> float:
    """Patches per second delivered by the DataLoader (uint8 pairs, default collate)."""
    data = TrainPatches("embedded", SCALE, PATCH, BATCH, iters_per_epoch=batches + 1, root=root)
    it = iter(DataLoader(data, batch_size=BATCH, shuffle=False, num_workers=workers))
    next(it)  # warm-up: workers started, memmaps opened
    start = time.perf_counter()
    n = sum(lr.shape[0] for lr, _hr in it)
    return n / (time.perf_counter() - start)


def model_rate(steps: int, device: str = "cpu", warmup: int = 2) -> float:
    """Patches per second consumed by EDSR-baseline x2 training (forward, L1, backward, Adam), fp32."""
    model = build_model("edsr_baseline", SCALE, size="full").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    lr = torch.rand(BATCH, 3, PATCH, PATCH, device=device) * 255
    hr = torch.rand(BATCH, 3, SCALE * PATCH, SCALE * PATCH, device=device) * 255
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for the model")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: main process)")
    parser.add_argument("--batches", type=int, default=200, help="timed loader batches")
    parser.add_argument("--steps", type=int, default=5, help="timed model steps (median)")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu or cuda")
    parser.add_argument("--root", default=None, help="data root (default: $PSPL_DATA or <repo>/data)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = args.root or default_root()

    loader = loader_rate(args.workers, args.batches, root)
    model = model_rate(args.steps, args.device)
    ratio = loader / model
    print(f"torch {torch.__version__}, {args.threads} threads, loader workers {args.workers}, model on {args.device}")
    print(f"loader  TrainPatches('embedded', x2, LR 48, batch 16): {loader:10.1f} patches/s")
    print(f"model   EDSR-baseline x2 train step (fwd+L1+bwd+Adam):  {model:10.1f} patches/s")
    print(f"ratio   {ratio:.1f}x  ({'OK' if ratio >= 3 else 'TOO SLOW'}: the loader must be >= 3x the model)")


if __name__ == "__main__":
    main()
