"""Evaluation protocol: checked against closed forms, hand-computed Y values and scikit-image."""

import math
import warnings

import numpy as np
import pytest
import scipy.signal
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pspl_nb.metrics import psnr, rgb_to_y, ssim, to_uint8
from pspl_nb.resize import imresize_uint8, modcrop

torch.set_num_threads(1)


def _y_by_hand(img):
    """BT.601 Y written out independently of the library: 16 + (65.481 R + 128.553 G + 24.966 B) / 255."""
    r, g, b = (img[..., k].astype(np.float64) for k in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


@pytest.fixture(scope="module")
def pair():
    """Astronaut HR (modcropped for x4) and its x4 bicubic down/up reconstruction: a realistic SR output."""
    hr = modcrop(data.astronaut(), 4)[:200, :240]
    sr = imresize_uint8(imresize_uint8(hr, 1 / 4), 4)
    return sr, hr


# --- colour conversion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rgb, y",
    [
        ((0, 0, 0), 16.0),
        ((255, 255, 255), 235.0),
        ((255, 0, 0), 16 + 65.481),
        ((0, 255, 0), 16 + 128.553),
        ((0, 0, 255), 16 + 24.966),
    ],
)
def test_rgb_to_y_primaries(rgb, y):
    img = np.array(rgb, dtype=np.uint8).reshape(1, 1, 3)
    out = rgb_to_y(img)
    assert out.dtype == np.float64 and out.shape == (1, 1)
    assert out[0, 0] == pytest.approx(y, abs=1e-12)
    assert rgb_to_y(img / 255.0, data_range=1.0)[0, 0] == pytest.approx(y, abs=1e-12)


def test_rgb_to_y_float_needs_data_range():
    with pytest.raises(ValueError, match="data_range"):
        rgb_to_y(np.zeros((2, 2, 3)))


# --- quantisation -------------------------------------------------------------------------------------


def test_to_uint8_layouts():
    hwc = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    chw = torch.from_numpy(hwc).permute(2, 0, 1).double() / 255
    np.testing.assert_array_equal(to_uint8(chw, 1.0), hwc)
    np.testing.assert_array_equal(to_uint8(chw[None], 1.0), hwc)
    np.testing.assert_array_equal(to_uint8(chw * 255, 255), hwc)
    np.testing.assert_array_equal(to_uint8(hwc / 255.0, 1.0), hwc)
    np.testing.assert_array_equal(to_uint8(hwc), hwc)
    assert to_uint8(chw[0], 1.0).shape == (5, 7)


def test_to_uint8_clamps_and_rounds_half_to_even():
    x = torch.tensor([[-3.0, 0.5, 1.5, 2.4999, 254.5, 300.0]])
    np.testing.assert_array_equal(to_uint8(x, 255), [[0, 0, 2, 2, 254, 255]])


