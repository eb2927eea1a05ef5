"""The sentences README and docs/results.md print, each generated from the committed tables, never typed.

``python -m pspl_nb.summary`` prints docs/results.md's generated part; ``--write`` puts it there and README's
conclusion lines (``headline``) between their markers. tests/test_docs.py checks that both files hold exactly
what these functions produce from the committed grids.
"""
import argparse
import math
from functools import lru_cache
from pathlib import Path

import pandas as pd

from pspl_nb import committed, controls
from pspl_nb.places import REPOSITORY, reference_dir
from pspl_nb.questions import (POSITION, PRIMARY, THRESHOLD_RULE, crossing_share, final_scores, gains, primary_claims,
                               reference_config, speed_question, split_seeds, verdict_summary)

BLOCKS = {"README.md": "conclusions", "docs/results.md": "generated"}  # file: marker name


def _fmt(value, kind) -> str:
    """A ratio to 2 decimals, a dB difference signed to 3."""
    return f"{value:.2f}" if kind == "ratio" else f"{value:+.3f}"


def _p(p: float) -> str:
    """A p-value to 3 decimals; below 0.001 as "< 0.001" (three decimals cannot say how far below)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ints(values) -> list:
    return sorted(int(v) for v in values)


def _grid(profile: str):
    """(histories, per-image table) of a committed grid, loaded once per process for each reference folder."""
    return _load_grid(reference_dir(), profile)


@lru_cache(maxsize=None)
def _load_grid(folder: Path, profile: str):
    # ``folder`` is in the cache key so that pointing PSPL_REFERENCE elsewhere (a test, a lab's own grids) is
    # never answered from another folder's tables; committed.load reads that same folder.
    return committed.load(profile, "reference_histories"), committed.load(profile, "reference_images")


def claims(profile: str = "cpu", column: str | None = None) -> pd.DataFrame:
    """``questions.primary_claims`` of a committed grid (``column``: another image set), computed once per
    reference folder."""
    return _claims(reference_dir(), profile, column)


@lru_cache(maxsize=None)
def _claims(folder: Path, profile: str, column: str | None) -> pd.DataFrame:
    table, images = _load_grid(folder, profile)
    return primary_claims(table, images, column=column)


# ---- one claim, one regime ------------------------------------------------------------------------------

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
    return (f"{PRIMARY[r.claim]} ({arms}, {int(r.seeds)} seeds): {est}, Holm-adjusted p {_p(r.p_holm)}: "
            f"{r.verdict}{images}.")


def claim_line(r) -> str:
    """A primary claim in one short line for README: the estimate, the widened interval and the verdict."""
    what = {"final": f"PSPL vs L1, final PSNR ({r.arm} vs {r.baseline}, lrs chosen on held-out seeds)",
            "speed": f"PSPL vs L1, epochs to the threshold ({r.arm} vs {r.baseline})",
            "scale": "PSPL's rising loss scale (2x2, final PSNR)",
            "contrast": "PSPL's pixel contrast (2x2, final PSNR)"}[r.claim]
    unit = " (ratio)" if r.kind == "ratio" else " dB"
    images = ""
    if hasattr(r, "img_lo") and not math.isnan(r.img_lo):
        images = f"; over seeds and images [{_fmt(r.img_lo, r.kind)}, {_fmt(r.img_hi, r.kind)}]"
    return (f"**{what}**: {_fmt(r.estimate, r.kind)}{unit} [{_fmt(r.adj_lo, r.kind)}, {_fmt(r.adj_hi, r.kind)}], "
            f"Holm p {_p(r.p_holm)}: {r.verdict.split(',')[0]}{images}.")


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


def agreement(primary: pd.DataFrame, other: pd.DataFrame) -> str:
    """How many of the primary verdicts another grid or image set repeats, e.g. "3 of 4 (speed differs)"."""
    same = [p.verdict.split(",")[0] == o.verdict.split(",")[0] for p, o in zip(primary.itertuples(), other.itertuples())]
    differ = [p.claim for p, s in zip(primary.itertuples(), same) if not s]
    return f"{sum(same)} of {len(same)}" + (f" ({', '.join(differ)} differ{'s' if len(differ) == 1 else ''})"
                                            if differ else "")


# ---- README and docs/results.md ---------------------------------------------------------------------------

def headline(profile: str = "cpu", replication: str = "cpu_long") -> list[str]:
    """README's conclusion lines: the four primary claims of the ``profile`` grid, then where they replicate and
    how strong the regime is."""
    main = claims(profile)
    c = reference_config(_grid(profile)[0])
    tune = [s for s in c.eval_sets if s != c.val_set]
    lines = [claim_line(r) for r in main.itertuples()]
    repeat = [f"on the second image set {agreement(main, claims(profile, f'psnr_{tune[0]}'))}"] if tune else []
    if committed.is_committed(replication):
        repeat.append(f"on the {replication} regime {agreement(main, claims(replication))}")
    else:
        repeat.append(not_committed(replication))
    _, strength = replication_parts(profile, replication)
    lines.append(f"**Replications** of the four verdicts: {'; '.join(repeat)}. Weak regimes: {' '.join(strength)}")
    return lines


def threshold_sentence(profile: str = "cpu") -> str:
    """Where the speed claim's threshold sits on grid ``profile`` and where the scoring runs of its baseline
    (plain L1 at its chosen lr) reach it, as a share of the run; the paper's L1 does at 125/300 (42%)."""
    speed = claims(profile).set_index("claim").loc["speed"]
    scoring, _ = split_seeds(_grid(profile)[0])
    column = f"psnr_{reference_config(scoring).val_set}"
    share, left_out = crossing_share(scoring, speed.baseline, speed.threshold, column)
    censored = f" ({left_out} runs censored)" if left_out else ""
    return (f"The threshold on the {profile} grid is {speed.threshold:.2f} dB, which the scoring {speed.baseline} "
            f"runs reach at {share:.0%} of the run on average{censored} (the paper's L1: {POSITION:.0%}).")


