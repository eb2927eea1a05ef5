"""Statistics that tell a reader whether PSPL's claims hold on the kit's own training histories.

The paper's claims are "reaches a given PSNR in fewer epochs" (Fig. 4: 34.4 dB at about epoch 67 instead of
128) and "ends at a higher PSNR" (Table 1). With a few seeds per arm, each claim becomes a paired comparison
against the baseline arm: per-seed differences (or log ratios), a Student-t interval for their mean, an
exact sign-flip p-value, and a verdict in plain words that follows the interval. Few seeds support little:
with 3 seeds the t-interval is wide (t = 4.30) and no sign-flip p-value can go below 0.25; a percentile
bootstrap over 3 seeds has 10 distinct resamples and its 95% interval is just [min, max], so the bootstrap
is shown only from 8 seeds up, as a second view.

Speed depends on where the threshold sits, so ``threshold_sweep`` moves it along the baseline's curve and
``speed_statement`` says for which thresholds a verdict holds; ``mean_gap`` is a threshold-free measure.

Input is a *tidy* DataFrame, one row per (run, epoch): columns ``arm`` (str), ``seed`` (int), ``epoch``
(int, 1-based) and metric columns such as ``psnr_embedded_valid`` (dB). A run is one (arm, seed) pair.
"""
import math

import numpy as np
import pandas as pd
import scipy.stats

VERDICT_KINDS = ("ratio", "difference")


BEFORE_FIRST = -math.inf  # epochs_to_threshold's answer for a curve already there at its first evaluation


