"""Pixel-level Self-Paced Learning (Lin et al., ICASSP 2020): the whole method.

    Ms = SSIM(Isr, Ihr)                              per pixel and channel    (Eq. 3-5)
    Ma = gamma * exp(-(Ms - mu)^2 / delta^2)         attention                (Eq. 6-7)
    delta = alpha * step + beta                      widens with training     (Eq. 8)
    loss = L(Ma * Isr, Ma * Ihr)                     L = L1 or L2             (Eq. 10)

Ms and Ma are constants: no gradient flows through them. With mu = -1 (SSIM's lower bound) the worst
reconstructed pixels get the largest weight; as delta grows every weight tends to gamma and the loss to
gamma * L. ``step`` counts fractional epochs, as the official code does: it adds 1 / batches_per_epoch
before every loss call, so the first call already has step = 1 / batches_per_epoch.
"""
import math

import torch
from torch import nn

from pspl_nb.ssim import MOMENTS, ssim_map

BASES = ("l1", "l2", "charbonnier")
SSIM_MODES = ("paper", "official")
WEIGHTS = ("pixel", "mean", "contrast")


def check_schedule(gamma: float, alpha: float, beta: float, step: float = 0.0) -> None:
    """Raise ValueError naming the first bad PSPL hyper-parameter (all must be finite and >= 0)."""
    for name, value in (("gamma", gamma), ("alpha", alpha), ("beta", beta), ("step", step)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"PSPL: {name}={value} must be finite and >= 0")
    if alpha == 0 and beta == 0:
        raise ValueError("PSPL: alpha=0 and beta=0 make delta = 0 at every step; set one of them > 0")


def attention(ms, step: float, gamma: float = 2.0, mu: float = -1.0, alpha: float = 1.0, beta: float = 0.0):
    """Attention map Ma of Eq. 7 with the width delta of Eq. 8.

    Args:
        ms: similarity values on [-1, 1], any shape (tensor, array or float).
        step: training age in epochs (fractional), >= 0.
        gamma: peak weight, >= 0 (paper: 2). mu: position of the peak (paper: -1, hard pixels first;
            +1 gives the classic easy-first order). alpha, beta: delta's growth per epoch and start
            (paper: 1 and 0), >= 0 and not both 0.

    Returns:
        Tensor shaped like ``ms`` with values on [0, gamma]. At delta = 0 (step = 0 with beta = 0)
        it is the limit: gamma where ms == mu, 0 elsewhere; so is a delta below the smallest normal
        number of ms's dtype (~1e-38 in float32), where (ms - mu) / delta would give 0 / 0.
    """
    check_schedule(gamma, alpha, beta, step)
    ms = torch.as_tensor(ms)
    dtype = ms.dtype if ms.is_floating_point() else torch.float32
    delta = alpha * step + beta
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


def contrast(ms, step: float, mu: float = -1.0, alpha: float = 1.0, beta: float = 0.0,
             batch: WholeBatch | None = None) -> torch.Tensor:
    """Eq. 7's attention divided by its mean over all elements: PSPL's pixel contrast at a constant scale.

    ``Ma / mean(Ma)`` has mean 1 whatever the age, so it keeps which pixels PSPL favours and drops the
    global loss scale that PSPL's rising mean weight adds (gamma cancels). Computed as ``N * softmax(z)``
    with ``z = -(ms - mu)^2 / delta^2``: stable even when every Ma underflows to 0 early in training. At
    delta = 0 (or so small that delta^2 is below the dtype's smallest normal) it is the limit: equal
    weights on the elements closest to mu, 0 elsewhere. Returns a tensor shaped like ``ms``, values >= 0, mean 1.
    ``batch`` (default ``WholeBatch()``) takes the maximum and the mean over the whole batch when ``ms`` is
    one DDP process's shard of it.
    """
    check_schedule(1.0, alpha, beta, step)
    batch = batch or WholeBatch()
    d2 = torch.as_tensor(ms).sub(mu).square_()
    delta = alpha * step + beta
    # (ms - mu)^2 <= 4 on SSIM's range, so from delta^2 >= 4 * tiny on z = -(ms - mu)^2 / delta^2 cannot overflow
    # (and 0 / 0 cannot happen); below it the limit is taken
    if delta * delta < 4 * torch.finfo(d2.dtype).tiny:
        w = (d2 == batch.min(d2.min())).to(d2.dtype)
    else:
        z = d2.div_(-delta * delta)
        w = z.sub_(batch.max(z.max())).exp_()
    return w.div_(batch.mean(w.mean()))


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