def not_committed(profile: str) -> str:
    """What stands where a committed grid's replication would: which grid is missing and how to train it."""
    runs = len(committed.first_stage(profile))
    return (f"the {profile} regime's grid ({runs} runs, {committed.PLANS[profile].hours:g} h on 2 cores) is not "
            f"committed yet, so it replicates nothing here (`make reference` trains it, resuming where it stopped)")


def replication_parts(profile: str = "cpu", replication: str = "cpu_long") -> tuple[list[str], list[str]]:
    """Two lists of sentences: where the ``replication`` grid's threshold sits, then its four primary claims (or
    the one sentence ``not_committed`` when that grid is not in the repository); and how strong each committed
    regime is."""
    strength = [f"{profile}: {regime_sentence(_grid(profile)[0])}."]
    if not committed.is_committed(replication):
        return [not_committed(replication) + "."], strength
    long = _grid(replication)[0]
    return ([threshold_sentence(replication)] + [claim_sentence(r) for r in claims(replication).itertuples()],
            strength + [f"{replication}: {regime_sentence(long)}."])


def replication_lines(profile: str = "cpu", replication: str = "cpu_long") -> list[str]:
    """``replication_parts`` as one list: the replication's sentences, then the regimes' strength."""
    replicated, strength = replication_parts(profile, replication)
    return replicated + strength


def _lr_section(scoring, held_out, column) -> list[str]:
    families = [f for f in ("l1", "pspl", "uniform") if f in scoring.arm.unique()]
    lrs = controls.lr_table(scoring, column, families)
    chosen = controls.chosen_lrs(held_out, column, held_out.seed.unique())
    inside = {f: lrs[lrs.family == f].lr_mult.min() < float(lrs[lrs.arm == chosen[f]].lr_mult.iloc[0]) <
              lrs[lrs.family == f].lr_mult.max() for f in chosen}
    lines = [f"Chosen on held-out seeds {_ints(held_out.seed.unique())} (best mean final PSNR): "
             + ", ".join(f"{f} {chosen[f]} ({'inside' if inside[f] else 'at the edge of'} the swept range)"
                         for f in chosen) + ".", "",
             "| arm | lr | final PSNR, scoring seeds (dB) | vs x1 [95% t] | seeds | diverged |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.arm} | x{r.lr_mult:g} | {r.mean:.3f} | {_fmt(r.diff_vs_x1, 'd')} [{_fmt(r.lo, 'd')}, "
              f"{_fmt(r.hi, 'd')}] | {r.seeds} | {r.diverged} |" for r in lrs.itertuples()]
    return lines


def _versus_table(v: pd.DataFrame) -> list[str]:
    lines = ["| arm | seeds | epochs ratio [95% t] | speed, by threshold | mean dB over epochs [95% t] | "
             "final dB [95% t] |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.arm} | {r.seeds} | {r.ratio:.2f} [{r.ratio_lo:.2f}, {r.ratio_hi:.2f}] | {r.speed_range} | "
              f"{_fmt(r.gap_diff, 'd')} [{_fmt(r.gap_lo, 'd')}, {_fmt(r.gap_hi, 'd')}] | "
              f"{_fmt(r.final_diff, 'd')} [{_fmt(r.final_lo, 'd')}, {_fmt(r.final_hi, 'd')}] |" for r in v.itertuples()]
    return lines


