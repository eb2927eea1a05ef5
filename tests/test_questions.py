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
    assert f"{r.estimate:+.3f} dB" in text and f"{r.adj_lo:+.3f}" in text and "Holm-adjusted p " in text
    assert summary._p(0.0004) == "< 0.001" and summary._p(0.0123) == "0.012"
    assert "ahead on 3 of 3 images" in text and "pspl vs l1_lrx2" in text
    regime = summary.regime_sentence(table)
    final_l1 = np.mean([curve("l1", s)[-1] for s in SCORING])
    assert f"{final_l1 - 29.0:+.2f} dB above bicubic (29.00 dB)" in regime and "(l1_lrx2)" in regime


def design_verdicts(grid):
    """The design arms (l1, pspl, uniform) of the scoring seeds, their speed question with the threshold set on
    the held-out l1 runs, and ``verdict_summary`` of them indexed by arm: (design, held-out runs, q, verdicts)."""
    table, _ = grid
    scoring, held = questions.split_seeds(table)
    design = scoring[scoring.arm.isin(["l1", "pspl", "uniform"])]
    q = questions.speed_question(design, questions.reference_config(table), held[held.arm == "l1"])
    v = questions.verdict_summary(design, q, levels_from=held[held.arm == "l1"]).set_index("arm")
    return design, held, q, v


def test_verdict_summary_puts_each_arm_against_l1_with_its_speed_range(grid):
    design, held, q, v = design_verdicts(grid)
    level = 30 + 4 * (1 - math.exp(-(125 / 300 * 200) / TAU))  # held-out l1 at x1: shift 0
    assert q.threshold == pytest.approx(level, abs=1e-3)
    expected = math.exp(np.mean([math.log(crossing("pspl", s, level) / crossing("l1", s, level)) for s in SCORING]))
    assert v.loc["pspl", "ratio"] == pytest.approx(expected, abs=2e-3)
    assert v.loc["pspl", "speed_range"].startswith("faster for thresholds")
    assert v.loc["uniform", "final_diff"] == pytest.approx(np.mean([curve("uniform", s)[-1] - curve("l1", s)[-1]
                                                                    for s in SCORING]))
    assert stats.speed_statement(stats.threshold_sweep(design, q.column, levels_from=held[held.arm == "l1"]),
                                 "uniform").count("thresholds") >= 1


def test_without_held_out_seeds_the_threshold_is_the_scored_runs_own_l1(grid):
    table, _ = grid
    scoring, _ = questions.split_seeds(table)
    q = questions.speed_question(scoring, questions.reference_config(table))
    # every scoring l1 run has the same curve (no shift, speed 1): its value at epoch 125/300 * 200, interpolated
    assert q.threshold == pytest.approx(np.interp(125 / 300 * 200, EPOCHS, curve("l1", 0)), rel=1e-12)
    assert q.column == "psnr_embedded_valid" and q.marks == {}


@pytest.mark.parametrize("last_epoch, marks", [(150, 2), (300, 4)])
def test_on_div2k_the_threshold_and_marks_are_the_papers_fig4(last_epoch, marks):
    tidy = pd.DataFrame(dict(arm="l1", seed=0, epoch=np.arange(1, last_epoch + 1), edsr_psnr_DIV2K_valid=34.0))
    q = questions.speed_question(tidy, profile("paper"))
    assert (q.column, q.threshold) == ("edsr_psnr_DIV2K_valid", 34.4)
    assert q.marks["paper PSPL, 34.4 dB at ~67"] == (67, 34.4) and q.marks["paper L1, 34.4 dB at ~128"] == (128, 34.4)
    assert len(q.marks) == marks  # the paper's final values only when the runs reach epoch 300
    if marks == 4:
        assert q.marks["paper PSPL final"] == (300, 34.60) and q.marks["paper L1 final"] == (300, 34.55)


def t95(values) -> tuple[float, float]:
    """The 95% Student-t interval of the mean, from scipy (not the kit's stats)."""
    ci = scipy.stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return ci.low, ci.high


