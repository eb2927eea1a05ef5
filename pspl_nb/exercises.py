"""What the notebooks ask a student to write or to test, and the checks that answer them.

- ``check_attention``: notebook 02's "your turn" cell asks for Eq. 7 in plain torch; the check compares the
  answer with the kit's ``pspl.attention`` on a grid of SSIM values and parameters and, when it is wrong,
  names the mistake (delta not squared, the official code's ``ms + 1`` for every mu, ...).
- ``first_step`` and ``compare_parameters``: notebook 04 writes one training step out by hand and compares
  the parameters it leaves with those of the trainer's ``train.train_step`` on the same batch and start.
- ``adam_step_sizes``: notebook 02's demonstration that Adam ignores a constant scale of the loss and that a
  rising one enlarges its steps, the way PSPL's mean weight rises from about 0 to gamma.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pspl_nb import pspl


def kit_attention(ms, delta: float, gamma: float = 2.0, mu: float = -1.0) -> torch.Tensor:
    """The kit's Eq. 7 at width ``delta`` (> 0): ``gamma * exp(-(ms - mu)^2 / delta^2)``, shaped like ``ms``.

    The working line notebook 02's "your turn" cell ships with; ``check_attention`` recognises it.
    """
    return pspl.attention(ms, delta, gamma, mu)


@dataclass
class Check:
    """The outcome of a check: ``verdict`` is "right", "kit" (right, but the kit's own function),
    "wrong", "error" or "missing"; ``message`` says why, in a few sentences. Displays as its message."""

    verdict: str
    message: str

    @property
    def ok(self) -> bool:
        """The answer gives the right numbers (the student's own or, for "kit", the kit's)."""
        return self.verdict in ("right", "kit")

    def __repr__(self) -> str:
        return self.message


# SSIM values, widths, peaks and centres the answer is tried on: the whole SSIM range, a narrow, a unit and a
# wide bell, two peaks, hard-first, easy-first and a centre inside the range (where the official line fails).
_MS = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)
_CASES = [(d, g, m) for d in (0.3, 1.0, 2.5) for g in (2.0, 0.5) for m in (-1.0, 1.0, 0.4)]

# Mistakes seen in Eq. 7, each as the function it computes instead: (what went wrong, formula).
_MISTAKES = (
    ("it divides by delta instead of delta squared: Eq. 7 has (Ms - mu)^2 / delta^2",
     lambda ms, d, g, m: g * torch.exp(-((ms - m) ** 2) / d)),
    ("it writes mu = -1 into the formula, as the official code does (`ssim + 1`): right for hard-first "
     "(mu = -1) only; with mu = +1 (easy first) it must use (Ms - mu)",
     lambda ms, d, g, m: g * torch.exp(-(((ms + 1) / d) ** 2))),
    ("it adds mu instead of subtracting it: the peak must sit at Ms = mu",
     lambda ms, d, g, m: g * torch.exp(-(((ms + m) / d) ** 2))),
    ("the exponent has lost its minus sign: the weights must fall away from the peak, never exceed gamma",
     lambda ms, d, g, m: g * torch.exp(((ms - m) / d) ** 2)),
    ("gamma is missing: the peak weight is gamma, not 1",
     lambda ms, d, g, m: torch.exp(-(((ms - m) / d) ** 2))),
    ("it has the normal density's 2 delta^2 in the denominator: Eq. 7 divides by delta^2 alone",
     lambda ms, d, g, m: g * torch.exp(-((ms - m) ** 2) / (2 * d * d))),
    ("it uses |Ms - mu| / delta without squaring it",
     lambda ms, d, g, m: g * torch.exp(-(ms - m).abs() / d)),
)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-10))


def check_attention(fn) -> Check:
    """Is ``fn(ms, delta, gamma=..., mu=...)`` the paper's Eq. 7, ``gamma * exp(-(ms - mu)^2 / delta^2)``?

    ``fn`` gets a float64 tensor of SSIM values on [-1, 1] (shape (21,)), a width delta > 0 and keyword
    arguments gamma (> 0) and mu (on [-1, 1]); it must return the weights, shaped like ``ms`` (a tensor or an
    array). It is tried on 18 combinations (delta 0.3, 1, 2.5; gamma 2, 0.5; mu -1, +1, 0.4) against the kit's
    ``pspl.attention`` with a relative tolerance of 1e-5. Returns a ``Check``: "right", "kit" (the answer still
    calls the kit's own function, as the cell ships), "missing" (returns None or ``...``), "error" (it raised,
    or changed ``ms`` in place) or "wrong", whose message names the mistake when it is a common one.
    """
    calls = []

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return wrapped

    # The shipped line calls exercises.kit_attention; an answer may also call pspl.attention directly.
    originals = {"kit_attention": globals()["kit_attention"], "attention": pspl.attention}
    globals()["kit_attention"] = spy("kit_attention", originals["kit_attention"])
    pspl.attention = spy("pspl.attention", originals["attention"])
    try:
        results = []
        for d, g, m in _CASES:
            ms = _MS.clone()
            try:
                out = fn(ms, d, gamma=g, mu=m)
            except Exception as err:  # the student's code: any error is an answer to explain
                return Check("error", f"Not yet: my_attention(ms, delta={d}, gamma={g}, mu={m}) raised "
                                      f"{type(err).__name__}: {err}")
            if out is None or out is Ellipsis:
                return Check("missing", "Not written yet: my_attention returns nothing. Write Eq. 7 in torch, "
                                        "gamma * exp(-(Ms - mu)^2 / delta^2), and run this cell again.")
            if not torch.equal(ms, _MS):
                return Check("error", "Not yet: my_attention changed its input ms in place (an operation ending "
                                      "in _ such as sub_ or div_ on ms). The SSIM map is used again later; "
                                      "compute on a new tensor.")
            out = torch.as_tensor(out)
            if out.shape != ms.shape:
                return Check("wrong", f"Not yet: for an input of shape {tuple(ms.shape)} my_attention returns "
                                      f"shape {tuple(out.shape)}. Eq. 7 works element by element: one weight "
                                      f"per SSIM value.")
            results.append((d, g, m, out))
    finally:
        globals()["kit_attention"] = originals["kit_attention"]
        pspl.attention = originals["attention"]
    expected = [originals["kit_attention"](_MS, d, g, m) for d, g, m, _ in results]
    if all(_close(out, ref) for (*_, out), ref in zip(results, expected)):
        if calls:
            return Check("kit", "Runs, and matches the kit, because it calls the kit's own Eq. 7 "
                                f"({calls[0]}). Replace that line with your own torch expression of Eq. 7 "
                                "and run this cell again.")
        return Check("right", f"Right: your Eq. 7 equals the kit's pspl.attention on {len(results)} settings "
                              "(delta 0.3, 1 and 2.5; gamma 2 and 0.5; mu -1, +1 and 0.4), hard-first and "
                              "easy-first alike.")
    for why, formula in _MISTAKES:
        if all(_close(out, formula(_MS, d, g, m)) for d, g, m, out in results):
            return Check("wrong", f"Not yet: {why}.")
    (d, g, m, out), ref = next(((r, e) for r, e in zip(results, expected) if not _close(r[3], e)))
    i = int((out.double() - ref).abs().argmax())
    return Check("wrong", f"Not yet: at Ms = {_MS[i].item():+.1f} with delta = {d}, gamma = {g}, mu = {m} your "
                          f"function gives {out.double()[i].item():.6g}, Eq. 7 gives {ref[i].item():.6g}. "
                          f"Check each part: the difference Ms - mu, its square, the division by delta^2, "
                          f"the minus sign, the factor gamma.")


# ---- one training step, written out -------------------------------------------------------------------------

def first_step(c):
    """What the trainer starts run ``c`` from: the model as ``train`` seeds and builds it, and the run's first
    training batch. Returns ``(model, lr, hr)``: lr (B, C, p, p) and hr (B, C, sp, sp) float32 on
    [0, c.rgb_range], exactly the tensors the trainer's first ``train_step`` receives (on the CPU)."""
    from pspl_nb.data import TrainPatches
    from pspl_nb.models import build_model

    torch.manual_seed(c.seed)
    model = build_model(c.model, c.scale, c.size, 1 if c.channels == "y" else 3, c.rgb_range)
    patches = TrainPatches(c.dataset, c.scale, c.patch, c.batch, c.iters_per_epoch, c.seed,
                           y_channel=c.channels == "y")
    low, high = zip(*(patches[(0, i)] for i in range(c.batch)))  # epoch 0, the first batch's indices
    to_range = c.rgb_range / 255.0
    return model, torch.stack(low).float().mul_(to_range), torch.stack(high).float().mul_(to_range)


def adam_for(model, c) -> torch.optim.Adam:
    """The optimiser the trainer gives run ``c``: Adam(lr, betas (0.9, adam_beta2), eps 1e-8)."""
    return torch.optim.Adam(model.parameters(), lr=c.lr * c.lr_mult, betas=(0.9, c.adam_beta2), eps=1e-8)


def compare_parameters(mine: torch.nn.Module, theirs: torch.nn.Module, before: torch.nn.Module) -> pd.DataFrame:
    """Parameter by parameter: are ``mine`` and ``theirs`` bit for bit equal (``torch.equal``), their largest
    difference, and how far the step moved each from ``before`` (the common start). One row per tensor."""
    rows = []
    for (name, a), b, p in zip(mine.named_parameters(), theirs.parameters(), before.parameters()):
        rows.append(dict(parameter=name, shape=tuple(a.shape), equal=torch.equal(a, b),
                         max_difference=(a - b).abs().max().item(), max_step=(a - p).abs().max().item()))
    return pd.DataFrame(rows)


# ---- Adam and the scale of the loss --------------------------------------------------------------------------

def pspl_mean_weight(ms_values, ages, schedule: pspl.Schedule = pspl.Schedule(), quantiles: int = 200) -> np.ndarray:
    """PSPL's global loss scale: the mean of Eq. 7 over ``ms_values`` (SSIM values on [-1, 1], any shape) at
    each age in ``ages`` (epochs, shape (T,)) on ``schedule``. The mean is taken over ``quantiles`` evenly spaced
    quantiles of the values, which stand for all of them at a fraction of the cost. Returns (T,) on [0, gamma]."""
    values = np.asarray(ms_values, dtype=np.float64).ravel()
    ms = torch.as_tensor(np.quantile(values, (np.arange(quantiles) + 0.5) / quantiles))
    return np.array([schedule.weights(ms, float(a)).mean().item() for a in ages])


def loss_scale_schedules(ms_values, steps: int = 2000, schedule: pspl.Schedule = pspl.Schedule()) -> dict:
    """Loss-scale schedules for ``adam_step_sizes``, each of length ``steps``: three constants (0.01, 1, 100),
    one so small that the gradients fall below Adam's eps (1e-10), and PSPL's mean weight over ``ms_values``
    on ``schedule`` (``pspl_mean_weight``) when an epoch is 40 iterations (the cpu profile) and 1000 (the
    paper's)."""
    t = np.arange(1, steps + 1)
    return {"constant 1": np.ones(steps), "constant 0.01": np.full(steps, 0.01),
            "constant 100": np.full(steps, 100.0), "constant 1e-10": np.full(steps, 1e-10),
            "PSPL, 40 it/epoch": pspl_mean_weight(ms_values, t / 40, schedule),
            "PSPL, 1000 it/epoch": pspl_mean_weight(ms_values, t / 1000, schedule)}


def adam_step_sizes(schedules: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, dim: int = 32,
                    batch: int = 16, seed: int = 0) -> pd.DataFrame:
    """Train one small problem with Adam once per loss-scale schedule and measure every step.

    The problem: a linear model of ``dim`` weights fitted with the L1 loss to a noisy linear teacher, a new
    random batch of ``batch`` examples every step (the same batches for every schedule). At step t the loss
    is ``scale_t * L1``, whose gradient ``scale_t * mean(sign(residual) * x)`` is written into ``.grad`` and
    handed to ``torch.optim.Adam``. All copies are one (S, dim) tensor under one optimiser: Adam works element
    by element, so the copies never interact. float64, so rounding plays no part.

    Args:
        schedules: {name: (T,) array of loss scales >= 0}, all the same length T.
        lr, betas, eps: Adam's settings (the kit's: eps 1e-8, betas (0.9, 0.999)).
    Returns:
        DataFrame with columns step (1..T), schedule, scale, step_size (root mean square of the step's change
        of the weights, divided by lr: about 1 when every weight moves by lr) and l1 (the unscaled loss of the
        batch, before the step).
    """
    names = list(schedules)
    scales = torch.tensor(np.stack([np.asarray(schedules[n], dtype=np.float64) for n in names]))
    if scales.ndim != 2 or (scales < 0).any() or not torch.isfinite(scales).all():
        raise ValueError("adam_step_sizes: schedules must be finite arrays >= 0 of one length")
    copies, steps = scales.shape
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(dim, generator=gen, dtype=torch.float64)
    xs = torch.randn(steps, batch, dim, generator=gen, dtype=torch.float64)
    ys = xs @ teacher + 0.1 * torch.randn(steps, batch, generator=gen, dtype=torch.float64)
    w = torch.zeros(copies, dim, dtype=torch.float64)
    adam = torch.optim.Adam([w], lr=lr, betas=betas, eps=eps)
    size, l1 = np.empty((steps, copies)), np.empty((steps, copies))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few hundred numbers: a second thread only adds waiting
    try:
        for t in range(steps):
            residual = xs[t] @ w.T - ys[t][:, None]  # (batch, copies)
            l1[t] = residual.abs().mean(0).numpy()
            w.grad = scales[:, t, None] * (residual.sign().T @ xs[t]) / batch  # d(scale * L1)/dw, (copies, dim)
            before = w.clone()
            adam.step()
            size[t] = ((w - before).square().mean(1).sqrt() / lr).numpy()
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(dict(step=np.tile(np.arange(1, steps + 1), copies), schedule=np.repeat(names, steps),
                             scale=scales.numpy().ravel(), step_size=size.T.ravel(), l1=l1.T.ravel()))


def step_size_summary(table: pd.DataFrame, baseline: str = "constant 1", split: int = 1000,
                      window: int = 25) -> pd.DataFrame:
    """Each schedule of an ``adam_step_sizes`` table against ``baseline`` (the unscaled loss), one row each:
    ``frozen_steps`` (steps that moved the weights by less than 1% of the baseline's step), ``largest_ratio``
    (the largest ratio of the two step sizes, each averaged over ``window`` steps), and the mean step size
    divided by the baseline's over steps 1..``split`` and after it. 1 = the same steps as the unscaled loss."""
    wide = table.pivot(index="step", columns="schedule", values="step_size")[list(dict.fromkeys(table.schedule))]
    ratio = wide.div(wide[baseline], axis=0)
    smooth = wide.rolling(window, min_periods=1).mean()
    early, late = wide.index <= split, wide.index > split
    return pd.DataFrame({"frozen_steps": (ratio < 0.01).sum(),
                         "largest_ratio": smooth.div(smooth[baseline], axis=0).max(),
                         f"steps 1-{split}": wide[early].mean() / wide[early][baseline].mean(),
                         f"steps {split + 1}-{wide.index.max()}": wide[late].mean() / wide[late][baseline].mean()})
