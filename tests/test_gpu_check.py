"""``make gpu-check --dry``: every phase of the CUDA check runs on the CPU at toy sizes, so the command a GPU
session will run cannot rot unseen (bench/gpu_check.py; speed itself is only measured on a GPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.processes
def test_the_dry_run_runs_every_phase_and_writes_the_table(tmp_path, data_root):
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry", "--out", str(tmp_path), "--data",
                           str(data_root)], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"},
                          capture_output=True, text=True, timeout=300)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert done.returncode == 0, (summary["verdicts"], done.stderr[-3000:])
    assert list(summary["phases"]) == list(gpu_check.PHASES)
    assert set(summary["verdicts"].values()) == {"ok"} and summary["dry"] is True
    table = (tmp_path / "table.md").read_text()
    assert all(f"**{name}** | ok" in table for name in gpu_check.PHASES)
    assert "device sampler = host loader" in table and "stopped after epoch 1 and resumed" in table


def test_a_phase_that_fails_crashes_or_hangs_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    """The driver's bookkeeping on a stand-in worker: one phase raises, one kills its process, one hangs past
    its limit; each is recorded as such, a fresh worker carries on, and the table is still written."""
    script = tmp_path / "bench" / "gpu_check.py"
    script.parent.mkdir()
    (script.parent / "__init__.py").write_text("")
    script.write_text('''
import json, os, sys, time
from pathlib import Path
args = sys.argv
phases, out = args[args.index("--phases") + 1].split(","), Path(args[args.index("--out") + 1])
(out / "phases").mkdir(parents=True, exist_ok=True)
for name in phases:
    print("@@gpu-check start " + name, flush=True)
    if name == "metrics":
        os._exit(3)
    if name == "models":
        time.sleep(60)
    rows = [] if name != "sampler" else [dict(check="c", value=1, target="t", ok=False)]
    (out / "phases" / (name + ".json")).write_text(json.dumps(dict(status="ran", rows=rows, seconds=0)))
    print("@@gpu-check end " + name, flush=True)
''')
    monkeypatch.setattr(gpu_check, "__file__", str(script))
    limits = {name: 30 for name in gpu_check.PHASES}
    limits["models"] = 2
    results = gpu_check.drive(list(gpu_check.PHASES), True, tmp_path / "out", limits)
    verdicts = {name: gpu_check.verdict(r) for name, r in results.items()}
    assert verdicts == dict(env="ok", sampler="FAILED", metrics="crashed", models="timed out", profiles="ok",
                            speed="ok", compiled="ok", graph="ok")
    assert "| **models** | timed out" in gpu_check.table(results, limits, "#")


def test_a_phase_that_raises_is_recorded_with_its_error(tmp_path, data_root, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu_check, "phase_sampler", broken)
    gpu_check.work(["sampler", "env"], True, tmp_path, data_root)
    sampler = json.loads((tmp_path / "phases" / "sampler.json").read_text())
    assert sampler["status"] == "error" and "illegal memory access" in sampler["error"]
    assert gpu_check.verdict(json.loads((tmp_path / "phases" / "env.json").read_text())) == "ok"
