"""Statistics that tell a reader whether PSPL's claims hold on the kit's own training histories.

The paper's claims are "reaches a given PSNR in fewer epochs" (Fig. 4: 34.4 dB at about epoch 67 instead of
128) and "ends at a higher PSNR" (Table 1). With a few seeds per arm, each claim becomes a paired comparison
against the baseline arm with a percentile bootstrap interval over seeds, and a verdict in plain words.

Input is a *tidy* DataFrame, one row per (run, epoch): columns ``arm`` (str), ``seed`` (int), ``epoch``
(int, 1-based) and metric columns such as ``psnr_embedded_valid`` (dB). A run is one (arm, seed) pair.

The last two functions describe the attention schedule itself (Eq. 7-8): how fast PSPL's pixel weights
flatten, and so for what share of a run PSPL differs from a (scaled) L1 loss at all.
"""
import math

import numpy as np
import pandas as pd
import torch

from pspl_nb.pspl import attention, check_schedule

VERDICT_KINDS = ("ratio", "difference")


def epochs_to_threshold(epochs, values, threshold: float) -> float:
    """First epoch at which a curve is at or above ``threshold``.

    Args:
        epochs: 1-D increasing sequence of evaluation ages (epochs).
        values: 1-D sequence of the metric at those ages (e.g. PSNR in dB), same length. NaN counts as
            "below threshold" (a missing or diverged evaluation).
        threshold: the level to reach, in the metric's unit.

    Returns:
        The epoch, linearly interpolated between the last evaluation below and the first at or above the
        threshold; ``epochs[0]`` when the first evaluation is already there; ``math.nan`` when never reached.
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
    if i == 0 or not math.isfinite(values[i - 1]):
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


def _paired(a, b, name: str, n_boot: int, ci: float):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{name}: a and b must be 1-D of one length (one value per seed), got {a.shape}, {b.shape}")
    if len(a) == 0:
        raise ValueError(f"{name}: empty a and b (no seeds)")
    if not 0 < ci < 1:
        raise ValueError(f"{name}: ci={ci} must be in (0, 1)")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"{name}: n_boot={n_boot} must be a positive integer")
    return a, b


def _resample(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) seed indices drawn with replacement: one row per bootstrap replicate. Both arms use the
    same row, which keeps the seeds paired (seed k of arm a goes with seed k of the baseline)."""
    return np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))