class PSPLLoss(nn.Module):
    """Eq. 10: ``base(Ma * sr, Ma * hr)`` with Ma from the SSIM map of (sr, hr).

    Args:
        base: "l1", "l2" or "charbonnier" (eps = 1e-3 * data_range).
        gamma, mu, alpha, beta: see ``attention``.
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

    def __init__(self, base="l1", gamma=2.0, mu=-1.0, alpha=1.0, beta=0.0, ssim="paper", padding="zeros",
                 data_range=1.0, weights="pixel", moments="float64", check_finite=True, batch=None):
        super().__init__()
        check_schedule(gamma, alpha, beta)
        if base not in BASES:
            raise ValueError(f"PSPLLoss: base={base!r}, expected one of {BASES}")
        if ssim not in SSIM_MODES:
            raise ValueError(f"PSPLLoss: ssim={ssim!r}, expected one of {SSIM_MODES}")
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"PSPLLoss: padding={padding!r}, expected 'zeros' or 'reflect'")
        if moments not in MOMENTS:
            raise ValueError(f"PSPLLoss: moments={moments!r}, expected one of {MOMENTS}")
        if weights not in WEIGHTS:
            raise ValueError(f"PSPLLoss: weights={weights!r}, expected one of {WEIGHTS}")
        self.base, self.gamma, self.mu, self.alpha, self.beta = base, gamma, mu, alpha, beta
        self.ssim, self.padding, self.data_range, self.weights = ssim, padding, data_range, weights
        self.moments, self.check_finite, self.batch = moments, check_finite, batch or WholeBatch()
        self.c = (1e-4, 9e-4) if ssim == "official" else ((0.01 * data_range) ** 2, (0.03 * data_range) ** 2)
        self.last_attention = None

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, step: float) -> torch.Tensor:
        if sr.shape != hr.shape:
            raise ValueError(f"PSPLLoss: sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
        # The map is a constant of the step (no gradient) and computed in at least float32 even under
        # bf16 autocast: SSIM's variances are small differences of large moments.
        wide = torch.promote_types(sr.dtype, torch.float32)
        with torch.no_grad(), torch.autocast(sr.device.type, enabled=False):
            ms = ssim_map(sr.detach().to(wide), hr.to(wide), self.data_range, self.padding, *self.c,
                          moments=self.moments)
            ma = attention(ms, step, self.gamma, self.mu, self.alpha, self.beta).to(sr.dtype)
            if self.weights == "mean":
                weight = self.batch.mean(ma.mean())
            elif self.weights == "contrast":
                weight = contrast(ms, step, self.mu, self.alpha, self.beta, self.batch).to(sr.dtype)
            else:
                weight = ma
        self.last_attention = ma
        loss = pixel_loss(sr, hr, self.base, 1e-3 * self.data_range, weight=weight)
        if self.check_finite and not torch.isfinite(loss):
            bad = "sr" if not torch.isfinite(sr).all() else "hr" if not torch.isfinite(hr).all() else "loss"
            raise ValueError(f"PSPLLoss: non-finite values in {bad} (step={step})")
        return loss

    def extra_repr(self) -> str:
        return (f"base={self.base}, gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}, beta={self.beta}, "
                f"ssim={self.ssim}, padding={self.padding}, data_range={self.data_range}, weights={self.weights}")
