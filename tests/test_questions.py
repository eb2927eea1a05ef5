"""The verdict layer on a synthetic committed grid whose answers are known by construction: the threshold set on
held-out seeds, the lr each arm is judged at, the four primary claims with Holm, the intervals over images, and
the generated sentences."""
import functools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from pspl_nb import questions, stats, summary
from pspl_nb.config import profile

SCORING, HELD = range(8), range(8, 12)
EPOCHS = np.arange(1, 201)
IMAGES = ("a", "b", "c")
TAU = 40.0


def speed(arm: str, seed: int) -> float:
    """Time factor of each arm: pspl reaches every level at 0.6-0.74 of L1's time (per seed), the rest at 1."""
    return 0.6 + 0.02 * (seed % 8) if arm == "pspl" else 1.0


def final_shift(arm: str, seed: int) -> float:
    """dB added to the whole curve. Held-out seeds prefer l1 at x2 and pspl at x1; on the scoring seeds the 2x2
    has a scale effect of +0.1 and a contrast effect of -0.05 (+ per-seed wiggle), pspl vs l1_lrx2: +0.08 + wiggle."""
    wiggle = 0.01 * ((seed * 7) % 5 - 2)
    held = seed in HELD
    return {"l1": 0.0, "l1_lrx2": 0.2 if held else 0.02, "pspl": 0.1 + wiggle, "pspl_lrx2": 0.0 if held else -0.3,
            "uniform": 0.1 + 0.5 * wiggle, "contrast": -0.05 + 0.5 * wiggle}[arm]


def image_shift(image: str) -> float:
    return {"a": -0.3, "b": 0.0, "c": 0.3}[image]


def crossing(arm: str, seed: int, level: float) -> float:
    """Closed-form epoch at which ``curve(arm, seed)`` reaches ``level`` (continuous time)."""
    return -TAU * speed(arm, seed) * math.log(1 - (level - 30 - final_shift(arm, seed)) / 4)


def curve(arm, seed, image=None):
    base = 30 + 4 * (1 - np.exp(-EPOCHS / (TAU * speed(arm, seed)))) + final_shift(arm, seed)
    return base + (image_shift(image) if image else 0.0)


@pytest.fixture(scope="module")
def grid():
    rows, images = [], []
    for arm in ("l1", "l1_lrx2", "pspl", "pspl_lrx2", "uniform", "contrast"):
        for s in (*SCORING, *HELD):
            mult = 2.0 if arm.endswith("lrx2") else 1.0
            rows.append(pd.DataFrame(dict(run_id=f"{arm}-{s}", arm=arm, seed=s, epoch=EPOCHS, lr_mult=mult,
                                          diverged=False, psnr_embedded_valid=curve(arm, s),
                                          psnr_embedded_tune=curve(arm, s) + 1.0)))
            for image in IMAGES:
                images.append(pd.DataFrame(dict(arm=arm, seed=s, epoch=EPOCHS, set="embedded_valid", image=image,
                                                psnr=curve(arm, s, image))))
    table = pd.concat(rows, ignore_index=True)
    table.attrs["provenance"] = dict(config=profile("smoke").to_dict(), held_out_seeds=list(HELD), profile="smoke",
                                     bicubic={"embedded_valid": 29.0, "embedded_tune": 30.0})
    return table, pd.concat(images, ignore_index=True)


def test_the_threshold_is_held_out_l1_at_125_of_300(grid):
    table, _ = grid
    scoring, held = questions.split_seeds(table)
    assert sorted(held.seed.unique()) == list(HELD) and sorted(scoring.seed.unique()) == list(SCORING)
    q = questions.speed_question(scoring, questions.reference_config(table), held[held.arm == "l1"])
    at = 125 / 300 * 200  # epoch 83.3: L1's mean curve over the held-out seeds there (shift 0 for every seed)
    assert q.threshold == pytest.approx(30 + 4 * (1 - math.exp(-at / TAU)), abs=1e-3)
    assert "held-out seeds [8, 9, 10, 11]" in q.how
    alone = questions.speed_question(scoring, questions.reference_config(table))
    assert "set on the scored runs themselves" in alone.how