def _interval(replicates: np.ndarray, ci: float) -> tuple:
    lo, hi = np.quantile(replicates, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def bootstrap_ratio(a, b, n_boot: int = 10000, ci: float = 0.95, seed: int = 0) -> dict:
    """Ratio mean(a) / mean(b) of epochs-to-threshold, arm a over baseline b, with a paired bootstrap interval.

    Args:
        a, b: epochs to threshold (> 0, NaN = not reached), one per seed, aligned by seed.
        n_boot: bootstrap replicates. ci: interval coverage, e.g. 0.95. seed: seeds the numpy Generator.

    Returns:
        dict(ratio, lo, hi, n, reached_a, reached_b): the ratio (< 1 = a is faster) and its percentile
        interval; n seeds; how many seeds reached the threshold in each arm. If any seed of either arm did
        not reach it, ratio, lo and hi are NaN: a mean over the seeds that did would flatter the slower arm.
    """
    a, b = _paired(a, b, "bootstrap_ratio", n_boot, ci)
    reached_a, reached_b = int(np.isfinite(a).sum()), int(np.isfinite(b).sum())
    out = dict(ratio=math.nan, lo=math.nan, hi=math.nan, n=len(a), reached_a=reached_a, reached_b=reached_b)
    if reached_a < len(a) or reached_b < len(b):
        return out
    if (a < 0).any() or (b <= 0).any():
        raise ValueError(f"bootstrap_ratio: epochs must be >= 0 in a and > 0 in b, got a={a.tolist()}, b={b.tolist()}")
    idx = _resample(len(a), n_boot, seed)
    out["ratio"] = float(a.mean() / b.mean())
    out["lo"], out["hi"] = _interval(a[idx].mean(axis=1) / b[idx].mean(axis=1), ci)
    return out


def paired_difference(a, b, n_boot: int = 10000, ci: float = 0.95, seed: int = 0) -> dict:
    """Mean over seeds of a - b (e.g. final PSNR of an arm minus the baseline's, dB), paired by seed.

    Returns:
        dict(diff, lo, hi, n): the mean difference, its percentile bootstrap interval (``ci`` coverage,
        ``n_boot`` replicates, numpy Generator seeded with ``seed``) and the number of seeds. NaN in a or b
        makes diff, lo and hi NaN.
    """
    a, b = _paired(a, b, "paired_difference", n_boot, ci)
    d = a - b  # pairing: the seed-to-seed spread that both arms share cancels here
    if not np.isfinite(d).all():
        return dict(diff=math.nan, lo=math.nan, hi=math.nan, n=len(d))
    lo, hi = _interval(d[_resample(len(d), n_boot, seed)].mean(axis=1), ci)
    return dict(diff=float(d.mean()), lo=lo, hi=hi, n=len(d))


MIN_SEEDS = 3


def verdict(lo: float, hi: float, kind: str, n: int | None = None) -> str:
    """Plain words for an interval [lo, hi] over ``n`` seeds.

    kind="ratio": epochs ratio, < 1 means faster. kind="difference": metric difference in dB, > 0 is better.
    An interval that touches the neutral value (1 or 0) is "no detectable difference". With fewer than
    ``MIN_SEEDS`` seeds a bootstrap has only a handful of distinct resamples, so no verdict is given.
    """
    if kind not in VERDICT_KINDS:
        raise ValueError(f"verdict: kind={kind!r}, expected one of {VERDICT_KINDS}")
    if n is not None and n < MIN_SEEDS:
        return f"{n} seed(s): too few for an interval"
    if math.isnan(lo) or math.isnan(hi):
        return "not reached by every seed" if kind == "ratio" else "undefined (missing values)"
    if kind == "ratio":
        return ("faster, interval excludes 1" if hi < 1 else "slower, interval excludes 1" if lo > 1
                else "no detectable difference")
    return ("better, interval excludes 0" if lo > 0 else "worse, interval excludes 0" if hi < 0
            else "no detectable difference")


def claims_table(tidy: pd.DataFrame, column: str, threshold: float, baseline: str = "l1",
                 n_boot: int = 10000) -> pd.DataFrame:
    """One row per arm other than ``baseline``: is it faster to ``threshold``, and better at the end and at its best?

    Seeds are matched by the ``seed`` column; only seeds present in both arms are used (``seeds``), the
    arm's others are counted in ``unmatched``. Each pair of runs is compared over the epochs both logged
    (up to the shorter run's last epoch, ``horizon`` is the smallest such epoch), so a longer run gets no
    extra chances. Column values are in ``column``'s unit (dB for PSNR); epochs are fractional epochs.

    Returns:
        DataFrame with columns arm, baseline, seeds, unmatched, horizon, epochs_arm, epochs_base (means, NaN
        if a seed never got there), reached_arm, reached_base, ratio, ratio_lo, ratio_hi, speed,
        final_diff, final_lo, final_hi, final_verdict, best_diff, best_lo, best_hi, best_verdict.
    """
    runs = dict(_runs(tidy, column))
    arms = sorted({arm for arm, _ in runs})
    if baseline not in arms:
        raise ValueError(f"claims_table: baseline={baseline!r} not among the arms {arms}")
    base_seeds = {seed for arm, seed in runs if arm == baseline}
    rows = []
    for arm in [a for a in arms if a != baseline]:
        seeds = sorted(seed for a, seed in runs if a == arm)
        common = [s for s in seeds if s in base_seeds]
        if not common:
            raise ValueError(f"claims_table: arm {arm!r} shares no seed with baseline {baseline!r}")
        pairs, horizons = [], []
        for s in common:
            run, base = runs[(arm, s)], runs[(baseline, s)]
            horizon = min(run["epoch"].iloc[-1], base["epoch"].iloc[-1])
            horizons.append(horizon)
            pairs.append((_summary(run[run["epoch"] <= horizon], column, threshold, arm, s),
                          _summary(base[base["epoch"] <= horizon], column, threshold, baseline, s)))
        mine, theirs = (np.array(side) for side in zip(*pairs))  # each (seeds, 3): reach, final, best
        speed = bootstrap_ratio(mine[:, 0], theirs[:, 0], n_boot)
        final = paired_difference(mine[:, 1], theirs[:, 1], n_boot)
        best = paired_difference(mine[:, 2], theirs[:, 2], n_boot)
        rows.append(dict(
            arm=arm, baseline=baseline, seeds=len(common), unmatched=len(seeds) - len(common), horizon=min(horizons),
            epochs_arm=float(mine[:, 0].mean()), epochs_base=float(theirs[:, 0].mean()),
            reached_arm=speed["reached_a"], reached_base=speed["reached_b"],
            ratio=speed["ratio"], ratio_lo=speed["lo"], ratio_hi=speed["hi"],
            speed=verdict(speed["lo"], speed["hi"], "ratio", len(common)),
            final_diff=final["diff"], final_lo=final["lo"], final_hi=final["hi"],
            final_verdict=verdict(final["lo"], final["hi"], "difference", len(common)),
            best_diff=best["diff"], best_lo=best["lo"], best_hi=best["hi"],
            best_verdict=verdict(best["lo"], best["hi"], "difference", len(common))))
    return pd.DataFrame(rows)


def flattening_table(epochs=(0.25, 0.5, 1, 2, 5, 10, 20), alpha: float = 1.0, beta: float = 0.0,
                     gamma: float = 2.0, mu: float = -1.0) -> pd.DataFrame:
    """PSPL's weights (Eq. 7) at a few ages, to show how quickly they flatten.

    Args:
        epochs: ages in (fractional) epochs. alpha, beta, gamma, mu: as in ``pspl.attention``.

    Returns:
        DataFrame with columns epoch, delta (= alpha * epoch + beta), w(-1), w(0), w(0.5), w(1) (the weight
        at those SSIM values, on [0, gamma]) and w(0)/w(1). With the paper's settings the ratio is ~20 at
        epoch 1 and ~1.03 at epoch 10: after a few epochs the loss is about gamma * L1.
    """
    ms = torch.tensor([-1.0, 0.0, 0.5, 1.0], dtype=torch.float64)  # float64: w(1) is ~1e-28 at epoch 0.25
    rows = []
    for epoch in epochs:
        w = attention(ms, epoch, gamma, mu, alpha, beta).tolist()
        ratio = w[1] / w[3] if w[3] > 0 else math.inf
        rows.append({"epoch": epoch, "delta": alpha * epoch + beta, "w(-1)": w[0], "w(0)": w[1],
                     "w(0.5)": w[2], "w(1)": w[3], "w(0)/w(1)": ratio})
    return pd.DataFrame(rows)


def nonuniform_fraction(total_epochs: float, alpha: float = 1.0, beta: float = 0.0, gamma: float = 2.0,
                        mu: float = -1.0, tol: float = 0.10, ssim_range=(0.0, 1.0)) -> dict:
    """When PSPL's weights become uniform within ``tol`` over ``ssim_range``, and how much of a run is before.

    Over SSIM in [lo, hi], Eq. 7 gives max w / min w = exp((d_far^2 - d_near^2) / delta^2), with d_far and
    d_near the largest and smallest |SSIM - mu| on the range (gamma cancels). Requiring it <= 1 + tol gives
    delta >= sqrt((d_far^2 - d_near^2) / ln(1 + tol)), and Eq. 8 turns delta into an age. This holds for
    mu = -1 (hard first: d_far at lo), mu = +1 (easy first: d_far at hi) and any mu in between.

    Args:
        total_epochs: length of the run (epochs, > 0). alpha, beta, gamma, mu: as in ``pspl.attention``.
        tol: allowed relative spread, > 0 (0.10: weights within 10% of each other).
        ssim_range: (lo, hi) on [-1, 1], the SSIM values the pixels actually take.

    Returns:
        dict(epoch_uniform, fraction): the age (epochs) from which weights are uniform within tol (0 if from
        the start, inf if delta never grows enough) and the share of the run before it, on [0, 1].
    """
    check_schedule(gamma, alpha, beta)
    if not (math.isfinite(total_epochs) and total_epochs > 0):
        raise ValueError(f"nonuniform_fraction: total_epochs={total_epochs} must be finite and > 0")
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"nonuniform_fraction: tol={tol} must be finite and > 0")
    lo, hi = ssim_range
    if not -1 <= lo <= hi <= 1:
        raise ValueError(f"nonuniform_fraction: ssim_range={ssim_range} must satisfy -1 <= lo <= hi <= 1")
    d_far = max(abs(lo - mu), abs(hi - mu))
    d_near = abs(min(max(mu, lo), hi) - mu)  # 0 when mu lies inside the range
    delta_needed = math.sqrt((d_far**2 - d_near**2) / math.log1p(tol))
    if beta >= delta_needed:
        epoch = 0.0
    elif alpha == 0:
        epoch = math.inf  # delta stays at beta forever
    else:
        epoch = (delta_needed - beta) / alpha
    return dict(epoch_uniform=epoch, fraction=min(max(epoch / total_epochs, 0.0), 1.0))


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
