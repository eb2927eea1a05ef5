"""PSPL attention and loss against closed forms and the facts of docs/method.md and docs/official_code.md."""
import math

import numpy as np
import pytest
import torch

from pspl_nb.pspl import PSPLLoss, Schedule, attention, contrast, pixel_loss
from pspl_nb.ssim import ssim_map, ssim_map_dense


def test_attention_closed_form():
    ms = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    for step, gamma, mu, alpha, beta in [(1, 2, -1, 1, 0), (0.37, 1.5, -1, 0.3, 0.2), (4, 2, 1, 1, 0)]:
        delta = alpha * step + beta
        expected = [gamma * math.exp(-((m - mu) ** 2) / delta**2) for m in ms.tolist()]
        np.testing.assert_allclose(Schedule(gamma, mu, alpha, beta).weights(ms, step).numpy(), expected, rtol=1e-14)


@pytest.mark.parametrize("epoch, ratio", [(1, 20), (2, 2.1), (5, 1.13), (10, 1.03)])
def test_weight_ratio_flattens_as_reference_says(epoch, ratio):
    """docs/method.md#flattening: with alpha = 1, w(SSIM=0) / w(SSIM=1) is 20, 2.1, 1.13, 1.03 at epochs 1, 2, 5, 10."""
    w = attention(torch.tensor([0.0, 1.0]), epoch)
    assert (w[0] / w[1]).item() == pytest.approx(ratio, rel=0.01)


def test_first_iterations_are_nearly_frozen():
    """At iteration 100 of a 1000-iteration epoch (step 0.1) a fairly good pixel (SSIM 0.5) weighs < 1e-6."""
    assert attention(torch.tensor(0.5), 100 / 1000).item() < 1e-6


def test_limits():
    ms = torch.linspace(-1, 1, 11)
    assert torch.allclose(attention(ms, 1e6), torch.full_like(ms, 2.0))
    at_zero = attention(ms, 0.0)  # delta = 0: the limit, gamma at ms == mu and 0 elsewhere
    assert at_zero[0] == 2.0 and (at_zero[1:] == 0).all()
    assert (attention(ms, 3.0, gamma=0.0) == 0).all()


