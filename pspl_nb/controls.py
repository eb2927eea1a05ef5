"""What the controls say about PSPL's gains: its two parts separated, and each arm at its own best lr.

PSPL changes plain L1 in two ways at once: a global loss scale that rises from ~0 to gamma as the weights
flatten (the batch-mean weight), and a contrast between pixels (which pixels get more than the mean). Four
arms cross the two factors, a 2x2 design:

                        no pixel contrast     pixel contrast
    constant scale      l1                    contrast    (Ma / mean Ma)
    rising scale        uniform (mean Ma)     pspl        (Ma)

Per seed, the *scale effect* is the average of (uniform - l1) and (pspl - contrast), the *contrast effect*
the average of (contrast - l1) and (pspl - uniform), and the *interaction* (pspl - contrast) - (uniform - l1);
each gets a paired t-interval over seeds (``stats.paired_difference``). The lr sweep asks whether a larger
step alone gives PSPL's gain; the fair comparison takes each arm at the lr its held-out seeds chose.

The scale's mechanism is the optimiser's: Adam divides each gradient by the root of a running mean of its
squares, so a constant loss scale cancels, but a *rising* one makes today's gradients larger than the
remembered ones and the step grows until the memory (~1/(1 - beta2) steps) catches up. The optimiser
controls test that story: ``l1_lrramp`` gives plain L1 the step sizes the scale gives Adam, uniform at
beta2 0.99 shortens the memory, and under SGD a loss scale is simply an lr scale (``optimizer_effects``,
``step_sizes``).

Input is a tidy table (``experiments.run_grid``): columns arm, seed, epoch and the metric ``column``.
"""
import numpy as np
import pandas as pd

from pspl_nb.stats import _runs, claims_table, paired_difference, verdict

DESIGN_ARMS = ("l1", "uniform", "contrast", "pspl")
MEASURES = ("final", "mean")


def per_seed(tidy: pd.DataFrame, column: str, measure: str = "final") -> pd.DataFrame:
    """One value per (arm, seed): the metric at the run's last epoch ("final") or its mean over every
    evaluated epoch ("mean", the area under the curve divided by its length). Returns arms x seeds; a run
    that diverged (``diverged`` column True: its rows stop early) has no final value: NaN."""
    if measure not in MEASURES:
        raise ValueError(f"per_seed: measure={measure!r}, expected one of {MEASURES}")
    values = {(arm, seed): np.nan if "diverged" in run and run["diverged"].any() else
              float(run[column].iloc[-1] if measure == "final" else run[column].mean())
              for (arm, seed), run in _runs(tidy, column)}
    return pd.Series(values, dtype=float).unstack()


def factorial_effects(tidy: pd.DataFrame, column: str, measure: str = "final", arms=DESIGN_ARMS,
                      ci: float = 0.95) -> pd.DataFrame:
    """The 2x2's effects with t-intervals over the seeds all four arms share.

    Args:
        arms: labels of (l1, uniform, contrast, pspl) in that order, e.g. the alpha-0.3 versions.
        measure: "final" or "mean" (``per_seed``). Values in ``column``'s unit (dB).
    Returns:
        DataFrame, one row per effect (scale, contrast, interaction, then each arm minus l1, and pspl minus
        uniform: what the pixel contrast adds once the scale is there): effect, diff, lo, hi, p_signflip, n,
        verdict.
    """
    table = per_seed(tidy, column, measure)
    missing = [a for a in arms if a not in table.index]
    if missing:
        raise ValueError(f"factorial_effects: arms {missing} are not in the table (it has {list(table.index)})")
    both = table.loc[list(arms)].dropna(axis=1)  # seeds every arm has
    l1, uniform, contrast, pspl = (both.loc[a].to_numpy() for a in arms)
    effects = {"scale (rising global weight)": ((uniform - l1) + (pspl - contrast)) / 2,
               "contrast (pixel weighting)": ((contrast - l1) + (pspl - uniform)) / 2,
               "interaction": (pspl - contrast) - (uniform - l1),
               f"{arms[1]} - {arms[0]}": uniform - l1, f"{arms[2]} - {arms[0]}": contrast - l1,
               f"{arms[3]} - {arms[0]}": pspl - l1, f"{arms[3]} - {arms[1]} (contrast on top of the scale)": pspl - uniform}
    rows = []
    for name, d in effects.items():
        r = paired_difference(d, np.zeros_like(d), ci)
        rows.append(dict(effect=name, diff=r["diff"], lo=r["lo"], hi=r["hi"], p_signflip=r["p_signflip"], n=r["n"],
                         verdict=verdict(r["lo"], r["hi"], "difference", r["n"])))
    return pd.DataFrame(rows)


