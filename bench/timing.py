"""Shared helpers of the bench scripts: interleaved timing, medians, the machine's description, JSON output.

This machine is shared and noisy: a ratio of two block-by-block timings can drift by more than the effect
measured. ``interleave`` therefore runs every case once per round, in a fresh random order each round, and
ratios are taken round by round (``paired_ratio``), so slow phases of the machine hit all cases alike.
When other users' jobs oversubscribe the two cores, torch's threads stall for ~100 ms at a time and whole
stretches of rounds are hit; ``clean_rounds`` keeps the rounds that no stall touched, and the reports
quote medians over those (with how many there were).
"""
import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def sync(device) -> None:
    """Wait for queued GPU work so that wall time covers it (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleave(cases: dict, repeats: int, warmup: int = 1, device="cpu", seed: int = 0) -> dict:
    """Time every callable of ``cases`` ``repeats`` times, one call of each per round, shuffled per round.

    Args:
        cases: name -> callable taking no argument.
        repeats: timed rounds; warmup: untimed rounds before them (first-call allocations, cudnn autotune).
        device: synchronised around each call when it is a CUDA device.

    Returns:
        name -> list of ``repeats`` wall times in seconds, index r = round r (so lists can be paired).
    """
    order = list(cases)
    rng = random.Random(seed)
    for _ in range(warmup):
        for name in order:
            cases[name]()
    sync(device)
    times = {name: [] for name in order}
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            sync(device)
            start = time.perf_counter()
            cases[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def quartiles(xs) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of a list of numbers (the median alone for < 4 values)."""
    xs = list(xs)
    if len(xs) < 4:
        m = statistics.median(xs)
        return m, m, m
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def paired_ratio(num, den, rounds=None) -> tuple[float, float, float]:
    """Quartiles (q1, median, q3) of the round-by-round ratios num[r] / den[r] of two ``interleave`` lists,
    over ``rounds`` (indices; default all)."""
    rounds = range(len(num)) if rounds is None else rounds
    return quartiles(num[r] / den[r] for r in rounds)


def clean_rounds(times: dict, cases=None, slack: float = 1.3, least: float = 0.2) -> list:
    """Indices of the rounds in which none of ``cases`` (default all) took over ``slack`` x its own first
    quartile: rounds no stall hit. Falls back to every round when fewer than ``least`` of them are clean
    (then the machine was busy throughout and the plain medians are all there is)."""
    cases = list(times) if cases is None else list(cases)
    limit = {k: slack * quartiles(times[k])[0] for k in cases}
    n = len(times[cases[0]])
    clean = [r for r in range(n) if all(times[k][r] <= limit[k] for k in cases)]
    return clean if len(clean) >= max(1, least * n) else list(range(n))


def pick(xs, rounds) -> list:
    """The elements of ``xs`` at ``rounds``."""
    return [xs[r] for r in rounds]


def commit() -> str:
    """``git describe --always --dirty`` of the repository; outside git (a copied tree on a GPU machine)
    ``$PSPL_BENCH_COMMIT`` if set, else "unknown"."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=REPO,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return os.environ.get("PSPL_BENCH_COMMIT", "unknown")


def cpu_model() -> str:
    """The processor's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device="cpu") -> dict:
    """Where and when a measurement ran: date, commit, CPU, cores, torch, threads, and the GPU if used."""
    info = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), commit=commit(),
                cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                threads=torch.get_num_threads(), device=str(device))
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def add_common_args(parser: argparse.ArgumentParser, repeats: int) -> None:
    """--device, --threads, --repeats, --json: the options every bench script takes."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds per case (medians over them)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the result as JSON to OUT")


def setup(args) -> None:
    """Apply --threads, fix the seeds, and on CUDA let cudnn pick its kernels as the training engine does."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if torch.device(args.device).type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: CUDA is not available in this torch ({torch.__version__})")
        torch.backends.cudnn.benchmark = True


def write_json(path, script: str, result: dict, device="cpu") -> None:
    """``{"script", "machine", "result"}`` to ``path`` (folders created); ``run_all.py`` renders such files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(script=script, machine=machine(device), result=result)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def table(header: list, rows: list) -> str:
    """A Markdown table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
