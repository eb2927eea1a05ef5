"""The bench scripts still run: each core function once, at a tiny size and one repeat (numbers not checked).

Speed targets are checked by ``make bench`` (bench/REPORT.md), never here: timings in a shared CI are noise.
"""
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the scripts import each other as top-level modules, as when run directly

import cost_growth  # noqa: E402
import loader  # noqa: E402
import run_all  # noqa: E402
import ssim_peers  # noqa: E402
import timing  # noqa: E402
import train_step  # noqa: E402
import whole_process  # noqa: E402


def test_interleave_pairs_rounds_and_ratios():
    calls = []
    times = timing.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert len(calls) == 8 and [len(v) for v in times.values()] == [3, 3]
    assert timing.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == (2.0, 2.0, 2.0)
    assert timing.machine()["cores"] >= 1


def test_ssim_peers_compares_on_a_small_pair():
    s = ssim_peers.compare((1, 3, 24, 24), repeats=1)
    kit = [r for r in s["rows"] if r["name"] == "kit ssim_map"]
    assert len(kit) == 6 and all(r["same"] for r in kit)  # the kit's float32 contract holds here too
    assert "ms" in s["rows"][0] and "24 x 24" in ssim_peers.render(dict(tolerance=1e-5, shapes=[s]))


def test_train_step_measures_every_arm():
    r = train_step.measure("smoke", repeats=1, warmup=0)
    assert set(r["ms"]) == set(train_step.ARMS) and set(r["ratio"]) == {"pspl/l1", "dense/l1"}
    assert "smoke profile" in train_step.render(dict(cases=[r]))


def test_loader_side_by_side(data_root):
    r = loader.side_by_side("smoke", rounds=1, root=data_root, per_round=1)
    assert r["loader"] > 0 and r["model"] > 0
    assert "loader / model" in loader.render(dict(cases=[r]))


def test_cost_growth_one_case():
    r = cost_growth.one_case(patch=8, batch=2, repeats=1)
    assert r["step_ms"] > 0 and r["peak_mb"] > 0
    assert (192, 16) not in [c[1:] for c in cost_growth.grid(big=False)]
    text = cost_growth.render(dict(rows=[dict(series="patch", **r)], memory="RSS", skipped=[]))
    assert "1.0x" in text


def test_whole_process_measures_a_command():
    r = whole_process.measure([sys.executable, "-c", "x = bytearray(50 * 2**20)"], interval=0.05)
    assert r["returncode"] == 0 and r["wall_s"] > 0
    assert r["max_process_mb"] is None or r["max_process_mb"] > 50


def test_report_renders_and_gpu_section_reads_json(tmp_path):
    assert "not measured in this session" in run_all.gpu_section(tmp_path).lower()
    step = dict(cases=[train_step.measure("smoke", repeats=1, warmup=0)], throughput=[])
    timing.write_json(tmp_path / "train_step.json", "train_step", step)
    gpu = run_all.gpu_section(tmp_path)
    assert "PSPL / L1" in gpu and "No `ssim_peers.json`" in gpu
    assert json.loads((tmp_path / "train_step.json").read_text())["machine"]["torch"] == torch.__version__