def test_primary_claims_equal_a_hand_computation(grid):
    table, images = grid
    claims = questions.primary_claims(table, images, n_boot=300).set_index("claim")
    # held-out seeds chose l1 at x2 and pspl at x1
    assert (claims.loc["final", "arm"], claims.loc["final", "baseline"]) == ("pspl", "l1_lrx2")
    final = {a: [curve(a, s)[-1] for s in SCORING] for a in ("l1", "l1_lrx2", "pspl", "uniform", "contrast")}
    d = {"final": np.subtract(final["pspl"], final["l1_lrx2"])}
    l1, u, c, p = (np.array(final[a]) for a in ("l1", "uniform", "contrast", "pspl"))
    d["scale"], d["contrast"] = ((u - l1) + (p - c)) / 2, ((c - l1) + (p - u)) / 2
    # the threshold: held-out l1 at its chosen x2 (shift 0.2) at 125/300 of the run
    level = 30 + 4 * (1 - math.exp(-(125 / 300 * 200) / TAU)) + 0.2
    d["speed"] = [math.log(crossing("pspl", s, level) / crossing("l1_lrx2", s, level)) for s in SCORING]
    pvals = {}
    for name, values in d.items():
        row = claims.loc[name]
        test = scipy.stats.ttest_1samp(values, 0.0)
        wide = test.confidence_interval(1 - 0.05 / 4)
        to = math.exp if name == "speed" else float
        tol = 2e-3 if name == "speed" else 1e-9  # the crossings are read off curves sampled once per epoch
        assert row.estimate == pytest.approx(to(np.mean(values)), abs=tol)
        assert (row.adj_lo, row.adj_hi) == pytest.approx((to(wide.low), to(wide.high)), abs=tol)
        pvals[name] = row.p
        if name != "speed":
            assert row.p == pytest.approx(test.pvalue, rel=1e-9)
    ordered = sorted(pvals.items(), key=lambda kv: kv[1])
    running = 0.0
    for k, (name, p) in enumerate(ordered):  # Holm by hand
        running = max(running, min(1.0, p * (4 - k)))
        assert claims.loc[name, "p_holm"] == pytest.approx(running, rel=1e-9)
    assert claims.loc["speed", "verdict"] == "faster, interval excludes 1"
    assert claims.loc["scale", "verdict"] == "better, interval excludes 0"
    assert claims.loc["contrast", "verdict"] == "worse, interval excludes 0"
    # images only shift the level: the difference is the same on every image, so all three are ahead
    assert claims.loc["final", "ahead"] == 3 and claims.loc["final", "images"] == 3
    assert claims.loc["final", "img_lo"] <= claims.loc["final", "estimate"] <= claims.loc["final", "img_hi"]
    assert claims.loc["speed", "img_lo"] < 1 and claims.loc["speed", "img_hi"] < 1


def test_the_replication_column_keeps_the_lrs_chosen_on_the_scoring_images(grid):
    table, _ = grid
    rep = questions.primary_claims(table, column="psnr_embedded_tune").set_index("claim")
    assert rep.loc["final", "baseline"] == "l1_lrx2"  # +1 dB everywhere changes no difference
    assert rep.loc["final", "estimate"] == pytest.approx(
        np.mean([curve("pspl", s)[-1] - curve("l1_lrx2", s)[-1] for s in SCORING]))
    assert "img_lo" not in rep  # no per-image table given


