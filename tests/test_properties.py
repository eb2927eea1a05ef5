"""Properties every numerical function must keep for any input hypothesis can find.

Arrays are small (a few thousand elements at most) and example counts modest, so the file runs in seconds on a shared
2-core machine; `deadline=None` because the first call of a torch op can take longer than hypothesis' default.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pspl_nb.metrics import psnr, ssim
from pspl_nb.pspl import BASES, PSPLLoss, Schedule
from pspl_nb.resize import imresize
from pspl_nb.ssim import ssim_map

FAST = settings(max_examples=60, deadline=None)

RANGES = st.sampled_from([1.0, 255.0])
# The two pairs of stabilisers the kit uses: None = range-matched (paper), (1e-4, 9e-4) = the official code's.
CONSTANTS = st.sampled_from([(None, None), (1e-4, 9e-4)])
MIN_SIDE = {"zeros": 1, "reflect": 6, "valid": 11}  # reflect padding of 5 needs 6 pixels; valid needs a window


def ssim_tolerance(L, c):
    """How far rounding can push SSIM past its exact value (and past +-1, a bound of exact arithmetic only).

    The variances are differences of moments of size L^2, each off by a few ulps, and C2 is all that keeps
    the denominator away from them: one ulp of L^2 over C2 is ~2e-13 with the paper's C2 = (0.03 L)^2 and
    ~2e-8 with the official C2 = 9e-4 on [0, 255] data. 100 of them leave room and still catch any formula
    error, which moves SSIM by far more."""
    c2 = (0.03 * L) ** 2 if c[1] is None else c[1]
    return 100 * np.finfo(np.float64).eps * L**2 / c2


# ---- attention (Eq. 7-8) --------------------------------------------------------------------------------

# float32 too: PSPLLoss passes the map in the network's dtype (float32 under float32 training).
ssims = st.sampled_from([32, 64]).flatmap(
    lambda bits: arrays(f"float{bits}", st.integers(1, 32), elements=st.floats(-1.0, 1.0, width=bits)))
gammas = st.floats(0.0, 4.0)
mus = st.floats(-1.0, 1.0)
alphas = st.floats(0.0, 3.0)
betas = st.floats(0.0, 3.0)
steps = st.floats(0.0, 100.0)


@FAST
@given(ssims, steps, gammas, mus, alphas, betas)
def test_attention_lies_on_zero_gamma(ms, step, gamma, mu, alpha, beta):
    assume(alpha > 0 or beta > 0)
    a = Schedule(gamma, mu, alpha, beta).weights(torch.from_numpy(ms), step)
    assert a.shape == ms.shape and a.dtype == torch.from_numpy(ms).dtype
    top = torch.tensor(gamma, dtype=a.dtype)  # gamma as the output's dtype can hold it: float32 rounds it
    assert bool(((a >= 0) & (a <= top)).all()), (a, gamma)


@FAST
@given(ssims, steps, gammas, alphas, betas)
def test_attention_with_mu_minus_one_never_rises_with_ssim(ms, step, gamma, alpha, beta):
    """Hard pixels first: a better-reconstructed pixel never weighs more than a worse one."""
    assume(alpha > 0 or beta > 0)
    ms = np.sort(ms)
    a = Schedule(gamma, -1.0, alpha, beta).weights(torch.from_numpy(ms), step).numpy()
    assert (np.diff(a) <= 0).all(), (ms, a)


@FAST
@given(ssims, steps, steps, gammas, mus, alphas, betas)
def test_attention_never_falls_as_training_ages(ms, s1, s2, gamma, mu, alpha, beta):
    """delta = alpha * step + beta only widens, so every weight only grows towards gamma (step 0 included)."""
    assume(alpha > 0 or beta > 0)
    early, late = sorted((s1, s2))
    ms = torch.from_numpy(ms)
    a_early = Schedule(gamma, mu, alpha, beta).weights(ms, early)
    a_late = Schedule(gamma, mu, alpha, beta).weights(ms, late)
    assert bool((a_late >= a_early).all()), (early, late, a_early, a_late)


@FAST
@given(ssims, st.floats(1e4, 1e9), gammas, mus, st.floats(0.01, 3.0), betas)
def test_attention_tends_to_gamma_for_large_steps(ms, step, gamma, mu, alpha, beta):
    """The limit, with its rate: 1 - exp(-u) <= u gives gamma - Ma <= gamma * ((ms - mu) / delta)^2 <= 4 gamma / delta^2."""
    delta = alpha * step + beta
    a = Schedule(gamma, mu, alpha, beta).weights(torch.from_numpy(ms), step).double().numpy()
    top = float(np.array(gamma, dtype=ms.dtype))  # gamma as the output's dtype holds it (float32 rounds it)
    bound = top * 4 / delta**2 + 4 * np.finfo(ms.dtype).eps * top  # plus rounding of exp and the product
    assert (np.abs(top - a) <= bound).all(), (top - a, bound)


# ---- SSIM map ---------------------------------------------------------------------------------------------


@st.composite
def image_pairs(draw, same=False, constant=False):
    """(x, y, data_range, padding): two float64 (N, C, H, W) tensors on [0, data_range] (or x twice)."""
    padding = draw(st.sampled_from(["zeros", "reflect", "valid"]))
    lo = MIN_SIDE[padding]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(lo, 16)), draw(st.integers(lo, 16)))
    L = draw(RANGES)
    if constant:
        x, y = (np.full(shape, draw(st.floats(0.0, L))) for _ in range(2))
    else:
        images = arrays(np.float64, shape, elements=st.floats(0.0, L))
        x = draw(images)
        y = x if same else draw(images)
    return torch.from_numpy(x), torch.from_numpy(y), L, padding


@FAST
@given(image_pairs(), CONSTANTS)
def test_ssim_map_lies_on_minus_one_one(pair, c):
    x, y, L, padding = pair
    s = ssim_map(x, y, L, padding, *c)
    tol = ssim_tolerance(L, c)
    assert bool(((s >= -1 - tol) & (s <= 1 + tol)).all()), (s.min(), s.max(), tol)


@FAST
@given(image_pairs(), CONSTANTS)
def test_ssim_map_is_symmetric(pair, c):
    x, y, L, padding = pair
    # Exact in exact arithmetic and here too, as far as the convolution sums each channel group the same way;
    # a tolerance keeps the test from depending on how a backend orders those sums.
    torch.testing.assert_close(ssim_map(x, y, L, padding, *c), ssim_map(y, x, L, padding, *c), rtol=0, atol=1e-12)


@FAST
@given(image_pairs(same=True), CONSTANTS)
def test_ssim_map_of_an_image_with_itself_is_one(pair, c):
    x, y, L, padding = pair
    s = ssim_map(x, y, L, padding, *c)
    # Numerator and denominator are then the same rounded products (2ab == a*a + b*b in floats when a == b).
    assert bool((s == 1).all()), s


@FAST
@given(image_pairs(constant=True), CONSTANTS)
def test_ssim_map_is_finite_for_constant_images(pair, c):
    """No variance at all: C1 and C2 keep the ratio defined; inside the image only luminance differs."""
    x, y, L, padding = pair
    s = ssim_map(x, y, L, padding, *c)
    assert bool(torch.isfinite(s).all())
    c1 = (0.01 * L) ** 2 if c[0] is None else c[0]
    a, b = x.flatten()[0].item(), y.flatten()[0].item()
    if padding == "valid":  # every window lies inside, so the map is the luminance term everywhere
        luminance = (2 * a * b + c1) / (a * a + b * b + c1)
        torch.testing.assert_close(s, torch.full_like(s, luminance), rtol=0, atol=ssim_tolerance(L, c))


# ---- PSPL loss (Eq. 10) -----------------------------------------------------------------------------------


@st.composite
def loss_cases(draw, same=False):
    """A PSPLLoss with any valid settings and (sr, hr, step); values far outside [0, L] included (a network's
    output is unclamped). |v| <= 1e6: much beyond ~1e150 the SSIM moments x^2 overflow float64."""
    alpha, beta = draw(alphas), draw(betas)
    assume(alpha > 0 or beta > 0)
    padding = draw(st.sampled_from(["zeros", "reflect"]))
    L = draw(RANGES)
    loss = PSPLLoss(Schedule(draw(gammas), draw(mus), alpha, beta), base=draw(st.sampled_from(BASES)),
                    ssim=draw(st.sampled_from(["paper", "official"])), padding=padding, data_range=L,
                    weights=draw(st.sampled_from(["pixel", "mean", "contrast"])))
    lo = MIN_SIDE[padding]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(lo, 12)), draw(st.integers(lo, 12)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    images = arrays(dtype, shape, elements=st.floats(-1e6, 1e6, width=32))
    sr = draw(images)
    hr = sr.copy() if same else draw(images)
    return loss, torch.from_numpy(sr), torch.from_numpy(hr), draw(steps)


@FAST
@given(loss_cases())
def test_pspl_loss_is_finite_and_non_negative(case):
    loss, sr, hr, step = case
    value = loss(sr, hr, step).item()
    assert math.isfinite(value) and value >= 0, (value, loss)


@FAST
@given(loss_cases(same=True))
def test_pspl_loss_is_zero_when_sr_equals_hr(case):
    loss, sr, hr, step = case
    value = loss(sr, hr, step).item()
    if loss.base == "charbonnier":  # sqrt(0 + eps^2): its floor is eps, not 0
        assert value == pytest.approx(1e-3 * loss.data_range, rel=1e-5)
    else:
        assert value == 0, (value, loss)


# ---- benchmark metrics ------------------------------------------------------------------------------------


@st.composite
def uint8_pairs(draw, min_side=1):
    """(a, b, scale, y_channel): uint8 (H, W, C) images, C = 1 or 3, large enough for `scale` shaved pixels."""
    scale = draw(st.integers(0, 4))
    lo = max(2 * scale + min_side, 1)
    shape = (draw(st.integers(lo, lo + 8)), draw(st.integers(lo, lo + 8)), draw(st.sampled_from([1, 3])))
    images = arrays(np.uint8, shape)
    a = draw(images)
    # Often b is a with a few pixels changed, so "nearly identical" pairs (and shaved-off changes) come up.
    if draw(st.booleans()):
        b = a.copy()
        for _ in range(draw(st.integers(0, 3))):
            i, j, k = (draw(st.integers(0, n - 1)) for n in shape)
            b[i, j, k] = draw(st.integers(0, 255))
    else:
        b = draw(images)
    return a, b, scale, draw(st.booleans())


@FAST
@given(uint8_pairs())
def test_psnr_is_symmetric(pair):
    a, b, scale, y = pair
    assert psnr(a, b, scale, y) == psnr(b, a, scale, y)


def luma_sums(img):
    """1000 x 255 x (Y - 16) of BT.601, in exact integers: equal sums <=> equal Y."""
    return img.astype(np.int64) @ np.array([65481, 128553, 24966])


@FAST
@given(uint8_pairs())
def test_psnr_is_infinite_only_for_identical_images(pair):
    """Identical means identical where it is compared: inside the shave, and only the luma for y_channel on RGB.
    That last is a projection: (0, 153, 0) and (255, 0, 119) have the same Y, so such different images score
    inf, as they do in every benchmark script."""
    a, b, scale, y = pair
    h, w = a.shape[:2]
    crop = (slice(scale, h - scale), slice(scale, w - scale))
    a, b = a[crop], b[crop]
    same = (luma_sums(a) == luma_sums(b)).all() if y and a.shape[2] == 3 else (a == b).all()
    value = psnr(pair[0], pair[1], scale, y)
    assert (value == math.inf) == bool(same), value
    assert not math.isnan(value)


@FAST
@given(uint8_pairs(min_side=11))
def test_ssim_of_an_image_with_itself_is_one(pair):
    a, _, scale, y = pair
    assert ssim(a, a.copy(), scale, y) == 1.0  # documented as exact: every map entry is x / x


# ---- MATLAB bicubic resize --------------------------------------------------------------------------------

SCALES = st.floats(0.05, 6.0)


@FAST
@given(st.integers(1, 16), st.integers(1, 16), SCALES, st.floats(-1e3, 1e3),
       st.sampled_from([torch.float32, torch.float64]))
def test_resize_keeps_a_constant(h, w, scale, value, dtype):
    """Each output pixel's weights are normalised to sum 1; only their rounding is left."""
    x = torch.full((1, 2, h, w), value, dtype=dtype)
    out = imresize(x, scale)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out, torch.full_like(out, value), rtol=32 * eps, atol=32 * eps)


