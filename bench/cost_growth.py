"""How a PSPL training step grows with the patch and the batch: step time and peak memory, to plan a GPU run.

EDSR-baseline x2 at full size, PSPL (official SSIM, zero padding), fp32 (and bf16 + channels_last on CUDA):
the LR patch doubles 48 -> 96 -> 192 at batch 16, and the batch doubles 16 -> 32 -> 64 at LR 48. The step
is ``train_step.make_step`` (the engine's inner loop). Time: median of ``--repeats`` steps after one warm-up.

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the timed steps (tensors only, no allocator
slack). On CPU, each case runs in a fresh subprocess and reports its peak resident set size (``ru_maxrss``)
and how much of it the steps added over the process with its model built (the training footprint).
On CPU the largest case (LR 192 at batch 16: 4x the pixels of LR 96, so roughly 4x its time and memory)
is left out unless ``--big``; CUDA runs every case.

    python -m bench.cost_growth                # CPU, in fresh processes (run from the repository root)
    python -m bench.cost_growth --device cuda --json bench/out/gpu/cost_growth.json
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench import timing
from bench.train_step import case_config, make_step

PATCHES = (48, 96, 192)
BATCHES = (16, 32, 64)
BIG = (192, 16)  # (patch, batch) skipped on CPU unless --big


def grid(big: bool) -> list:
    """(series, patch, batch) cases: the patch series at batch 16, then the batch series at LR 48."""
    cases = [("patch", p, 16) for p in PATCHES] + [("batch", 48, b) for b in BATCHES if b != 16]
    return [case for case in cases if big or case[1:] != BIG]


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def one_case(patch: int, batch: int, device="cpu", repeats=3, amp=False) -> dict:
    """Median step time (ms) and peak memory (MB) of one (patch, batch) case in this process."""
    c = case_config("full").replace(patch=patch, batch=batch)
    step = make_step(c, "pspl", device, amp=amp, channels_last=amp)
    cuda = torch.device(device).type == "cuda"
    before = rss_mb()
    step()  # warm-up: first-touch allocations, cudnn autotuning
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        timing.sync(device)
        start = time.perf_counter()
        step()
        timing.sync(device)
        times.append(time.perf_counter() - start)
    out = dict(patch=patch, batch=batch, step_ms=1e3 * statistics.median(times), repeats=repeats,
               precision="bf16 + channels_last" if amp else "fp32")
    if cuda:
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KB on Linux
        out.update(peak_mb=peak, added_mb=peak - before)
    return out


def worker_command(patch: int, batch: int, repeats: int, threads: int) -> list:
    """The command that measures one CPU case in a fresh process (run from the repository root); its last
    line of output is ``one_case``'s result as JSON."""
    return [sys.executable, "-m", "bench.cost_growth", "--worker", str(patch), str(batch), "--repeats",
            str(repeats), "--threads", str(threads)]


def run(device="cpu", repeats=3, big=False) -> dict:
    """Every case of ``grid``; on CPU each in a fresh subprocess (clean peak RSS), on CUDA in this one."""
    cuda = torch.device(device).type == "cuda"
    rows = []
    for series, patch, batch in grid(big or cuda):
        if cuda:
            for amp in (False, True):
                rows.append(dict(series=series, **one_case(patch, batch, device, repeats, amp)))
                torch.cuda.empty_cache()
        else:
            cmd = worker_command(patch, batch, repeats, torch.get_num_threads())
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=timing.REPO)
            rows.append(dict(series=series, **json.loads(out.stdout.strip().splitlines()[-1])))
    memory = ("torch.cuda.max_memory_allocated" if cuda else
              "peak RSS of a fresh process (ru_maxrss); 'added' = peak minus RSS with the model built")
    return dict(rows=rows, memory=memory, skipped=[] if big or cuda else [dict(patch=BIG[0], batch=BIG[1])])


def render(result: dict) -> str:
    """Markdown table: one row per case (and precision), with the growth factor against the first row."""
    rows, base = [], {}
    for r in result["rows"]:
        key = r["precision"]
        base.setdefault(key, r)
        b = base[key]
        mem = f"{r['peak_mb']:.0f}" + (f" (+{r['added_mb']:.0f})" if "added_mb" in r else "")
        rows.append([r["series"], r["patch"], r["patch"] * 2, r["batch"], r["precision"], f"{r['step_ms']:.1f}",
                     f"{r['step_ms'] / b['step_ms']:.1f}x", mem, f"{r['peak_mb'] / b['peak_mb']:.1f}x"])
    text = timing.table(["series", "LR patch", "HR patch", "batch", "precision", "step ms", "time vs first",
                         "peak MB", "memory vs first"], rows)
    repeats = result["rows"][0]["repeats"]
    text += f"\n\nMemory: {result['memory']}. Step time: median of {repeats} steps after one warm-up."
    for s in result.get("skipped", []):
        text += (f" LR {s['patch']} at batch {s['batch']} is skipped on CPU (about 4x the LR 96 row in time and "
                 f"memory; `python -m bench.cost_growth --big` measures it).")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    timing.add_common_args(parser, repeats=3)
    parser.add_argument("--big", action="store_true", help="also LR 192 at batch 16 on CPU (~10 GB)")
    parser.add_argument("--worker", nargs=2, type=int, metavar=("PATCH", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    timing.setup(args)
    if args.worker:  # one CPU case in this fresh process: print its JSON line and stop
        print(json.dumps(one_case(*args.worker, repeats=args.repeats)))
        return
    result = run(args.device, args.repeats, args.big)
    print(render(result))
    if args.json:
        timing.write_json(args.json, "cost_growth", result, args.device)


if __name__ == "__main__":
    main()
