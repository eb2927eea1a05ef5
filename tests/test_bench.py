"""The bench modules run and compute what their reports claim: each core function once, at a tiny size and one
repeat, plus the bookkeeping (rounds, ratios, targets, verdicts) on numbers made up to be checked by hand.

Speed itself is measured by ``make bench`` (bench/REPORT.md), never here: timings in a shared CI are noise.
"""
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench import cost_growth, loader, run_all, ssim_peers, timing, train_step, whole_process
from pspl_nb.ssim import ssim_map


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


# ---- timing: rounds, ratios, stalls ----------------------------------------------------------------------

def test_interleave_runs_each_case_once_per_round_in_shuffled_orders():
    calls = []
    cases = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times = timing.interleave(cases, repeats=12, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up round, in the given order
    rounds = [calls[i:i + 3] for i in range(3, len(calls), 3)]
    assert len(rounds) == 12 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # reshuffled: no case always runs first
    assert all(len(v) == 12 and min(v) >= 0 for v in times.values())


def test_paired_ratio_pairs_rounds_not_medians():
    num, den = [2.0, 30.0, 6.0, 8.0], [1.0, 10.0, 3.0, 4.0]  # round 1 is slow for both cases alike
    assert timing.paired_ratio(num, den)[1] == 2.0
    assert timing.paired_ratio(num, den, rounds=[1])[1] == 3.0


def test_clean_rounds_drop_stalled_rounds_and_fall_back_when_all_are_busy():
    times = {"a": [1.0, 1.0, 1.0, 5.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0, 2.0, 9.0, 2.0]}
    assert timing.clean_rounds(times) == [0, 1, 2, 5]
    assert timing.clean_rounds(times, ["a"]) == [0, 1, 2, 4, 5]
    busy = {"a": [1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]}  # q1 = 5: nothing is an outlier
    assert timing.clean_rounds(busy) == list(range(11))
    # stalls hit one case or the other in every round: no round is clean, so all of them are kept
    disjoint = {"a": [1.0] * 6 + [5.0] * 14, "b": [5.0] * 14 + [1.0] * 6}
    assert timing.clean_rounds(disjoint) == list(range(20))


# ---- the sections ------------------------------------------------------------------------------------------

def test_ssim_peers_checks_values_against_float64(results):
    rows = results["ssim_peers"]["shapes"][0]["rows"]
    kit = [r for r in rows if r["name"] == "kit ssim_map"]
    assert {(r["dtype"], r["output"]) for r in kit} == {(d, f"map {p}") for d in ("float32", "float64")
                                                        for p in ("zeros", "reflect", "valid")}
    assert all(r["max_abs_diff"] < 1e-10 for r in kit if r["dtype"] == "float64")
    assert all(r["same"] for r in kit)


def test_ssim_peers_flags_wrong_values_and_compares_speed_with_peers_only(monkeypatch):
    off = 3 * ssim_peers.TOLERANCE
    rows = [("kit ssim_map", torch.float64, f"map {p}", lambda x, y, p=p: ssim_map(x, y, 1.0, p))
            for p in ("zeros", "reflect", "valid")]
    rows += [("shifted", torch.float64, "map zeros", lambda x, y: ssim_map(x, y, 1.0, "zeros") + off),
             ("peer", torch.float64, "map reflect", lambda x, y: ssim_map(x, y, 1.0, "reflect")),
             (ssim_peers.DEPTHWISE, torch.float64, "map zeros", ssim_peers.depthwise_f64)]
    monkeypatch.setattr(ssim_peers, "implementations", lambda device: (rows, {}))
    r = ssim_peers.compare((1, 3, 24, 24), repeats=1)
    by_name = {row["name"]: row for row in r["rows"]}
    assert by_name["shifted"]["max_abs_diff"] == pytest.approx(off, rel=1e-3) and not by_name["shifted"]["same"]
    assert by_name[ssim_peers.DEPTHWISE]["same"]
    # a speed verdict for each peer library giving the same values, against the kit in the same output
    assert [(v["peer"], v["kit"]) for v in r["verdicts"]] == [("peer float64", "kit map reflect float64")]


def test_step_ratios_come_from_their_own_arms(results):
    step = results["train_step"]["cases"][0]
    ms, ratio = step["ms"], step["ratio"]
    for arm in ("pspl", "pspl32", "dense"):  # one round: the ratio is that round's two step times
        assert ratio[f"{arm}/l1"][1] == pytest.approx(ms[arm][1] / ms["l1"][1], rel=1e-9)
    assert step["target"] is None  # the smoke case is for information


@pytest.mark.parametrize("case, dense, expected", [("cpu", 1.152, 1.076), ("cpu", 1.0, 1.0), ("full", 1.5, 1.03),
                                                   ("smoke", 1.152, None)])
def test_step_target_rule(case, dense, expected):
    got = train_step.target(case, {"pspl/l1": [1, 1, 1], "dense/l1": [dense - 0.01, dense, dense + 0.01]})
    assert got == (None if expected is None else pytest.approx(expected))
    assert train_step.target("cpu", {"pspl/l1": [1, 1, 1]}) is None  # no dense arm, no bar


@pytest.mark.parametrize("pspl, verdict", [(1.069, "meets <= 1.076"), (1.080, "MISSES <= 1.076")])
def test_step_verdict_uses_the_runs_dense_arm(pspl, verdict):
    ms = {arm: [1.0, 1.0, 1.0] for arm in train_step.ARMS}
    row = dict(case="cpu", label="tiny", precision="fp32", repeats=4, ms=ms, ratio={
        "pspl/l1": [pspl] * 3, "pspl32/l1": [1.04] * 3, "dense/l1": [1.152] * 3}, target=1.05)  # stale stored bar
    assert verdict in train_step.render(dict(cases=[row], throughput=[]))


def test_loader_ratio_and_verdict(results):
    r = results["loader"]["cases"][0]
    assert r["ratio"] == pytest.approx(r["loader"] / r["model"])
    rows = [dict(r, loader=300.0, model=100.0, ratio=3.0), dict(r, loader=290.0, model=100.0, ratio=2.9)]
    lines = loader.render(dict(cases=rows)).splitlines()[2:]
    assert lines[0].endswith("| OK |") and lines[1].endswith("| TOO SLOW |")


def test_cost_growth_grid_and_growth_factors():
    assert (192, 16) not in [c[1:] for c in cost_growth.grid(big=False)]
    assert (192, 16) in [c[1:] for c in cost_growth.grid(big=True)]
    rows = [dict(series="patch", patch=48, batch=16, precision="fp32", step_ms=10.0, peak_mb=100.0, repeats=3),
            dict(series="patch", patch=96, batch=16, precision="fp32", step_ms=45.0, peak_mb=350.0, repeats=3)]
    text = cost_growth.render(dict(rows=rows, memory="RSS"))
    assert "| 45.0 | 4.5x | 350 | 3.5x |" in text


def test_cost_growth_worker_runs_as_a_module():
    """The CPU cases run in fresh processes started as ``python -m bench.cost_growth --worker``."""
    out = subprocess.run(cost_growth.worker_command(8, 2, repeats=1, threads=1), cwd=timing.REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert (row["patch"], row["batch"], row["repeats"]) == (8, 2, 1) and row["step_ms"] > 0


def test_whole_process_reports_exit_status_time_and_memory():
    code = "import time; x = bytearray(60 * 2**20); time.sleep(0.5); raise SystemExit(3)"
    r = whole_process.measure([sys.executable, "-c", code], interval=0.05)
    assert r["returncode"] == 3
    assert r["wall_s"] >= 0.5
    assert r["peak_tree_mb"] > 60  # the sampler saw the child's 60 MB
    assert r["max_process_mb"] is None or r["max_process_mb"] > 60


# ---- the report --------------------------------------------------------------------------------------------

def test_report_holds_every_sections_tables_and_load(results, tmp_path):
    loads = {name: [0.25 + i, 0.75 + i] for i, name in enumerate(results)}
    text = run_all.report(results, timing.machine(), None, tmp_path, 1.0, (0.5, 0.6), loads)
    for name, module in (("ssim_peers", ssim_peers), ("train_step", train_step), ("loader", loader),
                         ("cost_growth", cost_growth)):
        assert module.render(results[name]) in text
        a, b = loads[name]
        assert f"Load average {a:.2f} at the start of this section, {b:.2f} at its end." in text
    assert "python -m bench.whole_process" in text  # no stored whole-process result: says how to make one
    assert "not measured in this session" in text.lower()  # an empty GPU folder


def test_gpu_section_renders_the_json_gpu_sh_writes(results, tmp_path):
    timing.write_json(tmp_path / "train_step.json", "train_step", results["train_step"])
    payload = json.loads((tmp_path / "train_step.json").read_text())
    assert payload["machine"]["torch"] == torch.__version__ and payload["machine"]["commit"] == timing.commit()
    gpu = run_all.gpu_section(tmp_path)
    assert train_step.render(payload["result"]) in gpu
    assert f"at commit {payload['machine']['commit']}" in gpu
    assert "No `ssim_peers.json`" in gpu and "No `loader.json`" in gpu  # missing files are named, not skipped


def test_regime_summary_reads_last_and_best_gain_per_candidate():
    from bench import regime

    table = pd.DataFrame({"candidate": ["a", "a", "b", "b"], "iteration": [100, 200, 100, 200],
                          "gain": [1.5, 1.2, 0.5, 2.1], "train_s": [30.0, 90.0, 60.0, 120.0],
                          "wall_s": [40.0, 120.0, 70.0, 150.0]})
    s = regime.summary(table)
    assert list(s.index) == ["a", "b"]
    assert s.loc["a", "final gain (dB)"] == 1.2 and s.loc["a", "best gain (dB)"] == 1.5
    assert s.loc["b", "train (min)"] == 2.0 and s.loc["b", "wall (min)"] == 2.5
    assert regime.CANDIDATES["cpu_long"] == {} and regime.CANDIDATES["small"] == {"size": "small"}
    text = regime.report(table.assign(bicubic=33.69))
    assert "| a | +1.20 | +1.50 | 200 | 1.5 | 2.0 |" in text and "bicubic (33.69 dB)" in text