def epochs_to_threshold(epochs, values, threshold: float) -> float:
    """First epoch at which a curve is at or above ``threshold``.

    Args:
        epochs: 1-D increasing sequence of evaluation ages (epochs).
        values: 1-D sequence of the metric at those ages (e.g. PSNR in dB), same length. NaN counts as
            "below threshold" (a missing or diverged evaluation).
        threshold: the level to reach, in the metric's unit.

    Returns:
        The epoch, linearly interpolated between the last evaluation below and the first at or above the
        threshold; ``math.nan`` when never reached (right-censored); ``BEFORE_FIRST`` (-inf) when the first
        evaluation is already there: the crossing happened at some unknown earlier age (left-censored), so
        no epoch can stand for it.
    """
    epochs, values = np.asarray(epochs, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if epochs.ndim != 1 or values.ndim != 1:
        raise ValueError(f"epochs_to_threshold: epochs and values must be 1-D, got {epochs.shape}, {values.shape}")
    if len(epochs) != len(values):
        raise ValueError(f"epochs_to_threshold: epochs and values differ in length: {len(epochs)} vs {len(values)}")
    if len(epochs) == 0:
        raise ValueError("epochs_to_threshold: empty curve")
    if not math.isfinite(threshold):
        raise ValueError(f"epochs_to_threshold: threshold={threshold} must be finite")
    if not (np.isfinite(epochs).all() and (np.diff(epochs) > 0).all()):
        raise ValueError(f"epochs_to_threshold: epochs must be finite and strictly increasing, got {epochs.tolist()}")
    above = np.flatnonzero(values >= threshold)  # NaN >= x is False
    if len(above) == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return BEFORE_FIRST
    if not math.isfinite(values[i - 1]):  # the evaluation before was missing: crossed somewhere before epochs[i]
        return float(epochs[i])
    # values[i - 1] < threshold <= values[i], so the slope is positive
    frac = (threshold - values[i - 1]) / (values[i] - values[i - 1])
    return float(epochs[i - 1] + frac * (epochs[i] - epochs[i - 1]))


def _runs(tidy: pd.DataFrame, column: str):
    """Yield ((arm, seed), run) with the run's rows sorted by epoch; rows where ``column`` is NaN (epochs
    without that evaluation) are skipped."""
    missing = [c for c in ("arm", "seed", "epoch", column) if c not in tidy.columns]
    if missing:
        raise ValueError(f"tidy table lacks column(s) {missing}; it has {list(tidy.columns)}")
    rows = tidy.dropna(subset=[column]).sort_values("epoch")
    yield from rows.groupby(["arm", "seed"], sort=True)


def _summary(run: pd.DataFrame, column: str, threshold: float, arm, seed) -> tuple:
    """(epochs to threshold, value at the last epoch, best value) of one run."""
    try:
        reach = epochs_to_threshold(run["epoch"].to_numpy(), run[column].to_numpy(), threshold)
    except ValueError as err:  # say which run: repeated epochs mean two configurations are mixed
        raise ValueError(f"arm={arm!r}, seed={seed}: {err} (filter the table to one configuration)") from None
    return reach, float(run[column].iloc[-1]), float(run[column].max())


def per_seed_epochs(tidy: pd.DataFrame, column: str, threshold: float) -> pd.DataFrame:
    """Epochs each run needs to reach ``threshold`` on ``column`` (see ``epochs_to_threshold``).

    Returns:
        DataFrame with columns arm, seed, epochs (fractional epochs; NaN = not reached), one row per run.
    """
    rows = [(arm, seed, _summary(run, column, threshold, arm, seed)[0]) for (arm, seed), run in _runs(tidy, column)]
    return pd.DataFrame(rows, columns=["arm", "seed", "epochs"])


def _paired(a, b, name: str, ci: float):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{name}: a and b must be 1-D of one length (one value per seed), got {a.shape}, {b.shape}")
    if len(a) == 0:
        raise ValueError(f"{name}: empty a and b (no seeds)")
    if not 0 < ci < 1:
        raise ValueError(f"{name}: ci={ci} must be in (0, 1)")
    return a, b


MIN_SEEDS = 3  # below this no interval is stated at all
MIN_BOOTSTRAP_SEEDS = 8  # below this a percentile bootstrap over seeds is little more than [min, max]


def t_interval(d, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``d`` and its Student-t interval: ``mean -/+ t_{n-1} * sd / sqrt(n)`` (sd with n - 1).

    The interval for the mean of n paired differences (one per seed) when they scatter roughly normally.
    With n = 3 it is wide (t_{2, 0.975} = 4.30): that width is what three seeds can support. NaN bounds
    for n < 2; for n >= 2 with zero spread, [mean, mean].
    """
    d = np.asarray(d, dtype=np.float64)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(scipy.stats.t.ppf((1 + ci) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def sign_flip_p(d) -> float:
    """Exact two-sided p-value of the sign-flip (paired permutation) test of "mean(d) = 0".

    Under the null each seed's difference is as likely to have either sign; the p-value is the share of the
    2^n sign patterns whose |mean| is at least the observed one. It needs no normality, and it shows what
    few seeds can say: with 3 seeds the smallest possible p is 2/8 = 0.25, with 8 it is 2/256 = 0.008.
    n <= 20 (all patterns enumerated); NaN differences give NaN.
    """
    d = np.asarray(d, dtype=np.float64)
    if not np.isfinite(d).all() or len(d) == 0:
        return math.nan
    if len(d) > 20:
        raise ValueError(f"sign_flip_p: n={len(d)} > 20 seeds; use a t-interval")
    signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)  # (2^n, n) of +-1
    means = np.abs(signs @ d) / len(d)
    return float(np.mean(means >= abs(d.mean()) - 1e-12 * max(1.0, abs(d.mean()))))


def two_way_bootstrap(stat, n_seeds: int, n_images: int, ci: float = 0.95, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile interval of a statistic over seeds *and* images: the pigeonhole (two-way) bootstrap.

    Every seed is scored on every image, a crossed design, so both are sources of variance: a claim about
    "these images" needs only the seeds resampled, a claim about images like these needs the images
    resampled too. Each resample draws ``n_seeds`` seeds and, independently, ``n_images`` images with
    replacement and recomputes ``stat(seed_counts, image_counts)`` (how often each seed and image was
    drawn, int arrays (n_seeds,), (n_images,)). Owen (2007, "The pigeonhole bootstrap", Ann. Appl. Stat.)
    shows the variance it gives is, if anything, slightly too large: the interval errs on the wide side.

    Returns:
        (lo, hi) at coverage ``ci``; NaN if the statistic is NaN on more than 5% of the resamples.
    """
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        values[b] = stat(np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds),
                         np.bincount(rng.integers(0, n_images, n_images), minlength=n_images))
    ok = values[np.isfinite(values)]
    if len(ok) < 0.95 * len(values):
        return math.nan, math.nan
    lo, hi = np.quantile(ok, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def mean_over_seeds_and_images(d, ci: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """The mean of per-(seed, image) differences d (seeds x images, e.g. final PSNR of an arm minus the
    baseline's on each image, dB) with its two-way bootstrap interval (``two_way_bootstrap``) and how many
    images are ahead: ``ahead`` of ``images`` have a positive mean over seeds.

    Returns:
        dict(diff, lo, hi, ahead, images).
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or not np.isfinite(d).all():
        raise ValueError(f"mean_over_seeds_and_images: d must be a finite (seeds, images) array, got {d.shape}")
    lo, hi = two_way_bootstrap(lambda s, i: float(s @ d @ i) / (s.sum() * i.sum()), *d.shape, ci, n_boot, seed)
    return dict(diff=float(d.mean()), lo=lo, hi=hi, ahead=int((d.mean(axis=0) > 0).sum()), images=d.shape[1])


def _bootstrap(d, ci: float, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the mean of ``d`` over seeds resampled with replacement (secondary view)."""
    rows = np.random.default_rng(seed).integers(0, len(d), size=(int(n_boot), len(d)))
    lo, hi = np.quantile(d[rows].mean(axis=1), [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def t_test_p(d) -> float:
    """Two-sided p-value of the one-sample t-test of "mean(d) = 0" (the paired t-test on differences d):
    the test behind ``t_interval``. NaN below 2 values; 0 or 1 for zero spread (mean != 0 or == 0)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan
    sd = d.std(ddof=1)
    if sd == 0:
        return 0.0 if d.mean() != 0 else 1.0
    return float(2 * scipy.stats.t.sf(abs(d.mean()) / (sd / math.sqrt(len(d))), len(d) - 1))


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of m p-values (family-wise error control, no assumption on dependence).

    The k-th smallest p (k = 1..m) is multiplied by m - k + 1, then a running maximum keeps the order and the
    result is capped at 1; a claim is significant at level a when its adjusted p <= a. NaN stays NaN and does
    not count in m.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return out


def _interval_summary(d, ci: float, n_boot: int, seed: int) -> dict:
    mean, lo, hi = t_interval(d, ci)
    out = dict(lo=lo, hi=hi, n=len(d), p_t=t_test_p(d), p_signflip=sign_flip_p(d), boot_lo=math.nan,
               boot_hi=math.nan)
    if len(d) >= MIN_BOOTSTRAP_SEEDS:
        out["boot_lo"], out["boot_hi"] = _bootstrap(d, ci, n_boot, seed)
    return mean, out


def paired_difference(a, b, ci: float = 0.95, n_boot: int = 10000, seed: int = 0) -> dict:
    """Mean over seeds of a - b (e.g. final PSNR of an arm minus the baseline's, dB), paired by seed.

    Returns:
        dict(diff, lo, hi, n, p_t, p_signflip, boot_lo, boot_hi): the mean difference and its paired
        t-interval (``t_interval``, ``ci`` coverage), the number of seeds, the paired t-test's p
        (``t_test_p``) and the sign-flip p-value (``sign_flip_p``), and a percentile bootstrap interval as a
        secondary view, only from ``MIN_BOOTSTRAP_SEEDS`` seeds up (NaN below). NaN in a or b makes
        everything but n NaN.
    """
    a, b = _paired(a, b, "paired_difference", ci)
    d = a - b  # pairing: the seed-to-seed spread that both arms share cancels here
    if not np.isfinite(d).all():
        return dict(diff=math.nan, lo=math.nan, hi=math.nan, n=len(d), p_t=math.nan, p_signflip=math.nan,
                    boot_lo=math.nan, boot_hi=math.nan)
    mean, out = _interval_summary(d, ci, n_boot, seed)
    return dict(diff=mean, **out)


def paired_ratio(a, b, ci: float = 0.95, n_boot: int = 10000, seed: int = 0) -> dict:
    """Ratio of epochs-to-threshold, arm a over baseline b, paired by seed, on the log scale.

    The per-seed log ratios log(a_k / b_k) get a t-interval (``t_interval``); the ratio and its bounds are
    their exponentials: a geometric mean ratio, < 1 = a is faster.

    Args:
        a, b: epochs to threshold (> 0, NaN = not reached), one per seed, aligned by seed.
    Returns:
        dict(ratio, lo, hi, n, reached_a, reached_b, censored, p_t, p_signflip, boot_lo, boot_hi). If any seed
        of either arm did not reach the threshold (NaN), or was there before its first evaluation
        (``BEFORE_FIRST``, counted in ``censored``), ratio and bounds are NaN: an average over the seeds that
        can be timed would flatter one arm. ``p_t`` is the paired t-test's two-sided p on the log ratios.
    """
    a, b = _paired(a, b, "paired_ratio", ci)
    reached_a, reached_b = int((~np.isnan(a)).sum()), int((~np.isnan(b)).sum())
    censored = int(np.isneginf(a).sum() + np.isneginf(b).sum())
    out = dict(ratio=math.nan, lo=math.nan, hi=math.nan, n=len(a), reached_a=reached_a, reached_b=reached_b,
               censored=censored, p_t=math.nan, p_signflip=math.nan, boot_lo=math.nan, boot_hi=math.nan)
    if reached_a < len(a) or reached_b < len(b) or censored:
        return out
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError(f"paired_ratio: epochs must be > 0, got a={a.tolist()}, b={b.tolist()}")
    mean, summary = _interval_summary(np.log(a) - np.log(b), ci, n_boot, seed)
    out.update(summary, ratio=math.exp(mean))
    for k in ("lo", "hi", "boot_lo", "boot_hi"):
        out[k] = math.exp(out[k]) if math.isfinite(out[k]) else math.nan
    return out


CENSORED = "censored: some seed was there at its first evaluation"
MIN_SWEEP_RUN = 3  # adjacent sweep thresholds a verdict must hold over before it is stated as a verdict


def verdict(lo: float, hi: float, kind: str, n: int | None = None) -> str:
    """Plain words for an interval [lo, hi] over ``n`` seeds.

    kind="ratio": epochs ratio, < 1 means faster. kind="difference": metric difference in dB, > 0 is better.
    An interval that touches the neutral value (1 or 0) is "no detectable difference". Below ``MIN_SEEDS``
    seeds: "not enough seeds".
    """
    if kind not in VERDICT_KINDS:
        raise ValueError(f"verdict: kind={kind!r}, expected one of {VERDICT_KINDS}")
    if n is not None and n < MIN_SEEDS:
        return f"not enough seeds ({n})"
    if math.isnan(lo) or math.isnan(hi):
        return "not reached by every seed" if kind == "ratio" else "undefined (missing values)"
    if kind == "ratio":
        return ("faster, interval excludes 1" if hi < 1 else "slower, interval excludes 1" if lo > 1
                else "no detectable difference")
    return ("better, interval excludes 0" if lo > 0 else "worse, interval excludes 0" if hi < 0
            else "no detectable difference")


def _pairs(tidy: pd.DataFrame, column: str, baseline: str):
    """{arm: [(seed, arm's run, baseline's run)]} over seeds both have, each run cut to the shorter one's
    epochs, so a longer run gets no extra chances; arms sharing no seed with the baseline raise."""
    runs = dict(_runs(tidy, column))
    arms = sorted({arm for arm, _ in runs})
    if baseline not in arms:
        raise ValueError(f"claims_table: baseline={baseline!r} not among the arms {arms}")
    base_seeds = {seed for arm, seed in runs if arm == baseline}
    out = {}
    for arm in [a for a in arms if a != baseline]:
        seeds = sorted(seed for a, seed in runs if a == arm)
        common = [s for s in seeds if s in base_seeds]
        if not common:
            raise ValueError(f"claims_table: arm {arm!r} shares no seed with baseline {baseline!r}")
        rows = []
        for s in common:
            run, base = runs[(arm, s)], runs[(baseline, s)]
            horizon = min(run["epoch"].iloc[-1], base["epoch"].iloc[-1])
            rows.append((s, run[run["epoch"] <= horizon], base[base["epoch"] <= horizon]))
        out[arm] = (rows, len(seeds) - len(common))
    return out


def mean_gap(run: pd.DataFrame, base: pd.DataFrame, column: str) -> float:
    """Mean of (run - base) over the epochs both evaluated: the area between two curves divided by their
    length, in the column's unit (dB). A threshold-free summary of "ahead during training"."""
    both = run[["epoch", column]].merge(base[["epoch", column]], on="epoch", suffixes=("", "_base"))
    return float((both[column] - both[column + "_base"]).mean())


def claims_table(tidy: pd.DataFrame, column: str, threshold: float, baseline: str = "l1", ci: float = 0.95,
                 n_boot: int = 10000) -> pd.DataFrame:
    """One row per arm other than ``baseline``: faster to ``threshold``, ahead during training, better at the
    end and at its best? Paired by seed, with t-intervals (``paired_ratio``, ``paired_difference``).

    Seeds are matched by the ``seed`` column; only seeds present in both arms are used (``seeds``), the
    arm's others are counted in ``unmatched``. Each pair of runs is compared over the epochs both logged
    (``horizon`` is the smallest such last epoch). Values are in ``column``'s unit (dB for PSNR).

    Returns:
        DataFrame with columns arm, baseline, seeds, unmatched, horizon, epochs_arm, epochs_base (means, NaN
        if a seed never got there), reached_arm, reached_base, ratio, ratio_lo, ratio_hi, ratio_p, speed;
        gap_diff, gap_lo, gap_hi, gap_p, gap_verdict (``mean_gap``: mean PSNR difference over all evaluated
        epochs); final_*, best_* likewise for the last epoch and the best epoch; *_p are sign-flip p-values.
    """
    rows = []
    for arm, (pairs, unmatched) in _pairs(tidy, column, baseline).items():
        mine = np.array([_summary(run, column, threshold, arm, s) for s, run, _ in pairs])
        theirs = np.array([_summary(base, column, threshold, baseline, s) for s, _, base in pairs])
        gaps = np.array([mean_gap(run, base, column) for _, run, base in pairs])
        n = len(pairs)
        speed = paired_ratio(mine[:, 0], theirs[:, 0], ci, n_boot)
        row = dict(arm=arm, baseline=baseline, seeds=n, unmatched=unmatched,
                   horizon=min(run["epoch"].iloc[-1] for _, run, _ in pairs),
                   epochs_arm=_finite_mean(mine[:, 0]), epochs_base=_finite_mean(theirs[:, 0]),
                   reached_arm=speed["reached_a"], reached_base=speed["reached_b"], censored=speed["censored"],
                   ratio=speed["ratio"], ratio_lo=speed["lo"], ratio_hi=speed["hi"], ratio_p=speed["p_signflip"],
                   ratio_pt=speed["p_t"],
                   speed=CENSORED if speed["censored"] else verdict(speed["lo"], speed["hi"], "ratio", n))
        for name, d in (("gap", paired_difference(gaps, np.zeros(n), ci, n_boot)),
                        ("final", paired_difference(mine[:, 1], theirs[:, 1], ci, n_boot)),
                        ("best", paired_difference(mine[:, 2], theirs[:, 2], ci, n_boot))):
            row.update({f"{name}_diff": d["diff"], f"{name}_lo": d["lo"], f"{name}_hi": d["hi"],
                        f"{name}_p": d["p_signflip"], f"{name}_pt": d["p_t"],
                        f"{name}_verdict": verdict(d["lo"], d["hi"], "difference", n)})
        rows.append(row)
    return pd.DataFrame(rows)


def _finite_mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else math.nan


SWEEP_FRACTIONS = tuple(np.round(np.arange(0.1, 0.901, 0.05), 3))


def threshold_sweep(tidy: pd.DataFrame, column: str, baseline: str = "l1", fractions=SWEEP_FRACTIONS,
                    ci: float = 0.95, levels_from: pd.DataFrame | None = None) -> pd.DataFrame:
    """Speed ratio (arm / baseline epochs to threshold, t-interval) as the threshold moves along the
    baseline's mean curve: is "faster" a property of the arm or of where the threshold was put?

    Args:
        fractions: positions on the run, (0, 1]: the threshold is the baseline's mean curve at that share of
            its epochs (``matched_threshold``). Default: 0.1, 0.15, ..., 0.9.
        levels_from: the runs whose baseline curve sets the levels: held-out seeds that score no verdict
            (default: ``tidy``'s own baseline runs, which then both place the levels and are judged at them).
    Returns:
        DataFrame, one row per (arm, fraction): arm, fraction, threshold (dB), base_epoch (where the
        baseline's mean curve is there), ratio, lo, hi, reached (seeds that got there in both arms),
        censored (runs already there at their first evaluation), speed.
    """
    levels_from = tidy if levels_from is None else levels_from
    rows = []
    for f in fractions:
        level = matched_threshold(levels_from, column, baseline, f)
        base_epoch = max(1.0, f * levels_from[levels_from.arm == baseline].epoch.max())
        for arm, (pairs, _) in _pairs(tidy, column, baseline).items():
            mine = [_summary(run, column, level, arm, s)[0] for s, run, _ in pairs]
            theirs = [_summary(base, column, level, baseline, s)[0] for s, _, base in pairs]
            r = paired_ratio(mine, theirs, ci, n_boot=1)
            rows.append(dict(arm=arm, fraction=float(f), threshold=level, base_epoch=base_epoch, ratio=r["ratio"],
                             lo=r["lo"], hi=r["hi"], reached=min(r["reached_a"], r["reached_b"]),
                             censored=r["censored"],
                             speed=CENSORED if r["censored"] else verdict(r["lo"], r["hi"], "ratio", len(pairs))))
    return pd.DataFrame(rows)


def speed_statement(sweep: pd.DataFrame, arm: str) -> str:
    """The speed verdict of ``arm`` with the threshold range where it holds, from ``threshold_sweep``:
    e.g. "faster for thresholds 31.20-32.85 dB (baseline there at epochs 1.2-4.8); no detectable difference
    for thresholds 32.90-33.40 dB (...)". A verdict that holds over fewer than ``MIN_SWEEP_RUN`` adjacent
    thresholds is not stated as one: such stretches read "unsettled" (the verdict flips with the threshold)."""
    rows = sweep[sweep.arm == arm].sort_values("threshold")
    if rows.empty:
        raise ValueError(f"speed_statement: no sweep rows for arm {arm!r}")
    words = rows.speed.str.split(",").str[0].to_numpy()
    run_id = np.cumsum(np.r_[True, words[1:] != words[:-1]])
    sizes = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
    labels = pd.Series(np.where(sizes >= MIN_SWEEP_RUN, words, "unsettled"), index=rows.index)
    parts = []
    for _, g in rows.groupby((labels != labels.shift()).cumsum(), sort=False):  # runs of one label
        what, lo, hi = labels[g.index[0]], g.threshold.min(), g.threshold.max()
        if len(g) == 1:
            parts.append(f"{what} at threshold {lo:.2f} dB (baseline there at epoch {g.base_epoch.min():.1f})")
        else:
            parts.append(f"{what} for thresholds {lo:.2f}-{hi:.2f} dB (baseline there at "
                         f"epochs {g.base_epoch.min():.1f}-{g.base_epoch.max():.1f})")
    return "; ".join(parts)


def matched_threshold(tidy: pd.DataFrame, column: str, baseline: str = "l1", fraction: float = 125 / 300) -> float:
    """A PSNR threshold placed like the paper's 34.4 dB: the baseline's mean curve at ``fraction`` of the run.

    The paper's vanilla EDSR first reaches 34.4 dB at about epoch 125 of 300; on another data set or
    schedule the same relative position gives a comparable "time to threshold" question.
    """
    base = tidy[tidy.arm == baseline]
    if base.empty:
        raise ValueError(f"matched_threshold: no rows with arm={baseline!r}")
    curve = base.groupby("epoch")[column].mean()
    epoch = max(1.0, fraction * curve.index.max())
    return float(np.interp(epoch, curve.index.to_numpy(dtype=float), curve.to_numpy()))


def warmup_matching(history: pd.DataFrame, gamma: float = 2.0, level: float = 0.9) -> float:
    """Epochs until a PSPL run's mean weight first reaches ``level * gamma``: the length of the ``warmup``
    control's linear lr ramp, so that plain L1 gets the same slow start without any pixel weighting.

    ``history`` needs columns epoch and att_mean (per-epoch mean weight on training batches).
    """
    reached = epochs_to_threshold(history.epoch.to_numpy(float), history.att_mean.to_numpy(float), level * gamma)
    return float(history.epoch.max()) if math.isnan(reached) else reached


def evaluation_noise(tidy: pd.DataFrame, column: str) -> pd.DataFrame:
    """How jumpy each arm's validation curves are: per arm, the mean over seeds of the largest single-epoch
    drop (dB), of the number of epochs that went down, and of the spread (sd) of epoch-to-epoch changes in
    the second half of the run, where curves are flat and the changes are mostly evaluation noise."""
    rows = []
    for (arm, seed), run in _runs(tidy, column):
        steps = np.diff(run[column].to_numpy())
        late = steps[len(steps) // 2:]
        rows.append(dict(arm=arm, seed=seed, max_drop=float(max(0.0, -steps.min())) if len(steps) else 0.0,
                         drops=int((steps < 0).sum()), late_sd=float(late.std(ddof=1)) if len(late) > 1 else math.nan))
    return pd.DataFrame(rows).groupby("arm")[["max_drop", "drops", "late_sd"]].mean()
