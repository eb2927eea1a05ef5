"""Pixel-level Self-Paced Learning (Lin et al., ICASSP 2020): the whole method.

    Ms = SSIM(Isr, Ihr)                              per pixel and channel    (Eq. 3-5)
    Ma = gamma * exp(-(Ms - mu)^2 / delta^2)         attention                (Eq. 6-7)
    delta = alpha * age + beta                       widens with training     (Eq. 8)
    loss = L(Ma * Isr, Ma * Ihr)                     L = L1 or L2             (Eq. 10)

Ms and Ma are constants: no gradient flows through them. With mu = -1 (SSIM's lower bound) the worst
reconstructed pixels get the largest weight; as delta grows every weight tends to gamma and the loss to
gamma * L. The paper calls the age ``step``; it counts fractional epochs, as the official code does: it adds
1 / batches_per_epoch before every loss call, so the first call already has age = 1 / batches_per_epoch.
``Schedule`` holds gamma, mu, alpha and beta, the four numbers of Eq. 7-8.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from pspl_nb.ssim import MOMENTS, ssim_map

BASES = ("l1", "l2", "charbonnier")
SSIM_MODES = ("paper", "official")
WEIGHTS = ("pixel", "mean", "contrast")


def _check(**values) -> None:
    """Raise ValueError naming the first value that is not finite and >= 0 (``PSPL: <name>=<value> ...``)."""
    for name, value in values.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"PSPL: {name}={value} must be finite and >= 0")


def attention(ms, delta: float, gamma: float = 2.0, mu: float = -1.0) -> torch.Tensor:
    """Eq. 7: the attention ``gamma * exp(-(ms - mu)^2 / delta^2)`` at width ``delta``.

    Args:
        ms: similarity values on [-1, 1], any shape (tensor, array or float).
        delta: the bell's width, finite and >= 0 (Eq. 8 gives it from the age: ``Schedule.delta``).
        gamma: peak weight, >= 0 (paper: 2). mu: position of the peak (paper: -1, hard pixels first;
            +1 gives the classic easy-first order).

    Returns:
        Tensor shaped like ``ms`` with values on [0, gamma]. At delta = 0 it is the limit: gamma where
        ms == mu, 0 elsewhere; so is a delta below the smallest normal number of ms's dtype (~1e-38 in
        float32), where (ms - mu) / delta would give 0 / 0.
    """
    _check(gamma=gamma, delta=delta)
    ms = torch.as_tensor(ms)
    dtype = ms.dtype if ms.is_floating_point() else torch.float32
    if delta < torch.finfo(dtype).tiny:
        # Multiplied in ms's dtype: torch.where with a Python gamma would round it to float32.
        return (ms == mu).to(dtype) * gamma
    # One new tensor, then in place: the map is recomputed at every training step.
    return (ms - mu).div_(delta).square_().neg_().exp_().mul_(gamma)


class WholeBatch:
    """Batch statistics of the tensor at hand: in one process that is the whole batch.

    The controls normalise by statistics over the batch (``weights="mean"`` and ``"contrast"``). Under DDP
    each process holds a shard of it, and ``pspl_nb.train.ShardedBatch`` combines the shards' values across
    processes so that every rank optimises the single-process objective. Each method maps the statistic of
    the local tensor (a 0-d tensor) to the batch's.
    """

    def mean(self, local: torch.Tensor) -> torch.Tensor:
        return local

    def min(self, local: torch.Tensor) -> torch.Tensor:
        return local

    def max(self, local: torch.Tensor) -> torch.Tensor:
        return local


def contrast(ms, delta: float, mu: float = -1.0, batch: WholeBatch | None = None) -> torch.Tensor:
    """Eq. 7's attention divided by its mean over all elements: PSPL's pixel contrast at a constant scale.

    ``Ma / mean(Ma)`` has mean 1 whatever the age, so it keeps which pixels PSPL favours and drops the
    global loss scale that PSPL's rising mean weight adds (gamma cancels). Computed as ``N * softmax(z)``
    with ``z = -(ms - mu)^2 / delta^2``: stable even when every Ma underflows to 0 early in training. At
    delta = 0 (or so small that delta^2 is below the dtype's smallest normal) it is the limit: equal
    weights on the elements closest to mu, 0 elsewhere. Returns a tensor shaped like ``ms``, values >= 0, mean 1.
    ``batch`` (default ``WholeBatch()``) takes the maximum and the mean over the whole batch when ``ms`` is
    one DDP process's shard of it.
    """
    _check(delta=delta)
    batch = batch or WholeBatch()
    d2 = torch.as_tensor(ms).sub(mu).square_()
    # (ms - mu)^2 <= 4 on SSIM's range, so from delta^2 >= 4 * tiny on z = -(ms - mu)^2 / delta^2 cannot overflow
    # (and 0 / 0 cannot happen); below it the limit is taken
    if delta * delta < 4 * torch.finfo(d2.dtype).tiny:
        w = (d2 == batch.min(d2.min())).to(d2.dtype)
    else:
        z = d2.div_(-delta * delta)
        w = z.sub_(batch.max(z.max())).exp_()
    return w.div_(batch.mean(w.mean()))


@dataclass(frozen=True)
class Schedule:
    """PSPL's four numbers: Eq. 7's peak ``gamma`` (>= 0) and centre ``mu`` (an SSIM value, -1: hard pixels
    first), and Eq. 8's growth ``alpha`` (delta per epoch of age, >= 0) and start ``beta`` (>= 0), not both 0.
    The defaults are the paper's (2, -1, 1, 0). Invalid values raise ValueError naming the first bad one."""

    gamma: float = 2.0
    mu: float = -1.0
    alpha: float = 1.0
    beta: float = 0.0

    def __post_init__(self):
        _check(gamma=self.gamma, alpha=self.alpha, beta=self.beta)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("PSPL: alpha=0 and beta=0 make delta = 0 at every step; set one of them > 0")

    def delta(self, age: float) -> float:
        """Eq. 8: the width ``alpha * age + beta`` at ``age`` epochs (fractional, finite, >= 0)."""
        _check(step=age)
        return self.alpha * age + self.beta

    def weights(self, ms, age: float) -> torch.Tensor:
        """Eq. 7 at ``age``: the attention of the SSIM values ``ms`` (any shape), on [0, gamma] (``attention``)."""
        return attention(ms, self.delta(age), self.gamma, self.mu)


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, base: str = "l1", eps: float = 1e-3, weight=None) -> torch.Tensor:
    """Mean of L1 |d|, L2 d^2 or Charbonnier sqrt(d^2 + eps^2) over all elements, d = sr - hr; a scalar.

    ``weight`` (broadcastable to sr, e.g. PSPL's Ma) makes d = weight * (sr - hr), which is
    weight * sr - weight * hr (Eq. 10) with one multiplication less in the forward pass.
    """
    d = sr - hr if weight is None else weight * (sr - hr)
    if base == "l1":
        return d.abs().mean()
    if base == "l2":
        return (d * d).mean()
    if base == "charbonnier":
        return torch.sqrt(d * d + eps * eps).mean()
    raise ValueError(f"pixel_loss: base={base!r}, expected one of {BASES}")