def test_to_uint8_refuses_to_guess():
    with pytest.raises(ValueError, match="data_range"):
        to_uint8(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        to_uint8(np.zeros((3, 8, 8)), 1.0)  # a CHW numpy array is a layout mistake
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        to_uint8(torch.rand(2, 3, 4, 4), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.full((3, 4, 4), float("nan")), 1.0)
    with pytest.raises(ValueError, match="dtype"):
        to_uint8(np.zeros((4, 4), dtype=np.int32))


def test_quantisation_happens_before_the_metric():
    hr = np.random.default_rng(1).integers(20, 200, size=(32, 32, 3)).astype(np.uint8)
    below = torch.from_numpy(hr.astype(np.float64) + 0.4999).permute(2, 0, 1) / 255  # rounds back to hr
    above = torch.from_numpy(hr.astype(np.float64) + 0.5001).permute(2, 0, 1) / 255  # rounds to hr + 1
    assert psnr(below, hr, 2, data_range=1.0) == math.inf
    assert ssim(below, hr, 2, data_range=1.0) == 1.0
    assert psnr(above, hr, 2, data_range=1.0) == pytest.approx(20 * math.log10(255 / (219 / 255)), abs=1e-9)


# --- PSNR ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3, 10])
def test_psnr_constant_error_closed_form(d):
    hr = np.random.default_rng(2).integers(20, 200, size=(24, 20)).astype(np.uint8)
    sr = hr + np.uint8(d)
    assert psnr(sr, hr, 4) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)
    # On RGB, +d on every channel moves Y by d * 219 / 255.
    hr3, sr3 = np.dstack([hr] * 3), np.dstack([sr] * 3)
    assert psnr(sr3, hr3, 4) == pytest.approx(20 * math.log10(255 / (d * 219 / 255)), abs=1e-9)
    assert psnr(sr3, hr3, 4, y_channel=False) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_psnr_matches_skimage(pair, scale):
    sr, hr = pair
    c = slice(scale, -scale)
    expected_y = peak_signal_noise_ratio(_y_by_hand(hr)[c, c], _y_by_hand(sr)[c, c], data_range=255)
    expected_rgb = peak_signal_noise_ratio(hr[c, c], sr[c, c], data_range=255)
    got = psnr(sr, hr, scale)
    assert type(got) is float
    assert got == pytest.approx(expected_y, abs=1e-10)
    assert psnr(sr, hr, scale, y_channel=False) == pytest.approx(expected_rgb, abs=1e-10)
    assert 20 < got < 40  # a real, imperfect reconstruction


# --- SSIM ---------------------------------------------------------------------------------------------


