"""The paper's questions, posed on a tidy table of runs: which metric, which threshold, which verdicts.

"Does PSPL reach a given PSNR in fewer epochs?" needs a metric column and a threshold. On DIV2K they are the
paper's: 34.4 dB in EDSR-PyTorch's metric (RGB, shave scale + 6) on validation images 0801-0900. On the
embedded images no published level exists, so the threshold is placed where the paper's sits (the level
plain L1 reaches at 125/300 of the run) and *set on other images* (the tune set, as a gain over bicubic:
``stats.transfer_threshold``), so the images that score did not also choose it.

``verdict_summary`` condenses a grid into the rows README and notebook 07 print: per arm the speed ratio
with its t-interval and the threshold range where the speed verdict holds, the mean and final PSNR
differences with theirs.
"""
from dataclasses import dataclass, field

import pandas as pd

from pspl_nb import stats
from pspl_nb.config import RunConfig
from pspl_nb.reference import FIG4


@dataclass
class SpeedQuestion:
    """Where "faster" is measured: ``column`` (a tidy-table metric, dB) crossing ``threshold`` (dB).

    ``how`` is one sentence for figures and tables saying where the threshold comes from; ``marks`` are the
    paper's own points when they are in the same metric ({label: (epoch, dB)}), else empty.
    """

    column: str
    threshold: float
    how: str
    marks: dict = field(default_factory=dict)


def speed_question(tidy: pd.DataFrame, c: RunConfig, data_root=None, baseline: str = "l1") -> SpeedQuestion:
    """The metric and threshold for runs made with config ``c`` (any arm), from their tidy table.

    DIV2K: the paper's Fig. 4 threshold and points, EDSR metric. Embedded: the baseline's level at 125/300
    of the run, set on ``embedded_tune`` as a gain over bicubic and carried to ``val_set``; without a tune
    set among ``c.eval_sets`` it falls back to the scoring images themselves and says so.
    """
    if c.dataset == "div2k":
        marks = {"paper PSPL, 34.4 dB at ~67": (FIG4["epochs_pspl"], FIG4["threshold"]),
                 "paper L1, 34.4 dB at ~128": (FIG4["epochs_l1"], FIG4["threshold"])}
        if tidy.epoch.max() >= 300:
            marks |= {"paper PSPL final": (300, FIG4["final_pspl"]), "paper L1 final": (300, FIG4["final_l1"])}
        return SpeedQuestion(FIG4["column"], FIG4["threshold"],
                             "the paper's 34.4 dB, in EDSR-PyTorch's metric (RGB, shave scale + 6) on DIV2K "
                             "validation 0801-0900, as its Fig. 4", marks)
    from pspl_nb.evaluate import bicubic_psnr

    column = f"psnr_{c.val_set}"
    tune = next((s for s in c.eval_sets if s.endswith("_tune")), None)
    if tune is None:
        return SpeedQuestion(column, stats.matched_threshold(tidy, column, baseline),
                             f"{baseline}'s mean level at 125/300 of the run on the scoring images themselves")
    limit = c.eval_limit
    level = stats.transfer_threshold(tidy, f"psnr_{tune}", bicubic_psnr(tune, c.scale, data_root, limit),
                                     bicubic_psnr(c.val_set, c.scale, data_root, limit), baseline)
    return SpeedQuestion(column, level, f"{baseline}'s gain over bicubic at 125/300 of the run, set on {tune} and "
                                        f"carried to {c.val_set} (no scoring image chose it)")


