"""Claim statistics against synthetic histories whose answers are known in closed form."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from pspl_nb.stats import (BEFORE_FIRST, CENSORED, claims_table, epochs_to_threshold, holm,
                           mean_gap, mean_over_seeds_and_images, paired_difference, paired_ratio,
                           per_seed_epochs, sign_flip_p, speed_statement, t_interval, t_test_p, threshold_sweep,
                           two_way_bootstrap, verdict)

# ---------------------------------------------------------------- epochs_to_threshold


def test_threshold_interpolates_between_evaluations():
    assert epochs_to_threshold([1, 2, 3], [30, 31, 33], 32) == pytest.approx(2.5)
    # uneven spacing: 31 -> 35 between epochs 2 and 10, threshold 32 is a quarter of the way
    assert epochs_to_threshold([1, 2, 10], [30, 31, 35], 32) == pytest.approx(4.0)


def test_threshold_first_point_exact_hit_and_never_reached():
    # already above at the first evaluation: crossed at some unknown earlier age, left-censored
    assert epochs_to_threshold([3, 4, 5], [33, 34, 35], 32) == BEFORE_FIRST == -math.inf
    assert epochs_to_threshold([3, 4, 5], [float("nan"), 31, 35], 32) == pytest.approx(4.25)
    assert epochs_to_threshold([1, 2, 3], [30, 32, 31], 32) == 2.0  # exact hit, not interpolated past it
    assert math.isnan(epochs_to_threshold([1, 2, 3], [30, 31, 31.9], 32))


def test_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        epochs_to_threshold([1, 2, 3], [30, 31], 32)
    with pytest.raises(ValueError, match="increasing"):
        epochs_to_threshold([1, 3, 2], [30, 31, 32], 32)
    with pytest.raises(ValueError, match="empty"):
        epochs_to_threshold([], [], 32)
    with pytest.raises(ValueError, match="threshold"):
        epochs_to_threshold([1, 2], [30, 31], float("nan"))


# ---------------------------------------------------------------- synthetic histories

SEEDS = [0, 1, 2, 3, 4]
THRESHOLD = 34.0
TAU_L1 = 40.0


def offset(seed):
    """Seed-dependent plateau shift in dB, small enough that every seed crosses THRESHOLD."""
    return 0.05 * (seed - 2)


def speed(seed):
    """Per-seed time factor of the fast arm around 1/2, so the bootstrap interval has some width."""
    return 0.5 * (1 + 0.04 * (seed - 2))


def curve(t, tau, seed):
    return 30 + 5 * (1 - np.exp(-t / tau)) + offset(seed)


def crossing(tau, seed):
    """Closed-form epoch at which ``curve`` reaches THRESHOLD (continuous time)."""
    return -tau * math.log(1 - (THRESHOLD - 30 - offset(seed)) / 5)


def history(last_epoch=200):
    epochs = np.arange(1, last_epoch + 1)
    taus = {"l1": lambda s: TAU_L1, "pspl": lambda s: TAU_L1 * speed(s), "same": lambda s: TAU_L1,
            "slow": lambda s: 2 * TAU_L1}
    frames = [pd.DataFrame({"arm": arm, "seed": s, "epoch": epochs, "psnr_embedded_valid": curve(epochs, tau(s), s)})
              for arm, tau in taus.items() for s in SEEDS]
    return pd.concat(frames, ignore_index=True)


def test_per_seed_epochs_matches_closed_form():
    table = per_seed_epochs(history(), "psnr_embedded_valid", THRESHOLD)
    assert list(table.columns) == ["arm", "seed", "epochs"] and len(table) == 4 * len(SEEDS)
    l1 = table[table.arm == "l1"].set_index("seed").epochs
    for s in SEEDS:  # linear interpolation of a smooth curve sampled every epoch: within 0.05 epochs
        assert l1[s] == pytest.approx(crossing(TAU_L1, s), abs=0.05)
    never = per_seed_epochs(history(), "psnr_embedded_valid", 36.0)  # plateau is ~35 dB
    assert never.epochs.isna().all()


def test_claims_faster_arm():
    table = claims_table(history(), "psnr_embedded_valid", THRESHOLD, n_boot=2000).set_index("arm")
    assert set(table.index) == {"pspl", "same", "slow"}
    row = table.loc["pspl"]
    # the geometric mean over seeds of the per-seed ratios of crossing epochs
    expected = math.exp(np.mean([math.log(crossing(TAU_L1 * speed(s), s) / crossing(TAU_L1, s)) for s in SEEDS]))
    assert row.seeds == 5 and row.unmatched == 0
    assert row.ratio == pytest.approx(expected, rel=0.01)
    assert row.ratio_lo <= expected <= row.ratio_hi < 1
    assert row.speed == "faster, interval excludes 1"
    # at epoch 200 the fast arm sits closer to its plateau: about +0.034 dB for every seed
    assert row.final_diff == pytest.approx(5 * (math.exp(-5) - math.exp(-200 / (TAU_L1 * 0.5))), rel=0.1)
    assert row.final_verdict == "better, interval excludes 0" and row.best_verdict == "better, interval excludes 0"
    assert row.gap_verdict == "better, interval excludes 0" and row.gap_diff > row.final_diff > 0
    assert row.ratio_p == row.final_p == pytest.approx(2 / 2**5)  # all 5 seeds agree: the smallest p of 5 seeds


def test_claims_identical_and_slower_arms():
    table = claims_table(history(), "psnr_embedded_valid", THRESHOLD, n_boot=2000).set_index("arm")
    same = table.loc["same"]
    assert same.ratio == same.ratio_lo == same.ratio_hi == 1.0
    assert same.speed == "no detectable difference" and same.final_verdict == "no detectable difference"
    assert same.final_diff == same.best_diff == 0.0
    slow = table.loc["slow"]
    assert slow.ratio == pytest.approx(2.0, rel=0.01) and slow.ratio_lo > 1
    assert slow.speed == "slower, interval excludes 1"
    assert slow.final_verdict == "worse, interval excludes 0"


def test_claims_match_seeds_and_compare_over_the_common_horizon():
    tidy = history()
    extra = pd.DataFrame({"arm": "pspl", "seed": 99, "epoch": [1, 2], "psnr_embedded_valid": [30.0, 31.0]})
    # a copy of l1 stopped at epoch 100: compared with l1 at epoch 100, not at l1's own last epoch 200
    short = tidy[(tidy.arm == "l1") & (tidy.epoch <= 100)].assign(arm="short")
    table = claims_table(pd.concat([tidy, extra, short]), "psnr_embedded_valid", THRESHOLD, n_boot=500).set_index("arm")
    assert table.loc["pspl"].seeds == 5 and table.loc["pspl"].unmatched == 1
    assert table.loc["short"].final_diff == 0.0 and table.loc["short"].horizon == 100
    assert table.loc["pspl"].horizon == 200


def test_claims_not_reached_says_so():
    table = claims_table(history(), "psnr_embedded_valid", 34.9, n_boot=200).set_index("arm")
    assert table.loc["slow"].speed == "not reached by every seed"
    assert table.loc["slow"].reached_arm < 5


def test_claims_rejects_bad_tables():
    with pytest.raises(ValueError, match="baseline"):
        claims_table(history(), "psnr_embedded_valid", THRESHOLD, baseline="edsr")
    with pytest.raises(ValueError, match="psnr_y"):
        claims_table(history(), "psnr_y", THRESHOLD)
    doubled = pd.concat([history(), history()])  # two configurations mixed: epochs repeat within a run
    with pytest.raises(ValueError, match="increasing"):
        per_seed_epochs(doubled, "psnr_embedded_valid", THRESHOLD)


# ---------------------------------------------------------------- small-sample intervals


def test_paired_difference_at_three_seeds_is_the_t_interval_not_min_max():
    """[0.1, 0.2, 0.3] vs 0: mean 0.2, sd 0.1, t(2) = 4.303 -> 0.2 -/+ 0.248, crossing 0 and above 0.4."""
    out = paired_difference([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    assert out["lo"] < 0 < 0.4 < out["hi"]
    expected = scipy.stats.ttest_1samp([0.1, 0.2, 0.3], 0.0).confidence_interval(0.95)
    assert (out["lo"], out["hi"]) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert math.isnan(out["boot_lo"])  # no bootstrap below 8 seeds
    assert out["p_signflip"] == pytest.approx(0.25)  # 3 seeds cannot do better than 2/8
    assert verdict(out["lo"], out["hi"], "difference", out["n"]) == "no detectable difference"


@pytest.mark.parametrize("n", [2, 3, 5, 8, 12])
def test_t_interval_and_paired_difference_equal_scipys_paired_t(n):
    rng = np.random.default_rng(n)
    b = rng.normal(34.0, 0.3, n)
    a = b + rng.normal(0.1, 0.05, n)
    ci = scipy.stats.ttest_rel(a, b).confidence_interval(0.95)
    out = paired_difference(a, b)
    assert (out["lo"], out["hi"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert t_interval(a - b)[1:] == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert math.isnan(out["boot_lo"]) == (n < 8)


def test_paired_ratio_is_a_t_interval_on_log_epochs():
    rng = np.random.default_rng(7)
    b = rng.uniform(4, 6, 8)
    a = b * rng.uniform(0.6, 0.9, 8)
    ci = scipy.stats.ttest_rel(np.log(a), np.log(b)).confidence_interval(0.95)
    out = paired_ratio(a, b)
    assert out["ratio"] == pytest.approx(np.exp(np.mean(np.log(a / b))), rel=1e-12)
    assert (out["lo"], out["hi"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)), rel=1e-10)
    assert out["boot_lo"] <= out["ratio"] <= out["boot_hi"]  # 8 seeds: the bootstrap view is given
    assert paired_ratio(a, b) == out  # deterministic


def test_paired_ratio_not_reached_is_nan_with_counts():
    out = paired_ratio([10.0, math.nan, 12.0], [20.0, 22.0, 24.0])
    assert math.isnan(out["ratio"]) and math.isnan(out["lo"]) and math.isnan(out["hi"])
    assert (out["n"], out["reached_a"], out["reached_b"]) == (3, 2, 3)


@pytest.mark.parametrize("d", [[0.3, -0.1, 0.2], [0.1, 0.2, 0.15, 0.3, -0.05, 0.12, 0.4, 0.2], [1.0, -1.0]])
def test_sign_flip_p_equals_scipys_exact_permutation_test(d):
    ref = scipy.stats.permutation_test((np.array(d),), np.mean, permutation_type="samples", n_resamples=np.inf,
                                       alternative="two-sided")
    assert sign_flip_p(d) == pytest.approx(ref.pvalue, abs=1e-12)


def test_interval_input_checks():
    with pytest.raises(ValueError, match="length"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="ci"):
        paired_difference([1.0], [1.0], ci=1.5)
    with pytest.raises(ValueError, match="empty"):
        paired_difference([], [])


def test_paired_difference_constant_is_exact():
    b = np.random.default_rng(0).normal(34.5, 0.2, size=6)
    out = paired_difference(b + 0.3, b)
    assert out["n"] == 6
    for key in ("diff", "lo", "hi"):
        assert out[key] == pytest.approx(0.3, abs=1e-12)


def test_paired_difference_is_paired():
    """Big seed-to-seed spread, tiny consistent gain: pairing must still detect it."""
    b = np.array([33.0, 34.0, 35.0, 36.0, 34.5])
    a = b + np.array([0.05, 0.06, 0.04, 0.05, 0.055])
    out = paired_difference(a, b)
    assert 0 < out["lo"] <= out["diff"] <= out["hi"]
    assert verdict(out["lo"], out["hi"], "difference") == "better, interval excludes 0"


# ---------------------------------------------------------------- threshold-free and threshold-swept


def test_mean_gap_is_the_mean_difference_over_common_epochs():
    run = pd.DataFrame({"epoch": [1, 2, 3, 4], "psnr": [30.0, 31.0, 32.0, 33.0]})
    base = pd.DataFrame({"epoch": [1, 2, 3], "psnr": [29.0, 31.0, 31.5]})
    assert mean_gap(run, base, "psnr") == pytest.approx((1.0 + 0.0 + 0.5) / 3)


def test_threshold_sweep_recovers_a_pure_time_scaling_everywhere():
    """The fast arm is the L1 curve with time scaled by ~1/2 for every seed, so at every threshold its ratio is
    about the per-seed factor; the identical arm is 1 with a zero-width interval."""
    sweep = threshold_sweep(history(), "psnr_embedded_valid", fractions=(0.1, 0.3, 0.5))
    fast = sweep[sweep.arm == "pspl"]
    assert len(fast) == 3 and fast.ratio.between(0.45, 0.56).all() and (fast.hi < 1).all()
    same = sweep[sweep.arm == "same"]
    assert (same.ratio == 1).all() and (same.lo == 1).all() and (same.speed == "no detectable difference").all()
    assert sweep.threshold.is_monotonic_increasing or sweep.groupby("arm").threshold.apply(
        lambda t: t.is_monotonic_increasing).all()
    assert speed_statement(sweep, "pspl").startswith("faster for thresholds")
    assert speed_statement(sweep, "same").startswith("no detectable difference for thresholds")


def test_speed_statement_splits_the_threshold_range_by_verdict():
    sweep = pd.DataFrame(dict(arm="x", threshold=[30.0, 31.0, 32.0, 33.0, 34.0, 35.0],
                              base_epoch=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                              speed=["faster, interval excludes 1"] * 3 + ["no detectable difference"] * 3))
    assert speed_statement(sweep, "x") == ("faster for thresholds 30.00-32.00 dB (baseline there at epochs 1.0-3.0); "
                                           "no detectable difference for thresholds 33.00-35.00 dB (baseline there at "
                                           "epochs 4.0-6.0)")


def test_a_verdict_held_over_fewer_than_three_adjacent_thresholds_is_not_stated():
    words = ["faster, interval excludes 1", "no detectable difference", "faster, interval excludes 1",
             "faster, interval excludes 1", "faster, interval excludes 1", "no detectable difference"]
    sweep = pd.DataFrame(dict(arm="x", threshold=np.arange(30.0, 36.0), base_epoch=np.arange(1.0, 7.0), speed=words))
    assert speed_statement(sweep, "x") == (
        "unsettled for thresholds 30.00-31.00 dB (baseline there at epochs 1.0-2.0); "
        "faster for thresholds 32.00-34.00 dB (baseline there at epochs 3.0-5.0); "
        "unsettled at threshold 35.00 dB (baseline there at epoch 6.0)")


def test_sweep_levels_come_from_the_held_out_runs_and_early_thresholds_are_censored():
    """Held-out L1 runs 1 dB lower place every level 1 dB lower than the scored L1 runs would; at a level the
    runs pass before their first evaluation the verdict is "censored", not a ratio of 1.0 epochs."""
    tidy = history()
    held = tidy[tidy.arm == "l1"].assign(psnr_embedded_valid=lambda t: t.psnr_embedded_valid - 1.0)
    own = threshold_sweep(tidy, "psnr_embedded_valid", fractions=(0.3,))
    lowered = threshold_sweep(tidy, "psnr_embedded_valid", fractions=(0.3,), levels_from=held)
    assert lowered.threshold.iloc[0] == pytest.approx(own.threshold.iloc[0] - 1.0)
    early = threshold_sweep(tidy, "psnr_embedded_valid", fractions=(0.001,), levels_from=held)
    assert (early.speed == CENSORED).all() and (early.censored > 0).all() and early.ratio.isna().all()


def test_claims_at_a_threshold_below_the_first_evaluation_are_censored():
    table = claims_table(history(), "psnr_embedded_valid", 29.0, n_boot=100).set_index("arm")
    assert (table.speed == CENSORED).all() and table.ratio.isna().all() and (table.censored == 10).all()


def test_verdict_words():
    assert verdict(0.4, 0.9, "ratio") == "faster, interval excludes 1"
    assert verdict(1.1, 1.5, "ratio") == "slower, interval excludes 1"
    assert verdict(0.9, 1.0, "ratio") == "no detectable difference"  # touching 1 is not excluding it
    assert verdict(math.nan, math.nan, "ratio") == "not reached by every seed"
    assert verdict(0.1, 0.2, "ratio", n=2) == "not enough seeds (2)"
    assert verdict(0.01, 0.1, "difference") == "better, interval excludes 0"
    assert verdict(-0.1, -0.01, "difference") == "worse, interval excludes 0"
    assert verdict(-0.1, 0.1, "difference") == "no detectable difference"
    with pytest.raises(ValueError, match="kind"):
        verdict(0, 1, "speed")


# ---------------------------------------------------------------- the attention schedule


def test_too_few_seeds_get_no_verdict():
    from pspl_nb.stats import verdict

    assert verdict(0.5, 0.8, "ratio", n=2) == "not enough seeds (2)"
    assert verdict(0.5, 0.8, "ratio", n=3) == "faster, interval excludes 1"


def test_evaluation_noise_counts_drops_and_late_spread():
    from pspl_nb.stats import evaluation_noise

    t = pd.DataFrame({"arm": "a", "seed": 0, "epoch": [1, 2, 3, 4, 5],
                      "psnr": [30.0, 31.0, 30.6, 31.5, 31.2]})  # steps +1, -0.4, +0.9, -0.3
    row = evaluation_noise(t, "psnr").loc["a"]
    assert row.max_drop == pytest.approx(0.4) and row.drops == 2
    assert row.late_sd == pytest.approx(np.std([0.9, -0.3], ddof=1))


# ---------------------------------------------------------------- multiplicity and images


def test_t_test_p_equals_scipys_one_sample_t_test():
    d = [0.12, -0.03, 0.2, 0.08, 0.15]
    assert t_test_p(d) == pytest.approx(scipy.stats.ttest_1samp(d, 0.0).pvalue, rel=1e-12)
    assert t_test_p([0.1, 0.1]) == 0.0 and t_test_p([0.0, 0.0]) == 1.0 and math.isnan(t_test_p([0.3]))


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06,
    0.04 x1 = 0.04 -> running max 0.06; back in the original order."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.02])  # NaN does not count in m
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_two_way_bootstrap_sees_image_variance_that_seeds_alone_miss():
    """d[s, i] = image effect only (no seed variation): resampling seeds alone would give a zero-width
    interval; the two-way bootstrap's interval is about the images' standard error wide."""
    images = np.array([0.4, -0.2, 0.1, 0.3, -0.1, 0.2, 0.0, 0.5, -0.3, 0.1])
    d = np.tile(images, (8, 1))
    r = mean_over_seeds_and_images(d, n_boot=4000)
    se = images.std(ddof=1) / math.sqrt(len(images))
    assert r["diff"] == pytest.approx(images.mean()) and r["lo"] < images.mean() < r["hi"]
    assert (r["hi"] - r["lo"]) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.15)
    assert r["ahead"] == 6 and r["images"] == 10
    # the counts the statistic sees are resamples of the seeds and of the images
    sizes = []
    two_way_bootstrap(lambda s, i: sizes.append((s.sum(), i.sum(), len(s), len(i))) or 0.0, 8, 10, n_boot=5)
    assert sizes == [(8, 10, 8, 10)] * 5
