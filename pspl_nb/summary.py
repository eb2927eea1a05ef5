"""The sentences README and docs/results.md print, each generated from the committed tables, never typed.

``python -m pspl_nb.summary`` prints docs/results.md's generated part; ``headline()`` gives README's
conclusion lines; tests/test_docs.py checks both files hold exactly what these functions produce.
"""
import math

import pandas as pd

from pspl_nb import committed, controls, stats
from pspl_nb.questions import (PRIMARY, THRESHOLD_RULE, primary_claims, reference_config, speed_question,
                               split_seeds, verdict_summary)


def _fmt(value, kind) -> str:
    """A ratio to 2 decimals, a dB difference signed to 3."""
    return f"{value:.2f}" if kind == "ratio" else f"{value:+.3f}"


def claim_sentence(r) -> str:
    """One primary claim (a ``primary_claims`` row) in words, with all its intervals."""
    unit = "" if r.kind == "ratio" else " dB"
    est = f"{_fmt(r.estimate, r.kind)}{unit} [95% {_fmt(r.lo, r.kind)}, {_fmt(r.hi, r.kind)}; widened for " \
          f"{len(PRIMARY)} claims {_fmt(r.adj_lo, r.kind)}, {_fmt(r.adj_hi, r.kind)}]"
    images = ""
    if hasattr(r, "img_lo") and not math.isnan(r.img_lo):
        images = f"; over seeds and images [{_fmt(r.img_lo, r.kind)}, {_fmt(r.img_hi, r.kind)}]"
        if r.kind == "difference":
            images += f", ahead on {int(r.ahead)} of {int(r.images)} images"
    arms = f"{r.arm} vs {r.baseline}" if r.claim in ("final", "speed") else "the four design arms at lr x1"
    return (f"{PRIMARY[r.claim]} ({arms}, {int(r.seeds)} seeds): {est}, Holm-adjusted p {r.p_holm:.3f}: "
            f"{r.verdict}{images}.")


def regime_sentence(table: pd.DataFrame) -> str:
    """How far plain L1 gets beyond bicubic on a committed grid: its final gain on the scoring images at lr x1
    and at its chosen lr (the bicubic PSNR is recorded in the grid's provenance)."""
    c, prov = reference_config(table), table.attrs["provenance"]
    column = f"psnr_{c.val_set}"
    bicubic = prov["bicubic"][c.val_set]
    scoring, held_out = split_seeds(table)
    chosen = controls.chosen_lrs(held_out, column, held_out.seed.unique())["l1"]
    final = controls.per_seed(scoring, column, "final").mean(axis=1)
    return (f"plain L1 ends {final['l1'] - bicubic:+.2f} dB above bicubic ({bicubic:.2f} dB) on {c.val_set} at lr x1 "
            f"and {final[chosen] - bicubic:+.2f} dB at its chosen lr ({chosen}); the paper's EDSR-baseline is about "
            f"3 dB above bicubic on DIV2K")


def headline(profile: str = "cpu") -> list[str]:
    """README's conclusion lines: the primary claims of the ``profile`` grid, then where they replicate."""
    table, images = committed.load(profile, "reference_histories"), committed.load(profile, "reference_images")
    claims = primary_claims(table, images)
    return [claim_sentence(r) for r in claims.itertuples()]


def markdown_summary(profile: str = "cpu") -> str:
    """docs/results.md's generated part: the threshold rule, the primary claims and their replications, then the
    exploratory tables (every arm against L1, the lr sweeps and how the lr was chosen, the 2x2, the optimiser
    controls). ``python -m pspl_nb.questions`` prints it."""
    table, images = committed.load(profile, "reference_histories"), committed.load(profile, "reference_images")
    c = reference_config(table)
    scoring, held_out = split_seeds(table)
    column = f"psnr_{c.val_set}"
    claims = primary_claims(table, images)
    lines = [f"Threshold rule: {THRESHOLD_RULE}. Here: {claims.threshold.iloc[0]:.2f} dB.", "",
             f"Regime: {regime_sentence(table)}.", "", f"### Primary claims ({profile} grid)", ""]
    lines += [f"- {claim_sentence(r)}" for r in claims.itertuples()]
    tune = [s for s in c.eval_sets if s != c.val_set]
    if tune:
        rep = primary_claims(table, images, column=f"psnr_{tune[0]}")
        lines += ["", f"Replication on a second image set ({tune[0]}; lrs as chosen on {c.val_set}):", ""]
        lines += [f"- {claim_sentence(r)}" for r in rep.itertuples()]
    lines += ["", "### Exploratory (no multiplicity adjustment)", ""]
    lrs = controls.lr_table(scoring, column, ("l1", "pspl", "uniform"))
    chosen = controls.chosen_lrs(held_out, column, held_out.seed.unique())
    lines += [f"lr sweep (final PSNR, scoring seeds; the lr of l1 and pspl is chosen on held-out seeds "
              f"{sorted(int(s) for s in held_out.seed.unique())}: {chosen['l1']} and {chosen['pspl']}):", "",
              "| arm | lr | final PSNR (dB) | vs x1 [95% t] | diverged seeds |", "|---|---|---|---|---|"]
    lines += [f"| {r.arm} | x{r.lr_mult:g} | {r.mean:.3f} | {_fmt(r.diff_vs_x1, 'difference')} "
              f"[{_fmt(r.lo, 'difference')}, {_fmt(r.hi, 'difference')}] | {r.diverged} |" for r in lrs.itertuples()]
    q = speed_question(scoring, c, held_out[held_out.arm == "l1"])
    design = scoring[scoring.arm.isin(controls.DESIGN_ARMS) | scoring.arm.isin(
        [a for a, _, _ in controls.OPTIMIZER_COMPARISONS])]
    sweep = stats.threshold_sweep(design, q.column, levels_from=held_out[held_out.arm == "l1"])
    v = verdict_summary(design, q, sweep=sweep)
    lines += ["", f"Every arm against L1 at lr x1, threshold {q.threshold:.2f} dB ({q.how}):", "",
              "| arm | seeds | epochs ratio [95% t] | speed, by threshold | mean dB over epochs | final dB |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r.arm} | {r.seeds} | {r.ratio:.2f} [{r.ratio_lo:.2f}, {r.ratio_hi:.2f}] ({r.speed}) | "
              f"{r.speed_range} | {_fmt(r.gap_diff, 'd')} [{_fmt(r.gap_lo, 'd')}, {_fmt(r.gap_hi, 'd')}] | "
              f"{_fmt(r.final_diff, 'd')} [{_fmt(r.final_lo, 'd')}, {_fmt(r.final_hi, 'd')}] ({r.final_verdict}) |"
              for r in v.itertuples()]
    for measure in ("final", "mean"):
        fx = controls.factorial_effects(scoring, column, measure)
        lines += ["", f"2x2, {measure} PSNR: {controls.design_sentence(fx)}"]
    opt = controls.optimizer_effects(scoring, column)
    if not opt.empty:
        lines += ["", "Optimiser controls (final PSNR):", ""]
        lines += [f"- {r.arm} - {r.against} ({r.meaning}): {_fmt(r.diff, 'd')} dB [{_fmt(r.lo, 'd')}, "
                  f"{_fmt(r.hi, 'd')}], {r.verdict}" for r in opt[opt.measure == "final"].itertuples()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_summary())