def verdict_summary(tidy: pd.DataFrame, q: SpeedQuestion, baseline: str = "l1",
                    sweep: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per arm: the claims of ``stats.claims_table`` at ``q``'s threshold, and in ``speed_range`` the
    range of thresholds over which its speed verdict holds (``stats.speed_statement``). ``sweep``: the
    ``stats.threshold_sweep`` of ``tidy`` when the caller has it already (it is made here otherwise)."""
    claims = stats.claims_table(tidy, q.column, q.threshold, baseline)
    sweep = stats.threshold_sweep(tidy, q.column, baseline) if sweep is None else sweep
    claims["speed_range"] = [stats.speed_statement(sweep, arm) for arm in claims.arm]
    return claims


def format_verdicts(claims: pd.DataFrame) -> list[str]:
    """Each arm's claims as printable lines: ratio [t-interval] and verdict (and, from ``verdict_summary``, the
    threshold range where it holds), mean and final dB differences with theirs."""
    lines = []
    for r in claims.itertuples():
        lines.append(f"{r.arm:>20} ({r.seeds} seeds): epochs ratio {r.ratio:.2f} [{r.ratio_lo:.2f}, {r.ratio_hi:.2f}] "
                     f"-> {r.speed}; mean dB over epochs {r.gap_diff:+.3f} [{r.gap_lo:+.3f}, {r.gap_hi:+.3f}]; "
                     f"final {r.final_diff:+.3f} [{r.final_lo:+.3f}, {r.final_hi:+.3f}] -> {r.final_verdict}")
        if "speed_range" in claims:
            lines.append(f"{'':>22}speed by threshold: {r.speed_range}")
    return lines


def reference_config(ref: pd.DataFrame) -> RunConfig:
    """The profile config a committed reference table was made with (its ``provenance.json``)."""
    prov = ref.attrs.get("provenance") or {}
    if "config" not in prov:
        raise ValueError("reference table has no provenance config (read it with reference.committed)")
    return RunConfig.from_dict(prov["config"])


def describe_reference(ref: pd.DataFrame) -> str:
    """Footnote for a figure made from a committed reference table: its settings, arms, seeds and provenance."""
    c, prov = reference_config(ref), ref.attrs["provenance"]
    seeds = ref.groupby("arm").seed.nunique()
    count = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    data = "DIV2K" if c.dataset == "div2k" else "the embedded scikit-image images (offline stand-in)"
    models = ", ".join(f"{m} ({c.size})" for m in dict.fromkeys(ref.model))
    scales = "/".join(f"x{s}" for s in sorted(ref.scale.unique()))
    return (f"Committed reference grid ({prov.get('profile', '?')} profile, code {prov.get('code_version', '?')}, "
            f"{prov.get('date', '?')}): {models} {scales} on {data}, {c.epochs} epochs x "
            f"{c.iters_per_epoch} it x batch {c.batch}, LR patch {c.patch}, lr {c.lr:g}; arms "
            f"{', '.join(dict.fromkeys(ref.arm))}; {count} seeds per arm; numerics {prov.get('numerics', '?')}. "
            f"Not the paper's setting.")


def _ci(d, lo, hi, fmt="+.3f") -> str:
    return f"{d:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown_summary(profile: str = "cpu") -> str:
    """README's "What the kit measured" from the committed reference grids of ``profile``: one table row per
    arm (speed ratio, the threshold range where its speed verdict holds, mean and final dB against L1, each
    with its paired 95% t-interval over seeds), then what the 2x2, the lr sweep and the schedule-faithful grid
    say. ``python -m pspl_nb.questions`` prints it."""
    from pspl_nb import controls
    from pspl_nb.reference import committed

    ref = committed(profile, "reference_histories")
    q = speed_question(ref, reference_config(ref))
    v = verdict_summary(ref, q)
    lines = [f"Threshold {q.threshold:.2f} dB ({q.how}).", "",
             "| arm | seeds | epochs ratio vs L1 [95% t] | speed verdict, by threshold | mean dB vs L1 over epochs | "
             "final dB vs L1 | final verdict |", "|---|---|---|---|---|---|---|"]
    for r in v.itertuples():
        lines.append(f"| {r.arm} | {r.seeds} | {_ci(r.ratio, r.ratio_lo, r.ratio_hi, '.2f')} | {r.speed_range} | "
                     f"{_ci(r.gap_diff, r.gap_lo, r.gap_hi)} | {_ci(r.final_diff, r.final_lo, r.final_hi)} | "
                     f"{r.final_verdict} |")
    fx = controls.factorial_effects(ref, q.column, "final")
    fx_mean = controls.factorial_effects(ref, q.column, "mean")
    fx_alpha = controls.factorial_effects(ref, q.column, "final",
                                          arms=("l1", "uniform_alpha0.3", "contrast_alpha0.3", "pspl_alpha0.3"))
    lines += ["", f"2x2, final PSNR: {controls.design_sentence(fx)}",
              f"2x2, mean PSNR over epochs: {controls.design_sentence(fx_mean)}",
              f"2x2 at alpha 0.3: {controls.design_sentence(fx_alpha)}"]
    lrs = controls.lr_table(ref, q.column)
    best = lrs[lrs.best].set_index("family")
    fair = controls.fair_comparison(ref, q.column, q.threshold, lrs).iloc[0]
    lines += ["", "lr sweep (final dB vs the same arm at x1): " + "; ".join(
        f"{r.arm} {_ci(r.diff_vs_x1, r.lo, r.hi)}" for r in lrs.itertuples() if r.lr_mult != 1.0),
        f"Each at its own best lr ({best.loc['l1', 'arm']} and {best.loc['pspl', 'arm']}): epochs ratio "
        f"{_ci(fair.ratio, fair.ratio_lo, fair.ratio_hi, '.2f')} ({fair.speed}); final "
        f"{_ci(fair.final_diff, fair.final_lo, fair.final_hi)} dB ({fair.final_verdict})."]
    long = committed(profile, "long_histories")
    lq = speed_question(long, reference_config(long))
    lv = verdict_summary(long, lq)
    lines += ["", f"cpu_long (schedule in proportion), threshold {lq.threshold:.2f} dB:"]
    lines += [f"- {r.arm} ({r.seeds} seeds): epochs ratio {_ci(r.ratio, r.ratio_lo, r.ratio_hi, '.2f')}, {r.speed_range}; "
              f"final {_ci(r.final_diff, r.final_lo, r.final_hi)} dB ({r.final_verdict})" for r in lv.itertuples()]
    lines += [f"- 2x2: {controls.design_sentence(controls.factorial_effects(long, lq.column, 'final'))}"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_summary())