def design_sentence(effects: pd.DataFrame, unit: str = "dB") -> str:
    """One sentence on what the 2x2 says: which of scale and contrast help, hurt or show nothing."""
    def word(row):
        return {"better": "helps", "worse": "hurts"}.get(row.verdict.split(",")[0], "shows no detectable effect")

    scale, contrast, inter = (effects.iloc[k] for k in range(3))
    parts = [f"the rising global scale {word(scale)} ({scale['diff']:+.3f} {unit} [{scale.lo:+.3f}, {scale.hi:+.3f}])",
             f"pixel contrast {word(contrast)} ({contrast['diff']:+.3f} {unit} [{contrast.lo:+.3f}, {contrast.hi:+.3f}])"]
    if scale.verdict.startswith("not enough seeds"):
        return f"With {int(scale.n)} seeds the 2x2 cannot say which part carries PSPL's effect ({'; '.join(parts)})."
    helps = [p for p, r in (("scale", scale), ("contrast", contrast)) if word(r) == "helps"]
    summary = {0: "neither part", 1: f"{helps[0]} alone" if helps else "", 2: "both parts"}[len(helps)]
    tail = f"; they interact ({inter['diff']:+.3f} {unit})" if word(inter) != "shows no detectable effect" else ""
    if len(effects) > 6:  # pspl - uniform: the contrast once the scale is there
        on_top = effects.iloc[6]
        tail += (f"; on top of the rising scale the pixel contrast {word(on_top)} "
                 f"({on_top['diff']:+.3f} {unit} [{on_top.lo:+.3f}, {on_top.hi:+.3f}])")
    verb = "carry" if len(helps) == 2 else "carries"
    return f"{summary.capitalize()} {verb} a detectable gain here: {'; '.join(parts)}{tail}."


def sweep_arms(labels, family: str) -> dict:
    """{arm: lr multiplier} of ``family``'s Adam lr sweep among ``labels``: ``<family>`` (x1) and
    ``<family>_lrx<m>`` (other suffixes, such as ``_sgd`` or ``_beta2_0.99``, belong to other controls)."""
    out = {}
    for a in labels:
        mult = a.removeprefix(f"{family}_lrx")
        if a == family:
            out[a] = 1.0
        elif a.startswith(f"{family}_lrx") and mult.replace(".", "", 1).isdigit():
            out[a] = float(mult)
    return out


def lr_table(tidy: pd.DataFrame, column: str, families=("l1", "pspl"), measure: str = "final",
             ci: float = 0.95) -> pd.DataFrame:
    """Each family's arms across the lr sweep (``sweep_arms``): mean over seeds of ``measure`` with a
    t-interval of its difference from the family at lr x1, how many seeds diverged, and which lr is best
    (highest mean; an lr at which any seed diverged is never best).

    Returns:
        DataFrame: family, arm, lr_mult, mean, diff_vs_x1, lo, hi, seeds, diverged, best.
    """
    table = per_seed(tidy, column, measure)
    rows = []
    for family in families:
        arms = sweep_arms(table.index, family)
        if family not in arms:
            raise ValueError(f"lr_table: no arm {family!r} at lr x1 in the table")
        for arm, mult in arms.items():
            mine, base = table.loc[arm], table.loc[family]
            common = mine.notna() & base.notna()
            r = paired_difference(mine[common], base[common], ci)
            rows.append(dict(family=family, arm=arm, lr_mult=mult, mean=float(mine.mean()), diff_vs_x1=r["diff"],
                             lo=r["lo"], hi=r["hi"], seeds=int(mine.notna().sum()),
                             diverged=int(tidy[tidy.arm == arm].groupby("seed").diverged.any().sum())
                             if "diverged" in tidy else 0))
    out = pd.DataFrame(rows).sort_values(["family", "lr_mult"], ignore_index=True)
    eligible = out["mean"].where(out.diverged == 0)
    out["best"] = eligible == eligible.groupby(out.family).transform("max")
    return out