def test_generated_sentences_carry_the_numbers_they_state(grid):
    table, images = grid
    claims = questions.primary_claims(table, images, n_boot=200)
    text = summary.claim_sentence(claims.iloc[0])
    r = claims.iloc[0]
    assert f"{r.estimate:+.3f} dB" in text and f"{r.adj_lo:+.3f}" in text and f"Holm-adjusted p {r.p_holm:.3f}" in text
    assert "ahead on 3 of 3 images" in text and "pspl vs l1_lrx2" in text
    regime = summary.regime_sentence(table)
    final_l1 = np.mean([curve("l1", s)[-1] for s in SCORING])
    assert f"{final_l1 - 29.0:+.2f} dB above bicubic (29.00 dB)" in regime and "(l1_lrx2)" in regime


def test_verdict_summary_puts_each_arm_against_l1_with_its_speed_range(grid):
    table, _ = grid
    scoring, held = questions.split_seeds(table)
    design = scoring[scoring.arm.isin(["l1", "pspl", "uniform"])]
    q = questions.speed_question(design, questions.reference_config(table), held[held.arm == "l1"])
    v = questions.verdict_summary(design, q, levels_from=held[held.arm == "l1"]).set_index("arm")
    level = 30 + 4 * (1 - math.exp(-(125 / 300 * 200) / TAU))  # held-out l1 at x1: shift 0
    assert q.threshold == pytest.approx(level, abs=1e-3)
    expected = math.exp(np.mean([math.log(crossing("pspl", s, level) / crossing("l1", s, level)) for s in SCORING]))
    assert v.loc["pspl", "ratio"] == pytest.approx(expected, abs=2e-3)
    assert v.loc["pspl", "speed_range"].startswith("faster for thresholds")
    assert v.loc["uniform", "final_diff"] == pytest.approx(np.mean([curve("uniform", s)[-1] - curve("l1", s)[-1]
                                                                    for s in SCORING]))
    assert stats.speed_statement(stats.threshold_sweep(design, q.column, levels_from=held[held.arm == "l1"]),
                                 "uniform").count("thresholds") >= 1


def _commit(folder, table, images):
    """Write the synthetic grid as a committed grid folder (the files ``committed.load`` reads)."""
    import json

    folder.mkdir(parents=True)
    table.to_csv(folder / "reference_histories.csv", index=False)
    tune = images.assign(set="embedded_tune", psnr=images.psnr + 1.0)  # as the histories' tune column
    pd.concat([images, tune]).to_csv(folder / "reference_images.csv.gz", index=False)
    (folder / "provenance.json").write_text(json.dumps({"grids": {"reference": table.attrs["provenance"]}}))


def test_a_replication_grid_that_is_not_committed_is_named_not_invented(grid, tmp_path, monkeypatch):
    from pspl_nb import committed

    table, images = grid
    monkeypatch.setenv("PSPL_REFERENCE", str(tmp_path))
    monkeypatch.setattr(summary, "primary_claims", functools.partial(questions.primary_claims, n_boot=200))
    summary._grid.cache_clear(), summary.claims.cache_clear()
    _commit(tmp_path / "cpu", table, images)
    assert committed.is_committed("cpu") and not committed.is_committed("cpu_long")
    missing, strength = summary.replication_lines("cpu", "cpu_long")
    runs = len(committed.first_stage("cpu_long"))
    assert missing.startswith(f"the cpu_long regime's grid ({runs} runs") and "not committed" in missing
    assert strength == f"cpu: {summary.regime_sentence(table)}."
    assert "cpu_long regime's grid" in summary.headline("cpu", "cpu_long")[-1]

    _commit(tmp_path / "cpu_long", table, images)  # the same grid as its own replication repeats every verdict
    summary._grid.cache_clear(), summary.claims.cache_clear()
    lines = summary.replication_lines("cpu", "cpu_long")
    assert len(lines) == len(questions.PRIMARY) + 2 and lines[-1].startswith("cpu_long: plain L1 ends")
    assert "on the cpu_long regime 4 of 4" in summary.headline("cpu", "cpu_long")[-1]
    summary._grid.cache_clear(), summary.claims.cache_clear()