def test_verdict_summary_intervals_equal_a_hand_computation(grid):
    design, held, q, v = design_verdicts(grid)
    level = q.threshold
    logs = [math.log(crossing("pspl", s, level) / crossing("l1", s, level)) for s in SCORING]
    assert (v.loc["pspl", "ratio_lo"], v.loc["pspl", "ratio_hi"]) == pytest.approx(np.exp(t95(logs)), abs=2e-3)
    assert v.loc["pspl", "speed"] == "faster, interval excludes 1" and v.loc["pspl", "seeds"] == 8
    gaps = [np.mean(curve("pspl", s) - curve("l1", s)) for s in SCORING]  # mean dB over all 200 epochs
    assert v.loc["pspl", "gap_diff"] == pytest.approx(np.mean(gaps), abs=1e-9)
    assert (v.loc["pspl", "gap_lo"], v.loc["pspl", "gap_hi"]) == pytest.approx(t95(gaps), abs=1e-9)
    finals = [curve("uniform", s)[-1] - curve("l1", s)[-1] for s in SCORING]
    assert (v.loc["uniform", "final_lo"], v.loc["uniform", "final_hi"]) == pytest.approx(t95(finals), abs=1e-9)
    assert v.loc["uniform", "best_diff"] == pytest.approx(v.loc["uniform", "final_diff"])  # the curves only rise
    assert v.loc["uniform", "final_verdict"] == "better, interval excludes 0"


def sign_flip_by_hand(d) -> float:
    """Share of the 2^n sign patterns of d whose |mean| reaches the observed one."""
    import itertools

    observed = abs(np.mean(d))
    means = [abs(np.mean(np.multiply(signs, d))) for signs in itertools.product((1, -1), repeat=len(d))]
    return float(np.mean([m >= observed - 1e-12 for m in means]))


def test_table1_gains_equal_a_hand_computation():
    base = {"Set5": [30.0, 30.2, 30.1], "Set14": [27.0, 27.1, 27.2]}
    gain = {"Set5": [0.3, 0.0, 0.3], "Set14": [0.5, 0.6, 0.7]}
    rows = []
    for name in base:
        for seed, (b, g) in enumerate(zip(base[name], gain[name])):
            rows += [dict(model="vdsr", arm="base", seed=seed, set=name, psnr=b, ssim=0.80),
                     dict(model="vdsr", arm="pspl", seed=seed, set=name, psnr=b + g, ssim=0.80 + g / 100)]
    rows.append(dict(model="vdsr", arm="pspl", seed=3, set="Set5", psnr=99.0, ssim=0.99))  # no baseline: not paired
    out = questions.gains(pd.DataFrame(rows)).set_index("set")
    for name, d in gain.items():
        r = out.loc[name]
        assert r.seeds == 3 and r.gain_psnr == pytest.approx(np.mean(d), abs=1e-12)
        assert (r.lo, r.hi) == pytest.approx(t95(d), abs=1e-9)
        assert r.p_signflip == pytest.approx(sign_flip_by_hand(d)) and r.gain_ssim == pytest.approx(np.mean(d) / 100)
    assert (out.loc["Set5", "p_signflip"], out.loc["Set14", "p_signflip"]) == (0.5, 0.25)  # 4 of 8, 2 of 8 patterns
    assert out.loc["Set5", "verdict"] == "no detectable difference"
    assert out.loc["Set14", "verdict"] == "better, interval excludes 0"


def test_final_scores_read_each_runs_last_row_test_sets_included():
    tidy = pd.DataFrame(dict(run_id=["a", "a", "b", "b"], model="vdsr", weighting=["none", "none", "pspl", "pspl"],
                             seed=[0, 0, 0, 0], epoch=[1, 2, 1, 2], psnr_embedded_valid=[30.0, 31.0, 30.5, 31.5],
                             ssim_embedded_valid=[0.8, 0.81, 0.82, 0.83], psnr_Set5=[np.nan, 32.0, np.nan, 32.5],
                             ssim_Set5=[np.nan, 0.9, np.nan, 0.91]))
    out = questions.final_scores(tidy).set_index(["arm", "set"])
    assert out.loc[("base", "embedded_valid"), "psnr"] == 31.0 and out.loc[("pspl", "Set5"), "psnr"] == 32.5
    assert out.loc[("pspl", "Set5"), "ssim"] == 0.91 and len(out) == 4
    assert questions.final_scores(tidy, sets=("Set5",)).psnr.tolist() == [32.0, 32.5]


# ---- the generated pages, from a committed folder --------------------------------------------------------

def record_reference(folder, table, images, profiles=("cpu", "cpu_long")):
    """``table`` and ``images`` written under ``folder`` as the committed reference grid of each of ``profiles``
    (by default the ``cpu`` grid and its ``cpu_long`` replication): histories, per-image PSNR of both image sets
    (the tune set 1 dB above, as the histories' tune column), provenance."""
    from pspl_nb import committed

    both = pd.concat([images, images.assign(set="embedded_tune", psnr=images.psnr + 1.0)], ignore_index=True)
    for name in profiles:
        committed.record(folder / name, "reference", table, "smoke", "hand-made", images=both, code_version="abc",
                         bicubic={"embedded_valid": 29.0, "embedded_tune": 30.0})


