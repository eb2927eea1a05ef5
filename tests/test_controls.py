"""The 2x2 and the lr sweep on synthetic histories whose effects are known exactly."""
import numpy as np
import pandas as pd
import pytest

from pspl_nb.controls import (chosen_lrs, design_sentence, factorial_effects, fair_comparison, lr_table, per_seed,
                              sweep_arms)

SEEDS = range(8)
EPOCHS = np.arange(1, 11)


def tidy(effects: dict, noise: float = 0.01) -> pd.DataFrame:
    """PSNR = 30 + 4 (1 - exp(-epoch / 3)) + per-seed offset + the arm's effect + small per-(arm, seed) noise."""
    rng = np.random.default_rng(0)
    frames = []
    for arm, effect in effects.items():
        for s in SEEDS:
            curve = 30 + 4 * (1 - np.exp(-EPOCHS / 3)) + 0.3 * np.sin(s) + effect + rng.normal(0, noise)
            frames.append(pd.DataFrame(dict(arm=arm, seed=s, epoch=EPOCHS, psnr=curve)))
    return pd.concat(frames, ignore_index=True)


def test_factorial_effects_recover_additive_scale_and_contrast():
    # scale adds 0.2 dB, contrast nothing, no interaction
    t = tidy({"l1": 0.0, "uniform": 0.2, "contrast": 0.0, "pspl": 0.2})
    fx = factorial_effects(t, "psnr").set_index("effect")
    assert fx.loc["scale (rising global weight)", "diff"] == pytest.approx(0.2, abs=0.02)
    assert fx.loc["scale (rising global weight)", "verdict"] == "better, interval excludes 0"
    assert abs(fx.loc["contrast (pixel weighting)", "diff"]) < 0.02
    assert fx.loc["interaction", "lo"] < 0 < fx.loc["interaction", "hi"] or abs(fx.loc["interaction", "diff"]) < 0.03
    assert fx.loc["pspl - l1", "diff"] == pytest.approx(0.2, abs=0.02)
    assert (fx.n == 8).all()
    sentence = design_sentence(factorial_effects(t, "psnr"))
    assert sentence.startswith("Scale alone carries a detectable gain here") and "pixel contrast shows no" in sentence
    both = design_sentence(factorial_effects(tidy({"l1": 0.0, "uniform": 0.2, "contrast": 0.2, "pspl": 0.4}), "psnr"))
    assert both.startswith("Both parts carry a detectable gain here")


def test_factorial_effects_from_exact_values():
    """Per-seed values constructed so every effect is a known constant: intervals of zero width."""
    t = tidy({"l1": 0.0, "uniform": 0.1, "contrast": 0.3, "pspl": 0.5}, noise=0.0)
    fx = factorial_effects(t, "psnr", measure="mean").set_index("effect")
    # scale: ((0.1 - 0) + (0.5 - 0.3)) / 2 = 0.15; contrast: ((0.3 - 0) + (0.5 - 0.1)) / 2 = 0.35;
    # interaction: (0.5 - 0.3) - (0.1 - 0) = 0.1
    assert fx["diff"].iloc[:3].tolist() == pytest.approx([0.15, 0.35, 0.1], abs=1e-12)
    assert fx.lo.iloc[:3].tolist() == pytest.approx([0.15, 0.35, 0.1], abs=1e-12)


def test_factorial_effects_need_all_four_arms():
    with pytest.raises(ValueError, match="contrast"):
        factorial_effects(tidy({"l1": 0.0, "uniform": 0.1, "pspl": 0.2}), "psnr")


def test_per_seed_final_and_mean():
    t = tidy({"l1": 0.0}, noise=0.0)
    table = per_seed(t, "psnr")
    assert table.shape == (1, 8)
    run = t[(t.arm == "l1") & (t.seed == 3)].psnr
    assert table.loc["l1", 3] == run.iloc[-1] and per_seed(t, "psnr", "mean").loc["l1", 3] == pytest.approx(run.mean())


def test_lr_table_marks_each_familys_best_and_fair_comparison_uses_them():
    t = tidy({"l1": 0.0, "l1_lrx0.5": -0.1, "l1_lrx2": 0.15, "l1_lrx4": 0.05,
              "pspl": 0.1, "pspl_lrx0.5": 0.0, "pspl_lrx2": 0.12, "pspl_lrx4": -0.2})
    lrs = lr_table(t, "psnr")
    best = lrs[lrs.best].set_index("family")
    assert best.loc["l1", "arm"] == "l1_lrx2" and best.loc["pspl", "arm"] == "pspl_lrx2"
    row = lrs.set_index("arm").loc["l1_lrx2"]
    assert row.lr_mult == 2.0 and row.diff_vs_x1 == pytest.approx(0.15, abs=0.02) and row.lo > 0
    fair = fair_comparison(t, "psnr", 33.0, best.arm.to_dict())
    assert fair.arm.tolist() == ["pspl_lrx2"] and fair.baseline.tolist() == ["l1_lrx2"]
    assert fair.final_diff.iloc[0] == pytest.approx(-0.03, abs=0.02)


def test_sweep_arms_take_only_the_adam_lr_sweep():
    labels = ["l1", "l1_lrx0.5", "l1_lrx8", "l1_lrx0.2_sgd", "l1_beta2_0.99", "l1_lrramp", "pspl_lrx2"]
    assert sweep_arms(labels, "l1") == {"l1": 1.0, "l1_lrx0.5": 0.5, "l1_lrx8": 8.0}


def test_the_lr_is_chosen_on_held_out_seeds_only_and_a_diverged_lr_is_never_chosen():
    """Seeds 0-7 favour x2, seeds 8-11 favour x4: the choice follows the held-out seeds. An lr whose mean is
    the highest but with one diverged seed (NaN final) is not chosen."""
    frames = []
    for s in range(12):
        for arm, effect in {"l1": 0.0, "l1_lrx2": 0.3 if s < 8 else 0.1, "l1_lrx4": 0.0 if s < 8 else 0.2,
                            "l1_lrx8": 0.5}.items():
            frames.append(pd.DataFrame(dict(arm=arm, seed=s, epoch=EPOCHS, psnr=30 + effect + EPOCHS / 10,
                                            diverged=arm == "l1_lrx8" and s == 9)))
    t = pd.concat(frames, ignore_index=True)
    assert chosen_lrs(t, "psnr", range(8, 12), ("l1",)) == {"l1": "l1_lrx4"}
    assert chosen_lrs(t, "psnr", range(8), ("l1",)) == {"l1": "l1_lrx8"}  # no divergence among seeds 0-7
    lrs = lr_table(t[t.seed >= 8], "psnr", ("l1",)).set_index("arm")
    assert lrs.loc["l1_lrx8", "diverged"] == 1 and lrs.loc["l1_lrx8", "seeds"] == 3 and not lrs.loc["l1_lrx8", "best"]