def markdown_summary(profile: str = "cpu", replication: str = "cpu_long") -> str:
    """docs/results.md's generated part: the threshold rule, the primary claims and their replications, then the
    exploratory sections (the lr sweep and how the lr was chosen, the optimiser controls, every arm against
    L1, the 2x2, the variants of the earlier grid, Table 1 at cpu scale)."""
    table, _ = _grid(profile)
    c = reference_config(table)
    scoring, held_out = split_seeds(table)
    column = f"psnr_{c.val_set}"
    main = claims(profile)
    lines = [f"Threshold rule: {THRESHOLD_RULE}. {threshold_sentence(profile)}", "",
             f"### Primary claims ({profile} grid)", ""]
    lines += [f"- {claim_sentence(r)}" for r in main.itertuples()]
    tune = [s for s in c.eval_sets if s != c.val_set]
    if tune:
        lines += ["", f"### Replication on a second image set ({tune[0]}, lrs as chosen on {c.val_set})", ""]
        lines += [f"- {claim_sentence(r)}" for r in claims(profile, f"psnr_{tune[0]}").itertuples()]
    replicated, strength = replication_parts(profile, replication)
    if committed.is_committed(replication):
        lines += ["", f"### Replication on the {replication} regime ({describe(_grid(replication)[0])})", ""]
    else:
        replicated = [replicated[0][0].upper() + replicated[0][1:]]
        lines += ["", f"### Replication on the {replication} regime", ""]
    lines += [f"- {s}" for s in replicated]
    lines += ["", f"### How strong the regime{'s are' if len(strength) > 1 else ' is'}", ""]
    lines += [f"- {s}" for s in strength]
    lines += ["", "### Exploratory: the learning rate, until it turns over", ""] + _lr_section(scoring, held_out, column)
    if committed.is_committed(replication):
        long_scoring, long_held_out = split_seeds(_grid(replication)[0])
        lines += ["", f"The same sweep on the {replication} regime:", ""]
        lines += _lr_section(long_scoring, long_held_out, column)
    opt = controls.optimizer_effects(scoring, column)
    if not opt.empty:
        lines += ["", "### Exploratory: the optimiser controls (final PSNR, 8 seeds, no adjustment)", ""]
        lines += [f"- {r.arm} - {r.against} ({r.meaning}): {_fmt(r.diff, 'd')} dB [{_fmt(r.lo, 'd')}, "
                  f"{_fmt(r.hi, 'd')}], {r.verdict}" for r in opt[opt.measure == "final"].itertuples()]
    held_l1 = held_out[held_out.arm == "l1"]
    q = speed_question(scoring, c, held_l1)
    against = scoring[scoring.arm.isin(controls.DESIGN_ARMS + ("uniform_beta2_0.99", "l1_lrramp"))]
    v = verdict_summary(against, q, levels_from=held_l1)
    lines += ["", f"### Exploratory: every arm against L1 at lr x1 (threshold {q.threshold:.2f} dB: {q.how})", ""]
    lines += _versus_table(v)
    for measure in ("final", "mean"):
        lines += ["", f"2x2, {measure} PSNR: {controls.design_sentence(controls.factorial_effects(scoring, column, measure))}"]
    lines += _variants(profile, held_l1, q)
    lines += _table1(profile)
    return "\n".join(lines)


def describe(table: pd.DataFrame) -> str:
    """The schedule of a committed grid in a few words: iterations, batch, patch."""
    c = reference_config(table)
    return f"{c.epochs} epochs x {c.iters_per_epoch} it x batch {c.batch}, LR patch {c.patch}"


def _variants(profile: str, held_l1: pd.DataFrame, q) -> list[str]:
    """The earlier grid's variants (easy first, alpha 0.3, the paper's SSIM constants, ...), against its own L1
    runs, at the threshold of the current grid's held-out L1 runs (the same configuration)."""
    try:
        variants = committed.load(profile, "variants_histories")
    except FileNotFoundError:
        return []
    prov = variants.attrs["provenance"]
    v = verdict_summary(variants, q, levels_from=held_l1)
    return ["", f"### Exploratory: variants (earlier grid, code {prov.get('code_version', '?')}, "
                f"{len(_ints(variants.seed.unique()))} seeds)", ""] + _versus_table(v)


def _table1(profile: str) -> list[str]:
    try:
        t1 = committed.load(profile, "table1_histories")
    except FileNotFoundError:
        return []
    g = gains(final_scores(t1, sets=(reference_config(t1).val_set,)))
    lines = ["", f"### Table 1 at cpu scale (tiny x4 models, {int(g.seeds.min())} seeds per cell, "
                 f"scored on {reference_config(t1).val_set})", "",
             "| model | PSPL gain, dB [95% t] | verdict |", "|---|---|---|"]
    lines += [f"| {r.model} | {_fmt(r.gain_psnr, 'd')} [{_fmt(r.lo, 'd')}, {_fmt(r.hi, 'd')}] | {r.verdict} |"
              for r in g.itertuples()]
    return lines


def block(path: Path, name: str) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path`` (without the markers)."""
    text = path.read_text()
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path}: no {start.strip()} ... {end} block")
    return text.split(start, 1)[1].split(end, 1)[0]


def generated() -> dict:
    """{file: text its block should hold}: README's conclusion lines and docs/results.md's summary."""
    return {"README.md": "".join(f"- {line}\n" for line in headline()), "docs/results.md": markdown_summary() + "\n"}


def write() -> None:
    """Put ``generated()`` between the markers of README.md and docs/results.md."""
    for rel, text in generated().items():
        path, name = REPOSITORY / rel, BLOCKS[rel]
        old = block(path, name)
        path.write_text(path.read_text().replace(f"<!-- {name}:start -->\n{old}<!-- {name}:end -->",
                                                 f"<!-- {name}:start -->\n{text}<!-- {name}:end -->"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.summary", description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="write README's and docs/results.md's generated blocks")
    a = p.parse_args(argv)
    if a.write:
        write()
    else:
        print(markdown_summary())


if __name__ == "__main__":
    main()