N_BOOT = 200  # resamples of the summary's image bootstraps in these tests


@pytest.fixture
def committed_folder(grid, tmp_path, monkeypatch):
    """The synthetic grid committed as the ``cpu`` grid and its ``cpu_long`` replication, with PSPL_REFERENCE
    pointing at it for this test; the summary's image bootstraps draw 200 resamples instead of 2,000 (the
    point estimates and t-intervals these tests check do not depend on them)."""
    record_reference(tmp_path, *grid)
    monkeypatch.setenv("PSPL_REFERENCE", str(tmp_path))
    monkeypatch.setattr(summary, "primary_claims", functools.partial(questions.primary_claims, n_boot=N_BOOT))
    return tmp_path


def test_markdown_summary_states_hand_computed_numbers(committed_folder):
    text = summary.markdown_summary("cpu")
    lines = text.splitlines()
    at = 125 / 300 * 200
    level = np.interp(at, EPOCHS, curve("l1_lrx2", 8))  # held-out l1 at its chosen x2: shift 0.2 on every seed
    share = np.mean([np.interp(level, curve("l1_lrx2", s), EPOCHS) / EPOCHS[-1] for s in SCORING])  # rising curves
    assert lines[0].endswith(f"The threshold on the cpu grid is {level:.2f} dB, which the scoring l1_lrx2 runs reach at "
                             f"{share:.0%} "
                             "of the run on average (the paper's L1: 42%).")
    final = {a: np.array([curve(a, s)[-1] for s in SCORING]) for a in ("l1", "l1_lrx2", "pspl", "pspl_lrx2",
                                                                       "uniform")}
    regime = f"plain L1 ends {final['l1'].mean() - 29:+.2f} dB above bicubic (29.00 dB)"
    assert f"\n- cpu: {regime} on embedded_valid" in text and f"\n- cpu_long: {regime} on embedded_valid" in text
    assert f"{final['l1_lrx2'].mean() - 29:+.2f} dB at its chosen lr (l1_lrx2)" in text
    claims = [line for line in lines if line.startswith("- PSPL vs L1, final PSNR")]
    # the primary claim, its replication on embedded_tune (+1 dB: the same difference) and on cpu_long (the same grid)
    assert len(claims) == 3
    assert all(f": {np.mean(final['pspl'] - final['l1_lrx2']):+.3f} dB [95% " in line for line in claims)
    assert "### Replication on the cpu_long regime (3 epochs x 12 it x batch 4, LR patch 16)" in lines
    d = final["l1_lrx2"] - final["l1"]  # 0.02 on every scoring seed: the interval has no width
    assert (f"| l1_lrx2 | x2 | {final['l1_lrx2'].mean():.3f} | {d.mean():+.3f} [{d.mean():+.3f}, {d.mean():+.3f}] "
            "| 8 | 0 |") in lines
    d = final["pspl_lrx2"] - final["pspl"]
    lo, hi = t95(d)
    assert f"| pspl_lrx2 | x2 | {final['pspl_lrx2'].mean():.3f} | {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] | 8 | 0 |" \
        in lines
    # held-out seeds prefer l1 at x2 and pspl at x1, the two ends of a sweep of x1 and x2
    assert ("Chosen on held-out seeds [8, 9, 10, 11] (best mean final PSNR): l1 l1_lrx2 (at the edge of the swept "
            "range), pspl pspl (at the edge of the swept range).") in lines
    d = final["uniform"] - final["l1"]
    lo, hi = t95(d)
    assert (f"- uniform - l1 (PSPL's rising scale alone, under Adam): {d.mean():+.3f} dB [{lo:+.3f}, {hi:+.3f}], "
            "better, interval excludes 0") in lines
    plain = np.interp(at, EPOCHS, curve("l1", 8))
    assert f"### Exploratory: every arm against L1 at lr x1 (threshold {plain:.2f} dB: " in text
    row = next(line for line in lines if line.startswith("| uniform | 8 | "))
    assert row.endswith(f"| {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] |")  # final dB, the last column
    assert text.count("2x2, final PSNR: ") == 1 and text.count("2x2, mean PSNR: ") == 1