@FAST
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 20), st.integers(1, 20), SCALES)
def test_resize_output_shape_is_ceil_of_input_times_scale(n, c, h, w, scale):
    out = imresize(torch.zeros(n, c, h, w, dtype=torch.float64), scale)
    assert out.shape == (n, c, math.ceil(h * scale), math.ceil(w * scale))


@st.composite
def smooth_images(draw):
    """(1, C, H, W) float64 on [0, 1]: 0.5 plus up to 3 cosines of amplitudes summing to <= 0.5, periods of at
    least 12 pixels along each axis. Not rescaled to fill [0, 1]: stretching a sliver of a long wave would make
    a "smooth" image as sharp as any other (single cosines of period 12 come back at > 44 dB)."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(8, 20)), draw(st.integers(8, 20))
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    img = torch.full((c, h, w), 0.5, dtype=torch.float64)
    for k in range(c):
        waves = draw(st.integers(1, 3))
        for _ in range(waves):
            fy, fx = draw(st.floats(-1 / 12, 1 / 12)), draw(st.floats(0, 1 / 12))
            phase, amp = draw(st.floats(0, 2 * math.pi)), draw(st.floats(0, 0.5 / waves))
            img[k] += amp * torch.cos(2 * math.pi * (fy * yy + fx * xx) + phase)
    return img[None]


@FAST
@given(smooth_images(), st.integers(2, 4))
def test_resize_up_then_down_returns_a_smooth_image(x, s):
    up = imresize(x, s)
    # Down by out_shape, not scale=1/s: ceil(s * H * (1 / s)) can round up past H (the docstring's caveat).
    back = imresize(up, out_shape=tuple(x.shape[-2:]))
    mse = ((back - x) ** 2).mean().item()
    assert mse == 0 or 10 * math.log10(1 / mse) > 40, 10 * math.log10(1 / mse)
