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
step alone gives PSPL's gain; the fair comparison takes each arm at its own best learning rate.

Input is a tidy table (``experiments.run_grid``): columns arm, seed, epoch and the metric ``column``.
"""
import numpy as np
import pandas as pd

from pspl_nb.stats import _runs, claims_table, paired_difference, verdict

DESIGN_ARMS = ("l1", "uniform", "contrast", "pspl")
MEASURES = ("final", "mean")


def per_seed(tidy: pd.DataFrame, column: str, measure: str = "final") -> pd.DataFrame:
    """One value per (arm, seed): the metric at the run's last epoch ("final") or its mean over every
    evaluated epoch ("mean", the area under the curve divided by its length). Returns arms x seeds."""
    if measure not in MEASURES:
        raise ValueError(f"per_seed: measure={measure!r}, expected one of {MEASURES}")
    values = {(arm, seed): float(run[column].iloc[-1] if measure == "final" else run[column].mean())
              for (arm, seed), run in _runs(tidy, column)}
    return pd.Series(values).unstack()


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
    return f"{summary.capitalize()} carries a detectable gain here: {'; '.join(parts)}{tail}."


def lr_table(tidy: pd.DataFrame, column: str, families=("l1", "pspl"), measure: str = "final",
             ci: float = 0.95) -> pd.DataFrame:
    """Each family's arms across the lr sweep (``<family>``, ``<family>_lrx<m>``): mean over seeds of
    ``measure`` with a t-interval of its difference from the family at lr x1, and which lr is best.

    Returns:
        DataFrame: family, arm, lr_mult, mean, diff_vs_x1, lo, hi, seeds, best (True for the highest mean).
    """
    table = per_seed(tidy, column, measure)
    rows = []
    for family in families:
        arms = [a for a in table.index if a == family or (a.startswith(f"{family}_lrx") and
                                                           a.removeprefix(f"{family}_lrx").replace(".", "").isdigit())]
        if family not in arms:
            raise ValueError(f"lr_table: no arm {family!r} at lr x1 in the table")
        for arm in arms:
            mine, base = table.loc[arm], table.loc[family]
            common = mine.notna() & base.notna()
            r = paired_difference(mine[common], base[common], ci)
            rows.append(dict(family=family, arm=arm, lr_mult=float(arm.removeprefix(f"{family}_lrx") if arm != family
                                                                 else 1.0),
                             mean=float(table.loc[arm].mean()), diff_vs_x1=r["diff"], lo=r["lo"], hi=r["hi"],
                             seeds=r["n"]))
    out = pd.DataFrame(rows).sort_values(["family", "lr_mult"], ignore_index=True)
    out["best"] = out["mean"] == out.groupby("family")["mean"].transform("max")
    return out


def fair_comparison(tidy: pd.DataFrame, column: str, threshold: float, lrs: pd.DataFrame | None = None,
                    arm: str = "pspl", baseline: str = "l1") -> pd.DataFrame:
    """``claims_table`` of ``arm`` against ``baseline``, each at its own best learning rate (``lr_table``,
    final PSNR). The lr is chosen on the same validation images that then score, which flatters both
    arms alike; the row's ``arm``/``baseline`` name the chosen lrs."""
    lrs = lr_table(tidy, column, (baseline, arm)) if lrs is None else lrs
    best = lrs[lrs.best].set_index("family").arm
    chosen = tidy[tidy.arm.isin([best[arm], best[baseline]])]
    return claims_table(chosen, column, threshold, baseline=best[baseline])
