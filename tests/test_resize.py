"""MATLAB-compatible bicubic: checked against closed forms, hand-computed weights, PIL and torch."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.integrate import quad
from skimage import data

from pspl_nb.resize import cubic, imresize, imresize_uint8, modcrop

torch.set_num_threads(1)

SCALES = [2, 3, 4, 0.5, 1 / 3, 0.37, 1.7]


def _psnr_uint8(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


# --- the kernel ---------------------------------------------------------------------------------------


def test_cubic_interpolates_at_integers():
    assert cubic(0.0) == 1.0
    for x in (-2.0, -1.0, 1.0, 2.0, 2.5, -3.0):
        assert cubic(x) == 0.0


def test_cubic_known_values_a_minus_half():
    # Keys a = -0.5 at |x| = 0.25, 0.75, 1.25, 1.75, worked out by hand: 222, 58, -18, -6 over 256.
    x = np.array([0.25, -0.75, 1.25, -1.75])
    np.testing.assert_array_equal(cubic(x), np.array([222, 58, -18, -6]) / 256)


@pytest.mark.parametrize("a", [-0.5, -0.75])
def test_cubic_integrates_to_one(a):
    integral, _ = quad(lambda t: cubic(t, a), -2, 2, points=[-1, 0, 1])
    assert integral == pytest.approx(1.0, abs=1e-12)


def test_cubic_keeps_the_input_type():
    x = np.linspace(-3, 3, 13)
    t = torch.from_numpy(x)
    assert isinstance(cubic(x), np.ndarray)
    assert isinstance(cubic(t), torch.Tensor)
    np.testing.assert_allclose(cubic(t).numpy(), cubic(x), rtol=0, atol=1e-15)


# --- sizes and invariants -----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_output_shape_is_ceil_of_scaled_input(scale):
    x = torch.rand(2, 3, 13, 17, dtype=torch.float64)
    assert imresize(x, scale).shape == (2, 3, math.ceil(13 * scale), math.ceil(17 * scale))


def test_out_shape_argument():
    x = torch.rand(1, 1, 13, 17)
    assert imresize(x, out_shape=(5, 40)).shape == (1, 1, 5, 40)


@pytest.mark.parametrize("scale", SCALES)
def test_constant_image_stays_constant(scale):
    x = torch.full((1, 2, 13, 17), 0.7, dtype=torch.float64)
    y = imresize(x, scale)
    torch.testing.assert_close(y, torch.full_like(y, 0.7), rtol=0, atol=1e-12)


def test_constant_with_anisotropic_out_shape():
    x = torch.full((1, 1, 20, 9), -3.0, dtype=torch.float64)
    y = imresize(x, out_shape=(7, 31))
    torch.testing.assert_close(y, torch.full_like(y, -3.0), rtol=0, atol=1e-12)


def test_scale_one_is_identity():
    x = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, 1), x, rtol=0, atol=0)


# --- hand-computed MATLAB weights -----------------------------------------------------------------------

# x0.5: kernel 0.5 * cubic(0.5 d), 8 taps at distances +-0.5, 1.5, 2.5, 3.5 from u = 2j + 0.5 (0-based):
# 0.5 * cubic(0.25, 0.75, 1.25, 1.75) = (111, 29, -9, -3) / 256. Out-of-range taps are mirrored
# half-sample (-1 -> 0, -2 -> 1, -3 -> 2, 8 -> 7, ...), which folds weights onto the border pixels.
DOWN_8_TO_4 = np.array(
    [
        [140, 102, 26, -9, -3, 0, 0, 0],
        [-12, 29, 111, 111, 29, -9, -3, 0],
        [0, -3, -9, 29, 111, 111, 29, -12],
        [0, 0, 0, -3, -9, 26, 102, 140],
    ]
) / 256

# x2: u = (p + 0.5) / 2 - 0.5 (0-based); even outputs take (-6, 58, 222, -18) / 256 at u-1.75 .. u+1.25,
# odd outputs the mirror image, again with half-sample mirrored borders.
UP_4_TO_8 = np.array(
    [
        [280, -24, 0, 0],
        [204, 58, -6, 0],
        [52, 222, -18, 0],
        [-18, 222, 58, -6],
        [-6, 58, 222, -18],
        [0, -18, 222, 52],
        [0, -6, 58, 204],
        [0, 0, -24, 280],
    ]
) / 256


def test_downscale_by_two_matches_hand_computed_weights():
    x = np.random.default_rng(0).normal(size=(8, 8))
    expected = DOWN_8_TO_4 @ x @ DOWN_8_TO_4.T
    got = imresize(torch.from_numpy(x)[None, None], 0.5)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_upscale_by_two_matches_hand_computed_weights():
    x = np.random.default_rng(1).normal(size=(4, 4))
    expected = UP_4_TO_8 @ x @ UP_4_TO_8.T
    got = imresize(torch.from_numpy(x)[None, None], 2)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4, 1.7])
def test_upsampling_reproduces_a_linear_ramp_in_the_interior(scale):
    n = 16
    i = np.arange(n, dtype=np.float64)
    x = 0.3 * i[:, None] - 1.1 * i[None, :] + 5.0
    y = imresize(torch.from_numpy(x)[None, None], scale)[0, 0].numpy()
    # Output pixel p sits at 0-based input coordinate (p + 0.5) / scale - 0.5.
    u = (np.arange(y.shape[0]) + 0.5) / scale - 0.5
    expected = 0.3 * u[:, None] - 1.1 * u[None, :] + 5.0
    inner = (u >= 1) & (u <= n - 2)  # all four taps inside the image, no mirroring
    np.testing.assert_allclose(y[np.ix_(inner, inner)], expected[np.ix_(inner, inner)], rtol=0, atol=1e-10)
    assert inner.sum() > y.shape[0] // 2


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 1.7, 4])
def test_float32_agrees_with_float64(scale):
    x = torch.rand(1, 3, 24, 19, dtype=torch.float64)
    y64 = imresize(x, scale)
    y32 = imresize(x.float(), scale)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=0, atol=1e-5)


def test_gradient_flows():
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, 1.7), (x,))


# --- uint8 path: rounding, PIL and torch ----------------------------------------------------------------


def test_uint8_rounds_half_away_from_zero():
    # Row (0, 1, 69, 0) upscaled x2: output 3 = (-18*0 + 222*1 + 58*69 - 6*0) / 256 = 16.5 exactly.
    # MATLAB rounds it to 17; numpy's half-to-even would give 16.
    img = np.array([[0, 1, 69, 0]], dtype=np.uint8)
    out = imresize_uint8(img, 2)
    assert out.shape == (2, 8) and out.dtype == np.uint8
    assert out[0, 3] == 17 and out[1, 3] == 17


def test_uint8_rounds_after_each_pass():
    # Column 0 = (0, 1, 69, 0), zeros elsewhere, x2. Rows go first (equal scales): intermediate row 3 is
    # (16.5, 0, 0, 0), stored by MATLAB as uint8 17. The column pass then gives 17 * 280/256 = 18.59 -> 19;
    # rounding only once at the end would give 16.5 * 280/256 = 18.05 -> 18.
    img = np.zeros((4, 4), dtype=np.uint8)
    img[:, 0] = [0, 1, 69, 0]
    assert imresize_uint8(img, 2)[3, 0] == 19


def test_uint8_clips_overshoot():
    img = np.zeros((8, 8), dtype=np.uint8)
    img[:, 4:] = 255  # a step edge: bicubic overshoots both ways
    x = imresize(torch.from_numpy(img).double()[None, None], 2)
    assert x.min() < 0 and x.max() > 255
    out = imresize_uint8(img, 2)
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("s", [2, 3, 4])
def test_close_to_pil_bicubic_when_shrinking(s):
    # PIL uses the same a = -0.5 antialiased kernel but truncates it at the borders instead of mirroring,
    # and works in fixed point. Measured on astronaut (RGB): 55.08 dB (x1/2), 54.74 (x1/3), 54.40 (x1/4).
    hr = modcrop(data.astronaut(), s)
    ours = imresize_uint8(hr, 1 / s)
    pil = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // s, hr.shape[0] // s), Image.BICUBIC))
    assert ours.shape == pil.shape
    assert _psnr_uint8(ours, pil) > 53.0


@pytest.mark.parametrize("s", [2, 4])
def test_torch_bicubic_is_another_degradation(s):
    # torch's default bicubic (a = -0.75, no antialiasing) is a different LR: measured on astronaut
    # 34.7 dB (x1/2) and 27.3 dB (x1/4) from MATLAB's. With antialias=True torch switches to PIL's
    # a = -0.5 filter and is as close as PIL: 56.4 dB (x1/2), 55.2 dB (x1/4).
    hr = modcrop(data.astronaut(), s)
    ours = imresize_uint8(hr, 1 / s)
    x = torch.from_numpy(hr).permute(2, 0, 1)[None].double()

    def torch_uint8(antialias):
        y = F.interpolate(x, scale_factor=1 / s, mode="bicubic", align_corners=False, antialias=antialias)
        return y.clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)

    assert _psnr_uint8(ours, torch_uint8(antialias=False)) < 36.0
    assert _psnr_uint8(ours, torch_uint8(antialias=True)) > 53.0


def test_uint8_keeps_layout():
    img = data.astronaut()[:30, :40]
    assert imresize_uint8(img, 0.5).shape == (15, 20, 3)
    assert imresize_uint8(img[:, :, 0], 0.5).shape == (15, 20)


# --- modcrop ------------------------------------------------------------------------------------------


def test_modcrop_numpy_and_torch():
    img = np.zeros((13, 17, 3), dtype=np.uint8)
    assert modcrop(img, 4).shape == (12, 16, 3)
    assert modcrop(img[:, :, 0], 3).shape == (12, 15)
    assert modcrop(torch.zeros(2, 3, 13, 17), 4).shape == (2, 3, 12, 16)
    assert modcrop(img, 1).shape == img.shape


def test_modcrop_keeps_top_left():
    img = np.arange(7 * 5).reshape(7, 5)
    np.testing.assert_array_equal(modcrop(img, 2), img[:6, :4])


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0, -2, float("nan"), float("inf"), True, "2"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        imresize(torch.rand(1, 1, 4, 4), scale)


def test_bad_arguments():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        imresize(torch.rand(3, 4, 4), 2)
    with pytest.raises(ValueError, match="dtype"):
        imresize(torch.ones(1, 1, 4, 4, dtype=torch.uint8), 2)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, 2, out_shape=(8, 8))
    with pytest.raises(ValueError, match="out_shape"):
        imresize(x, out_shape=(0, 8))
    with pytest.raises(ValueError, match="img"):
        imresize_uint8(np.zeros((4, 4), dtype=np.float32), 2)
    with pytest.raises(ValueError, match="scale"):
        modcrop(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="scale"):
        modcrop(np.zeros((4, 4)), 2.0)
    with pytest.raises(ValueError, match="img"):
        modcrop(np.zeros(4), 2)