def pair(seed=0, n=2, c=3, h=24, w=20, data_range=1.0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(n, c, h, w, generator=g, dtype=torch.float64) * data_range
    sr = (hr + 0.1 * data_range * torch.randn(n, c, h, w, generator=g, dtype=torch.float64)).clamp(0, data_range)
    return sr.requires_grad_(), hr


@pytest.mark.parametrize("base", ["l1", "l2"])
def test_gradient_is_analytic_and_skips_the_attention(base):
    sr, hr = pair()
    loss_fn = PSPLLoss(base=base)
    loss = loss_fn(sr, hr, step=0.8)
    loss.backward()
    w, d, n = loss_fn.last_attention, (sr - hr).detach(), sr.numel()
    expected = w * torch.sign(d) / n if base == "l1" else 2 * w * w * d / n
    torch.testing.assert_close(sr.grad, expected, rtol=1e-12, atol=1e-15)


def test_loss_is_eq10_with_the_ssim_attention():
    sr, hr = pair()
    step = 1.7
    w = attention(ssim_map(sr.detach(), hr), step)
    expected = {"l1": (w * sr - w * hr).abs().mean(), "l2": ((w * sr - w * hr) ** 2).mean(),
                "charbonnier": torch.sqrt((w * sr - w * hr) ** 2 + 1e-6).mean()}
    for base, value in expected.items():
        assert PSPLLoss(base=base)(sr, hr, step).item() == pytest.approx(value.item(), rel=1e-12)


def test_late_training_is_gamma_times_l1():
    sr, hr = pair()
    assert PSPLLoss()(sr, hr, step=1e5).item() == pytest.approx(2 * pixel_loss(sr, hr).item(), rel=1e-9)


def test_official_mode_is_the_official_formula_on_255_data():
    sr, hr = pair(data_range=255.0)
    loss_fn = PSPLLoss(ssim="official", data_range=255.0)
    loss_fn(sr, hr, step=0.5)
    expected = attention(ssim_map_dense(sr.detach(), hr, c1=1e-4, c2=9e-4), 0.5)
    torch.testing.assert_close(loss_fn.last_attention, expected, rtol=0, atol=1e-9)


def test_official_constants_make_flat_regions_hard():
    """On [0, 255] data the L = 1 constants are ~65,000x too small: flat, slightly noisy regions score ~0."""
    g = torch.Generator().manual_seed(1)
    hr = 120 + torch.randn(1, 1, 40, 40, generator=g, dtype=torch.float64)
    sr = 120 + torch.randn(1, 1, 40, 40, generator=g, dtype=torch.float64)
    official = PSPLLoss(ssim="official", data_range=255.0)
    paper = PSPLLoss(ssim="paper", data_range=255.0)
    official(sr, hr, 1.0), paper(sr, hr, 1.0)
    ms_official = torch.log(official.last_attention / 2).neg().sqrt() - 1  # invert Eq. 7 at delta = 1
    ms_paper = torch.log(paper.last_attention / 2).neg().sqrt() - 1
    inner = (slice(None), slice(None), slice(5, -5), slice(5, -5))
    assert ms_official[inner].abs().mean() < 0.2 and ms_paper[inner].mean() > 0.9


def test_last_attention_shape_and_range():
    sr, hr = pair(n=3, c=1)
    loss_fn = PSPLLoss(Schedule(gamma=1.5))
    loss_fn(sr, hr, 2.0)
    a = loss_fn.last_attention
    assert a.shape == sr.shape and not a.requires_grad and a.min() >= 0 and a.max() <= 1.5


@pytest.mark.parametrize("kwargs, match", [
    (dict(gamma=-1.0), "gamma=-1.0"), (dict(alpha=-0.5), "alpha=-0.5"), (dict(beta=-2.0), "beta=-2.0"),
    (dict(alpha=0.0, beta=0.0), "alpha=0 and beta=0"), (dict(base="huber"), "base='huber'"),
    (dict(ssim="fast"), "ssim='fast'"), (dict(padding="edge"), "padding='edge'"),
    (dict(moments="float16"), "moments='float16'"),
])
def test_bad_hyperparameters_name_the_value(kwargs, match):
    schedule = {k: kwargs.pop(k) for k in ("gamma", "alpha", "beta") if k in kwargs}
    with pytest.raises(ValueError, match=match):
        PSPLLoss(Schedule(**schedule), **kwargs)


def test_bad_calls_name_the_problem():
    sr, hr = pair()
    with pytest.raises(ValueError, match="step=-1"):
        PSPLLoss()(sr, hr, -1)
    with pytest.raises(ValueError, match="shapes differ"):
        PSPLLoss()(sr, hr[..., :-1], 1.0)
    bad = sr.detach().clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite values in sr"):
        PSPLLoss()(bad, hr, 1.0)
    with pytest.raises(ValueError, match="step=inf"):
        Schedule().weights(torch.zeros(3), float("inf"))


def test_uniform_control_is_l1_times_the_mean_attention():
    sr, hr = pair()
    pspl, uniform = PSPLLoss(), PSPLLoss(weights="mean")
    pspl(sr, hr, 0.6)
    expected = pspl.last_attention.mean() * pixel_loss(sr, hr)
    assert uniform(sr, hr, 0.6).item() == pytest.approx(expected.item(), rel=1e-12)


def test_contrast_control_is_the_attention_over_its_mean():
    """Where nothing underflows, contrast = Ma / mean(Ma); its loss is mean((Ma / mean Ma) |sr - hr|)."""
    sr, hr = pair()
    pspl, ctrl = PSPLLoss(), PSPLLoss(weights="contrast")
    pspl(sr, hr, 3.0)
    w = pspl.last_attention / pspl.last_attention.mean()
    expected = (w * (sr - hr).abs()).mean()
    assert ctrl(sr, hr, 3.0).item() == pytest.approx(expected.item(), rel=1e-10)


def test_contrast_matches_a_log_domain_softmax_when_every_weight_underflows():
    """At age 0.01 (delta = 0.01) Ma = 2 exp(-(ms + 1)^2 / 1e-4) is 0 in float64 for every ms > -0.97; the
    normalised weights still exist: N * softmax(-(ms + 1)^2 / delta^2), computed here with scipy."""
    from scipy.special import softmax

    ms = torch.tensor([[0.2, 0.5], [0.9, 0.21]], dtype=torch.float64)
    assert attention(ms, 0.01).max() == 0
    z = -((ms.numpy() + 1) ** 2) / 0.01**2
    expected = ms.numel() * softmax(z)
    np.testing.assert_allclose(contrast(ms, 0.01).numpy(), expected, rtol=1e-12)
    assert contrast(ms, 0.01).mean().item() == pytest.approx(1.0)
    # delta = 0: the limit puts equal weight on the elements closest to mu
    np.testing.assert_array_equal(contrast(ms, 0.0).numpy(), [[4.0, 0.0], [0.0, 0.0]])


def test_float32_moments_change_the_loss_only_slightly():
    sr, hr = pair()
    sr, hr = sr.detach().float().requires_grad_(), hr.float()
    exact, fast = PSPLLoss(ssim="paper"), PSPLLoss(ssim="paper", moments="float32")
    assert fast(sr, hr, 1.0).item() == pytest.approx(exact(sr, hr, 1.0).item(), rel=1e-4)
    assert (fast.last_attention - exact.last_attention).abs().max() < 1e-3