def _one_of(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"PSPLLoss: {name}={value!r}, expected one of {allowed}")


class PSPLLoss(nn.Module):
    """Eq. 10: ``base(Ma * sr, Ma * hr)`` with Ma from the SSIM map of (sr, hr).

    Args:
        schedule: gamma, mu, alpha, beta (``Schedule``; default the paper's).
        base: "l1", "l2" or "charbonnier" (eps = 1e-3 * data_range).
        ssim: "paper" uses range-matched constants C1 = (0.01 L)^2, C2 = (0.03 L)^2 as the paper's text
            says. "official" uses C1 = 1e-4, C2 = 9e-4 whatever the range, as the official code does on
            [0, 255] data: there they are ~65,000x too small, so flat regions get SSIM near 0 and count
            as hard. The official code is ``ssim="official", padding="zeros"`` with data on [0, 255].
        padding: "zeros" (official: a 5-pixel border looks artificially similar) or "reflect".
        data_range: L, the range of sr and hr (1.0 or 255.0).
        weights: "pixel" is PSPL (Eq. 10). The two controls split it into its two parts: "mean" replaces Ma
            by its batch mean (the ``uniform`` arm: PSPL's rising global scale, near 0 at the start, no
            contrast between pixels); "contrast" divides Ma by its batch mean (the ``contrast`` arm: PSPL's
            pixel contrast at a constant scale of 1, see ``contrast``).
        moments: dtype of the SSIM map's local moments, "float64" (exact to ~1e-12) or "float32" (faster on
            CPU, flat regions noisy with the official constants, as in the official code); see ``ssim_map``.
        check_finite: raise ValueError on a non-finite loss. It reads the loss on the host, a GPU
            synchronisation that stalls the launch of the backward pass; the trainer turns it off and
            checks the loss after the optimiser step instead.
        batch: how "mean" and "contrast" take statistics over the batch (default ``WholeBatch()``, the
            tensor at hand); the DDP trainer passes ``pspl_nb.train.ShardedBatch`` so that they normalise
            by the global batch, not by one process's shard.

    ``forward(sr, hr, step)`` takes (N, C, H, W) tensors on [0, data_range] and the age in epochs;
    it returns a scalar. ``last_attention`` holds the detached (N, C, H, W) Ma of Eq. 7 of the latest call
    (the weights actually applied, for "mean" and "contrast", are derived from it).
    """

    def __init__(self, schedule: Schedule = Schedule(), *, base="l1", ssim="paper", padding="zeros",
                 data_range=1.0, weights="pixel", moments="float64", check_finite=True, batch=None):
        super().__init__()
        for name, value, allowed in (("base", base, BASES), ("ssim", ssim, SSIM_MODES),
                                     ("padding", padding, ("zeros", "reflect")), ("moments", moments, MOMENTS),
                                     ("weights", weights, WEIGHTS)):
            _one_of(name, value, allowed)
        self.schedule, self.base, self.ssim, self.padding = schedule, base, ssim, padding
        self.data_range, self.weights, self.moments = data_range, weights, moments
        self.check_finite, self.batch = check_finite, batch or WholeBatch()
        self.constants = (1e-4, 9e-4) if ssim == "official" else ((0.01 * data_range) ** 2, (0.03 * data_range) ** 2)
        self.last_attention = None

    def similarity(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Ms of Eq. 3-5 for (N, C, H, W) sr and hr in a float dtype: ``ssim_map`` with this loss's settings."""
        return ssim_map(sr, hr, self.data_range, self.padding, *self.constants, moments=self.moments)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, step: float) -> torch.Tensor:
        if sr.shape != hr.shape:
            raise ValueError(f"PSPLLoss: sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
        # The map is a constant of the step (no gradient) and computed in at least float32 even under
        # bf16 autocast: SSIM's variances are small differences of large moments.
        wide = torch.promote_types(sr.dtype, torch.float32)
        with torch.no_grad(), torch.autocast(sr.device.type, enabled=False):
            ms = self.similarity(sr.detach().to(wide), hr.to(wide))
            ma = self.schedule.weights(ms, step).to(sr.dtype)
            if self.weights == "mean":
                weight = self.batch.mean(ma.mean())
            elif self.weights == "contrast":
                weight = contrast(ms, self.schedule.delta(step), self.schedule.mu, self.batch).to(sr.dtype)
            else:
                weight = ma
        self.last_attention = ma
        loss = pixel_loss(sr, hr, self.base, 1e-3 * self.data_range, weight=weight)
        if self.check_finite and not torch.isfinite(loss):
            bad = "sr" if not torch.isfinite(sr).all() else "hr" if not torch.isfinite(hr).all() else "loss"
            raise ValueError(f"PSPLLoss: non-finite values in {bad} (step={step})")
        return loss

    def extra_repr(self) -> str:
        return (f"{self.schedule}, base={self.base}, ssim={self.ssim}, padding={self.padding}, "
                f"data_range={self.data_range}, weights={self.weights}")