def test_skimage_border_crop_equals_the_valid_map(pair):
    # The protocol's definition, written out with a 2-D 'valid' correlation (MATLAB ssim_index.m) ...
    sr, hr = pair
    a, b = _y_by_hand(sr)[4:-4, 4:-4][:60, :70], _y_by_hand(hr)[4:-4, 4:-4][:60, :70]
    d = np.arange(-5, 6)
    w = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()

    def f(x):
        return scipy.signal.correlate2d(x, w, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    matlab = np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2)))
    # ... equals skimage's full map with a 5-pixel border cropped, and the library's value.
    skimage_value = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert skimage_value == pytest.approx(matlab, abs=1e-10)
    assert ssim(sr[:68, :78], hr[:68, :78], 4) == pytest.approx(matlab, abs=1e-10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ssim_matches_skimage(pair, scale):
    sr, hr = pair
    c = slice(scale, -scale)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    expected_y = structural_similarity(_y_by_hand(sr)[c, c], _y_by_hand(hr)[c, c], **kw)
    expected_rgb = structural_similarity(
        sr[c, c].astype(np.float64), hr[c, c].astype(np.float64), channel_axis=2, **kw
    )
    got = ssim(sr, hr, scale)
    assert type(got) is float
    assert got == pytest.approx(expected_y, abs=1e-10)
    assert ssim(sr, hr, scale, y_channel=False) == pytest.approx(expected_rgb, abs=1e-10)
    assert 0.5 < got < 0.99


def test_ssim_torch_input_equals_numpy_input(pair):
    sr, hr = pair
    sr_t = torch.from_numpy(sr).permute(2, 0, 1)[None].float() / 255
    assert ssim(sr_t, hr, 4, data_range=1.0) == pytest.approx(ssim(sr, hr, 4), abs=1e-12)
    assert psnr(sr_t, hr, 4, data_range=1.0) == pytest.approx(psnr(sr, hr, 4), abs=1e-12)


# --- shave, identity, errors --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_shave_removes_exactly_scale_pixels(pair, scale):
    _, hr = pair
    garbage = np.random.default_rng(3).integers(0, 256, size=hr.shape).astype(np.uint8)
    ring = np.ones(hr.shape[:2], dtype=bool)
    ring[scale:-scale, scale:-scale] = False
    sr = np.where(ring[..., None], garbage, hr)
    assert psnr(sr, hr, scale) == math.inf
    assert ssim(sr, hr, scale) == 1.0
    # One pixel less shaved and the garbage counts.
    assert psnr(sr, hr, scale - 1) < 40
    assert ssim(sr, hr, scale - 1) < 1.0


def test_identical_images_give_inf_and_one_without_warnings(pair):
    _, hr = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(hr, hr.copy(), 4) == math.inf
        assert ssim(hr, hr.copy(), 4) == 1.0
        assert ssim(hr, hr.copy(), 4, y_channel=False) == 1.0
        assert ssim(hr[..., 0], hr[..., 0].copy(), 0) == 1.0


def test_errors_name_the_problem():
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(20, 20, 3\) and \(20, 21, 3\)"):
        psnr(a, np.zeros((20, 21, 3), dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="scale=10"):
        psnr(a, a, 10)
    with pytest.raises(ValueError, match="11 x 11"):
        ssim(a, a, 5)
    with pytest.raises(ValueError, match="scale"):
        psnr(a, a, 2.0)


# ---------------------------------------------------------------- EDSR-PyTorch's metric and device scoring


def calc_psnr_edsr(sr, hr, scale, rgb_range, benchmark):
    """EDSR-PyTorch's ``utility.calc_psnr`` re-derived from its description: difference over rgb_range; a
    benchmark set is scored on the luma-weighted difference (65.738, 129.057, 25.064) / 256 with ``scale``
    pixels shaved, any other set on all channels with ``scale + 6``; PSNR = -10 log10(mean squared diff)."""
    diff = (sr.double() - hr.double()) / rgb_range
    if benchmark:
        shave = scale
        if diff.size(1) > 1:
            diff = (diff * diff.new_tensor([65.738, 129.057, 25.064]).view(1, 3, 1, 1) / 256).sum(dim=1)
    else:
        shave = scale + 6
    valid = diff[..., shave:-shave, shave:-shave]
    return -10 * math.log10(valid.pow(2).mean().item())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_psnr_equals_edsr_pytorchs_calc_psnr_on_div2k(scale):
    from pspl_nb.metrics import edsr_psnr

    rng = np.random.default_rng(scale)
    hr = rng.integers(0, 256, (60, 84, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-12, 13, hr.shape), 0, 255).astype(np.uint8)
    t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())[None]  # noqa: E731
    expected = calc_psnr_edsr(t(sr), t(hr), scale, 255, benchmark=False)
    assert abs(edsr_psnr(sr, hr, scale) - expected) < 1e-6
    assert abs(psnr(sr, hr, scale, y_channel=False, shave=scale + 6) - expected) < 1e-6
    # the benchmark branch is the field's Y metric up to EDSR's rounded luma coefficients (~1e-4 dB here)
    assert abs(psnr(sr, hr, scale) - calc_psnr_edsr(t(sr), t(hr), scale, 255, benchmark=True)) < 5e-3
    # and the two metrics really differ: a DIV2K number is not comparable with a benchmark number
    assert abs(edsr_psnr(sr, hr, scale) - psnr(sr, hr, scale)) > 0.1


@pytest.mark.parametrize("channels, y", [(3, True), (3, False), (1, False)])
def test_scores_on_device_equal_the_numpy_protocol(channels, y):
    from pspl_nb.metrics import edsr_psnr, scores_on_device

    rng = np.random.default_rng(channels + y)
    hr = rng.integers(0, 256, (70, 90, channels), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())[None].float()  # noqa: E731
    got = scores_on_device(t(sr), t(hr), 3, y_channel=y, edsr_shave=9)
    assert got["psnr"] == pytest.approx(psnr(sr, hr, 3, y_channel=y), abs=1e-9)
    assert got["ssim"] == pytest.approx(ssim(sr, hr, 3, y_channel=y), abs=1e-9)
    assert got["edsr_psnr"] == pytest.approx(edsr_psnr(sr, hr, 3), abs=1e-9)


def test_shave_is_checked_like_scale():
    with pytest.raises(ValueError, match="shave=-1"):
        psnr(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8), 2, shave=-1)
    with pytest.raises(ValueError, match="shave=10: shaving it leaves nothing"):
        psnr(np.zeros((20, 20, 3), np.uint8), np.ones((20, 20, 3), np.uint8), 2, shave=10)
