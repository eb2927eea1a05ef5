"""Time one training step (forward + L1 backward) of every model, to size CPU experiments.

Measures each model at ``size="tiny"``, x2, on a batch of 8 LR patches of 32x32, and EDSR-baseline at full
size on the official batch (16 LR patches of 48x48), on random [0, 255] data. Prints, per model, the median
wall time over ``--repeats`` steps (``--full-repeats`` for the full EDSR-baseline) after ``--warmup``
untimed ones. Not a test: numbers depend on the machine and its load.

    python -m bench.model_step --threads 2
    python -m bench.model_step --device cuda --json bench/out/gpu/model_step.json
"""

import argparse
import statistics
import time

import torch

from bench import timing
from pspl_nb.models import MODELS, build_model


def step_seconds(model: torch.nn.Module, batch: int, patch: int, scale: int, warmup: int, repeats: int,
                 device="cpu") -> float:
    """Median wall time of forward + backward of an L1 loss on random [0, 255] data."""
    lr = torch.rand(batch, 3, patch, patch, device=device) * 255
    hr = torch.rand(batch, 3, scale * patch, scale * patch, device=device) * 255
    times = []
    for i in range(warmup + repeats):
        timing.sync(device)
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        (model(lr) - hr).abs().mean().backward()
        timing.sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    timing.add_common_args(parser, repeats=10)  # --repeats: timed steps per tiny model
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--full-repeats", type=int, default=3, help="timed steps of full EDSR-baseline")
    args = parser.parse_args()
    timing.setup(args)

    cases = [(name, "tiny", 8, 32, args.repeats) for name in MODELS]
    cases.append(("edsr_baseline", "full", 16, 48, args.full_repeats))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x2, forward + L1 backward")
    print(f"{'model':<14} {'size':<5} {'batch':>5} {'LR patch':>8} {'params':>10} {'median s':>9}")
    rows = []
    for name, size, batch, patch, repeats in cases:
        model = build_model(name, 2, size).to(args.device)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        seconds = step_seconds(model, batch, patch, 2, args.warmup, repeats, args.device)
        print(f"{name:<14} {size:<5} {batch:>5} {patch:>5}x{patch:<2} {params:>10,} {seconds:>9.4f}")
        rows.append(dict(model=name, size=size, batch=batch, patch=patch, params=params, seconds=seconds))
    if args.json:
        timing.write_json(args.json, "model_step", dict(rows=rows), args.device)


if __name__ == "__main__":
    main()
