"""PSPL's schedule (Eq. 7-8) and what it implies: how fast the pixel weights flatten, and so for what share
of a run PSPL differs from a (scaled) L1 loss at all. Closed forms, no training.
"""
import math

import pandas as pd
import torch

from pspl_nb.pspl import Schedule


def flattening_table(schedule: Schedule = Schedule(), epochs=(0.25, 0.5, 1, 2, 5, 10, 20)) -> pd.DataFrame:
    """PSPL's weights (Eq. 7) at a few ages, to show how quickly they flatten.

    Args:
        schedule: gamma, mu, alpha, beta (default the paper's). epochs: ages in (fractional) epochs.

    Returns:
        DataFrame with columns epoch, delta (= alpha * epoch + beta), w(-1), w(0), w(0.5), w(1) (the weight
        at those SSIM values, on [0, gamma]) and w(0)/w(1). With the paper's settings the ratio is ~20 at
        epoch 1 and ~1.03 at epoch 10: after a few epochs the loss is about gamma * L1.
    """
    ms = torch.tensor([-1.0, 0.0, 0.5, 1.0], dtype=torch.float64)  # float64: w(1) is ~1e-28 at epoch 0.25
    rows = []
    for epoch in epochs:
        w = schedule.weights(ms, epoch).tolist()
        ratio = w[1] / w[3] if w[3] > 0 else math.inf
        rows.append({"epoch": epoch, "delta": schedule.delta(epoch), "w(-1)": w[0], "w(0)": w[1],
                     "w(0.5)": w[2], "w(1)": w[3], "w(0)/w(1)": ratio})
    return pd.DataFrame(rows)


def nonuniform_fraction(total_epochs: float, schedule: Schedule = Schedule(), tol: float = 0.10,
                        ssim_range=(0.0, 1.0)) -> dict:
    """When PSPL's weights become uniform within ``tol`` over ``ssim_range``, and how much of a run is before.

    Over SSIM in [lo, hi], Eq. 7 gives max w / min w = exp((d_far^2 - d_near^2) / delta^2), with d_far and
    d_near the largest and smallest |SSIM - mu| on the range (gamma cancels). Requiring it <= 1 + tol gives
    delta >= sqrt((d_far^2 - d_near^2) / ln(1 + tol)), and Eq. 8 turns delta into an age. This holds for
    mu = -1 (hard first: d_far at lo), mu = +1 (easy first: d_far at hi) and any mu in between.

    Args:
        total_epochs: length of the run (epochs, > 0). schedule: gamma, mu, alpha, beta (default the paper's).
        tol: allowed relative spread, > 0 (0.10: weights within 10% of each other).
        ssim_range: (lo, hi) on [-1, 1], the SSIM values the pixels actually take.

    Returns:
        dict(epoch_uniform, fraction): the age (epochs) from which weights are uniform within tol (0 if from
        the start, inf if delta never grows enough) and the share of the run before it, on [0, 1].
    """
    if not (math.isfinite(total_epochs) and total_epochs > 0):
        raise ValueError(f"nonuniform_fraction: total_epochs={total_epochs} must be finite and > 0")
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"nonuniform_fraction: tol={tol} must be finite and > 0")
    lo, hi = ssim_range
    if not -1 <= lo <= hi <= 1:
        raise ValueError(f"nonuniform_fraction: ssim_range={ssim_range} must satisfy -1 <= lo <= hi <= 1")
    mu, alpha, beta = schedule.mu, schedule.alpha, schedule.beta
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
