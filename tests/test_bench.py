"""The bench scripts still run: each core function once, at a tiny size and one repeat (numbers not checked).

Speed targets are checked by ``make bench`` (bench/REPORT.md), never here: timings in a shared CI are noise.
"""
import json
import sys
from pathlib import Path

import pytest
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


@pytest.fixture(scope="module")
def results(data_root):
    """One tiny result per section, shaped as ``run_all.measure`` returns them."""
    return dict(
        ssim_peers=dict(tolerance=ssim_peers.TOLERANCE, shapes=[ssim_peers.compare((1, 3, 24, 24), repeats=1)]),
        train_step=dict(cases=[train_step.measure("smoke", repeats=1, warmup=0)], throughput=[]),
        loader=dict(cases=[loader.side_by_side("smoke", rounds=1, root=data_root, per_round=1)]),
        cost_growth=dict(rows=[dict(series="patch", **cost_growth.one_case(patch=8, batch=2, repeats=1))],
                         memory="RSS", skipped=[]),
    )


def test_interleave_pairs_rounds_and_ratios():
    calls = []
    times = timing.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert len(calls) == 8 and [len(v) for v in times.values()] == [3, 3]
    assert timing.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == (2.0, 2.0, 2.0)
    assert timing.machine()["cores"] >= 1


def test_ssim_peers_kit_keeps_its_float32_contract(results):
    rows = results["ssim_peers"]["shapes"][0]["rows"]
    kit = [r for r in rows if r["name"] == "kit ssim_map"]
    assert len(kit) == 6 and all(r["same"] for r in kit)


def test_every_arm_and_case_is_measured(results):
    step = results["train_step"]["cases"][0]
    assert set(step["ms"]) == set(train_step.ARMS) and set(step["ratio"]) == {"pspl/l1", "pspl32/l1", "dense/l1"}
    assert results["loader"]["cases"][0]["loader"] > 0
    assert results["cost_growth"]["rows"][0]["peak_mb"] > 0
    assert (192, 16) not in [c[1:] for c in cost_growth.grid(big=False)]


def test_whole_process_measures_a_command():
    r = whole_process.measure([sys.executable, "-c", "x = bytearray(50 * 2**20)"], interval=0.05)
    assert r["returncode"] == 0 and r["wall_s"] > 0
    assert r["max_process_mb"] is None or r["max_process_mb"] > 50


def test_report_renders_every_section(results, tmp_path):
    loads = {name: [0.5, 0.6] for name in results}
    text = run_all.report(results, timing.machine(), None, tmp_path, 1.0, (0.5, 0.6), loads)
    for title in ("## 1. SSIM", "## 2. PSPL", "## 3. Data loader", "## 4. Cost growth", "## 5. Whole", "## 6. GPU"):
        assert title in text
    assert "not measured in this session" in text.lower()


def test_gpu_section_reads_the_json_gpu_sh_writes(results, tmp_path):
    timing.write_json(tmp_path / "train_step.json", "train_step", results["train_step"])
    gpu = run_all.gpu_section(tmp_path)
    assert "PSPL / L1" in gpu and "No `ssim_peers.json`" in gpu and "at commit" in gpu
    assert json.loads((tmp_path / "train_step.json").read_text())["machine"]["torch"] == torch.__version__
