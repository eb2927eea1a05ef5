"""Whole-process cost of `make reproduce PROFILE=smoke` and `make test`: wall time and peak memory.

Each command runs once from the repository root, ``make reproduce`` with ``PSPL_RESULTS`` pointing at a fresh
temporary folder, so no cached run makes it look cheap. Memory is read two ways:

- peak of the summed resident set size of the whole process tree (make, pytest workers, notebook kernels),
  sampled every 0.2 s through psutil: what the machine must hold at once;
- the largest single process (``/usr/bin/time -f %M``: its maximum resident set size; None where that
  program is missing).

Minutes per command, so ``make bench`` does not run it: ``bench.run_all`` shows the stored
``bench/whole_process.json`` (with the date and commit it was measured at) unless given ``--whole-process``.
Re-measure with

    python -m bench.whole_process --json bench/whole_process.json
    python -m bench.whole_process --only "make test"
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time

import psutil

from bench import timing

COMMANDS = {
    "make reproduce PROFILE=smoke": ["make", "reproduce", "PROFILE=smoke"],
    "make test": ["make", "test"],
}


def tree_rss_mb(pid: int) -> float:
    """Summed RSS (MB) of ``pid`` and all its descendants; processes that vanish meanwhile count 0."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def measure(cmd: list, env: dict | None = None, cwd=timing.REPO, interval: float = 0.2) -> dict:
    """Run ``cmd`` once; return wall_s, peak_tree_mb, max_process_mb (None without /usr/bin/time), returncode
    and the 1-minute load average before and after (other users' work inflates the wall time)."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        full = [time_bin, "-f", "%M", "-o", report.name, *cmd] if time_bin else cmd
        load = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = [0.0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        text = report.read().strip().splitlines()
        max_process = int(text[-1]) / 2**10 if time_bin and text and text[-1].isdigit() else None
    return dict(wall_s=wall, peak_tree_mb=peak[0], max_process_mb=max_process, returncode=code,
                load=[load, os.getloadavg()[0]])


def run(commands=tuple(COMMANDS)) -> dict:
    """Measure each named command of ``COMMANDS``; reproduce writes into a temporary results folder."""
    rows = []
    for name in commands:
        with tempfile.TemporaryDirectory(prefix="pspl-bench-") as results:
            env = dict(os.environ, PSPL_RESULTS=results)
            rows.append(dict(command=name, **measure(COMMANDS[name], env)))
    return dict(rows=rows, machine=timing.machine())


def render(result: dict) -> str:
    """Markdown table: wall time and peak memory per command, with when and where it was measured."""
    m = result["machine"]
    rows = [[f"`{r['command']}`", f"{r['wall_s'] / 60:.1f} min", f"{r['peak_tree_mb'] / 1024:.2f} GB",
             f"{r['max_process_mb'] / 1024:.2f} GB" if r["max_process_mb"] else "-",
             "ok" if r["returncode"] == 0 else f"exit {r['returncode']}",
             " -> ".join(f"{v:.1f}" for v in r["load"]) if "load" in r else "-"] for r in result["rows"]]
    return (timing.table(["command", "wall time", "peak RSS, whole process tree", "largest single process",
                          "status", "load average before -> after"], rows)
            + f"\n\nFinished {m['date']} at commit {m['commit']} on {m['cpu']} ({m['cores']} cores), one run each."
            + (f" {result['note']}" if result.get("note") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=tuple(COMMANDS), help="commands to measure (default: all)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON to OUT")
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)  # accepted for symmetry; CPU only
    args = parser.parse_args()
    result = run(tuple(args.only or COMMANDS))
    print(render(result))
    if args.json:
        timing.write_json(args.json, "whole_process", result)


if __name__ == "__main__":
    main()