def chosen_lrs(tidy: pd.DataFrame, column: str, held_out, families=("l1", "pspl")) -> dict:
    """{family: arm} at the lr with the best mean final ``column`` over the ``held_out`` seeds only, so the
    seeds that then compare the chosen arms did not choose them (``lr_table`` on those seeds)."""
    lrs = lr_table(tidy[tidy.seed.isin(held_out)], column, families)
    return lrs[lrs.best].set_index("family").arm.to_dict()


def fair_comparison(tidy: pd.DataFrame, column: str, threshold: float, chosen: dict, arm: str = "pspl",
                    baseline: str = "l1") -> pd.DataFrame:
    """``claims_table`` of ``arm`` against ``baseline``, each at the lr ``chosen`` for it ({family: arm},
    ``chosen_lrs``); the row's ``arm``/``baseline`` name the chosen lrs. ``tidy`` should hold the seeds
    that did not choose (the scoring seeds)."""
    picked = tidy[tidy.arm.isin([chosen[arm], chosen[baseline]])]
    return claims_table(picked, column, threshold, baseline=chosen[baseline])


# ---- the optimiser's part: what a rising loss scale does to Adam's steps ---------------------------------

OPTIMIZER_COMPARISONS = (  # (arm, against it, what the difference says)
    ("uniform", "l1", "PSPL's rising scale alone, under Adam"),
    ("l1_lrramp", "l1", "plain L1 given the step sizes that scale gives Adam"),
    ("l1_lrramp", "uniform", "what the scale does beyond Adam's step sizes (0: the step sizes are all of it)"),
    ("uniform_beta2_0.99", "uniform", "the scale with a ~100-step second-moment memory instead of ~1000"),
    ("uniform_sgd", "l1_sgd", "the rising scale under SGD, where a loss scale is an lr scale"),
    ("pspl_sgd", "l1_sgd", "PSPL under SGD"),
)


def optimizer_effects(tidy: pd.DataFrame, column: str, ci: float = 0.95) -> pd.DataFrame:
    """The optimiser controls against their counterparts (``OPTIMIZER_COMPARISONS``), final PSNR and mean PSNR
    over epochs, paired by seed with t-intervals. SGD arms are matched by family whatever their lr (the grid
    trains them at one lr chosen on held-out seeds). Comparisons whose arms are absent are skipped.

    Returns:
        DataFrame: arm, against, meaning, measure ("final"/"mean"), diff (dB), lo, hi, n, verdict.
    """
    sgd = {a.split("_")[0] + "_sgd": a for a in tidy.arm.unique() if a.endswith("_sgd")}
    rows = []
    for measure in MEASURES:
        table = per_seed(tidy, column, measure)
        for arm, against, meaning in OPTIMIZER_COMPARISONS:
            arm, against = sgd.get(arm, arm), sgd.get(against, against)
            if arm not in table.index or against not in table.index:
                continue
            both = table.loc[[arm, against]].dropna(axis=1)
            r = paired_difference(both.loc[arm].to_numpy(), both.loc[against].to_numpy(), ci)
            rows.append(dict(arm=arm, against=against, meaning=meaning, measure=measure, diff=r["diff"], lo=r["lo"],
                             hi=r["hi"], n=r["n"], verdict=verdict(r["lo"], r["hi"], "difference", r["n"])))
    return pd.DataFrame(rows)


def step_sizes(updates: pd.DataFrame, scheduled_lr) -> pd.DataFrame:
    """Each arm's step per unit of its *scheduled* lr, mean over seeds, per tenth of an epoch.

    Args:
        updates: step-size rows (arm, seed, age, update_rms, lr, ...; a committed ``<grid>_updates`` table).
        scheduled_lr: f(arm, age) -> the lr the arm's schedule gives without any ``lr_ramp`` (lr * lr_mult,
            milestone decay), so a ramped arm shows the larger steps its ramp buys.
    Returns:
        DataFrame: arm, age (epochs), step (RMS parameter change per step / scheduled lr; under Adam about
        1 once the second moment has caught up, under SGD the size of the momentum buffer), seeds.
    """
    t = updates.assign(step=[r.update_rms / scheduled_lr(r.arm, r.age) for r in updates.itertuples()])
    out = t.groupby(["arm", "age"], sort=False).agg(step=("step", "mean"), seeds=("seed", "nunique"))
    return out.reset_index()