def test_headline_is_the_primary_claims_in_words(committed_folder):
    from pspl_nb import committed

    lines = summary.headline("cpu")
    assert len(lines) == 5 and all(line.endswith(".") for line in lines)
    final = np.mean([curve("pspl", s)[-1] - curve("l1_lrx2", s)[-1] for s in SCORING])
    assert lines[0].startswith("**PSPL vs L1, final PSNR (pspl vs l1_lrx2, lrs chosen on held-out seeds)**: "
                               f"{final:+.3f} dB [")
    assert ": faster;" in lines[1] and ": better;" in lines[2]
    claims = questions.primary_claims(committed.load("cpu", "reference_histories"),
                                      committed.load("cpu", "reference_images"), n_boot=N_BOOT)
    assert lines[:4] == [summary.claim_line(r) for r in claims.itertuples()]
    assert lines[4].startswith("**Replications** of the four verdicts: on the second image set 4 of 4; on the "
                               "cpu_long regime 4 of 4. Weak regimes: cpu: plain L1 ends ")
    assert "cpu_long: plain L1 ends" in lines[4]


def test_the_summary_reads_the_reference_folder_it_is_pointed_at(committed_folder, grid, tmp_path, monkeypatch):
    """Grids are loaded once per process, but per folder: pointed at another folder, the summary states its numbers."""
    table, images = grid
    final = np.mean([curve("pspl", s)[-1] - curve("l1_lrx2", s)[-1] for s in SCORING])
    assert f"{final:+.3f} dB [" in summary.headline("cpu")[0]
    pspl = table.arm.eq("pspl")
    better = table.assign(psnr_embedded_valid=table.psnr_embedded_valid + 0.5 * pspl)
    better.attrs = table.attrs
    record_reference(tmp_path / "other", better, images.assign(psnr=images.psnr + 0.5 * images.arm.eq("pspl")))
    monkeypatch.setenv("PSPL_REFERENCE", str(tmp_path / "other"))
    assert f"{final + 0.5:+.3f} dB [" in summary.headline("cpu")[0]


def test_a_replication_grid_that_is_not_committed_is_named_not_invented(grid, tmp_path, monkeypatch):
    from pspl_nb import committed

    table, images = grid
    monkeypatch.setenv("PSPL_REFERENCE", str(tmp_path))
    monkeypatch.setattr(summary, "primary_claims", functools.partial(questions.primary_claims, n_boot=N_BOOT))
    record_reference(tmp_path, table, images, profiles=("cpu",))
    assert committed.is_committed("cpu") and not committed.is_committed("cpu_long")
    missing, strength = summary.replication_lines("cpu", "cpu_long")
    runs = len(committed.first_stage("cpu_long"))
    assert missing.startswith(f"the cpu_long regime's grid ({runs} runs") and "not committed" in missing
    assert strength == f"cpu: {summary.regime_sentence(table)}."
    assert "cpu_long regime's grid" in summary.headline("cpu", "cpu_long")[-1]

    # the same grid as its own replication repeats every verdict
    record_reference(tmp_path, table, images, profiles=("cpu_long",))
    replicated, strength = summary.replication_parts("cpu", "cpu_long")
    assert len(replicated) == len(questions.PRIMARY) + 1 and len(strength) == 2
    assert replicated[0] == summary.threshold_sentence("cpu_long")
    assert strength[-1].startswith("cpu_long: plain L1 ends")
    assert summary.replication_lines("cpu", "cpu_long") == replicated + strength
    assert "How strong the regimes are" in summary.markdown_summary("cpu", "cpu_long")
    assert "on the cpu_long regime 4 of 4" in summary.headline("cpu", "cpu_long")[-1]


def test_crossing_share_is_the_mean_interpolated_crossing_over_the_run_length():
    epochs = np.arange(1, 11)
    rows = [pd.DataFrame({"arm": "l1", "seed": s, "epoch": epochs, "psnr": 30.0 + slope * epochs})
            for s, slope in enumerate((1.0, 0.5, 0.1))]
    tidy = pd.concat(rows + [pd.DataFrame({"arm": "pspl", "seed": 0, "epoch": epochs, "psnr": 40.0})])
    share, left_out = questions.crossing_share(tidy, "l1", 34.0, "psnr")
    # slope 1 reaches 34 dB at epoch 4, slope 0.5 at epoch 8, slope 0.1 never (right-censored, left out)
    assert share == pytest.approx((4 / 10 + 8 / 10) / 2) and left_out == 1
    assert questions.crossing_share(tidy, "pspl", 34.0, "psnr")[1] == 1  # there at its first evaluation
    assert np.isnan(questions.crossing_share(tidy, "pspl", 34.0, "psnr")[0])
