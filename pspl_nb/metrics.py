"""The field's evaluation protocol (docs/protocol.md), as EDSR, BasicSR and KAIR report benchmark numbers.

1. quantise SR (and HR) to uint8: clamp, map to [0, 255], round;
2. Y channel of ITU-R BT.601 for RGB images;
3. shave ``scale`` pixels on every side;
4. PSNR with peak 255 / MATLAB-style SSIM (Wang et al. 2004), in float64.

EDSR-PyTorch (and so the official PSPL code) scores every *other* set, DIV2K validation included, on all
three RGB channels with ``scale + 6`` pixels shaved: ``edsr_psnr`` (docs/protocol.md#edsr-metric). The
paper's Fig. 4 (34.4 dB) and the published 34.61 dB of EDSR-baseline x2 are in that metric.

Layouts are explicit, never guessed: numpy arrays are (H, W, C) or (H, W); torch tensors are (C, H, W),
(1, C, H, W) or (H, W). Float inputs need ``data_range`` (1.0 for [0, 1] data, 255 for EDSR's
``rgb_range = 255``); uint8 inputs are already quantised and ignore it. C must be 1 or 3.
"""

import math

import numpy as np
import scipy.ndimage
import torch

_Y_COEFFS = np.array([65.481, 128.553, 24.966])  # BT.601 studio swing, R, G, B on [0, 1] -> Y on [16, 235]
_SSIM_RADIUS = 5  # 11 x 11 window
_SSIM_SIGMA = 1.5


def rgb_to_y(img, data_range=None):
    """BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (R, G, B on [0, 1]), MATLAB ``rgb2ycbcr``.

    Args:
        img: numpy array (H, W, 3), uint8 [0, 255] or float [0, data_range].
        data_range: peak of a float ``img``; ignored for uint8.
    Returns:
        float64 array (H, W), Y on [16, 235], not rounded (EDSR/BasicSR convention; MATLAB's uint8
        ``rgb2ycbcr`` would round it).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img must be a numpy (H, W, 3) array, got shape {getattr(img, 'shape', None)}")
    if img.dtype == np.uint8:
        data_range = 255.0
    elif data_range is None or not data_range > 0:
        raise ValueError(f"data_range must be positive for a {img.dtype} image, got {data_range!r}")
    return 16.0 + (img.astype(np.float64) / data_range) @ _Y_COEFFS


def to_uint8(x, data_range=None):
    """Quantise an image to uint8 (H, W, C) like EDSR's ``quantize``: ``round(clamp(x * 255 / range))``.

    Rounding is half-to-even (``np.round``, the same as ``torch.round``), computed in float64.

    Args:
        x: torch tensor (C, H, W), (1, C, H, W) or (H, W); or numpy array (H, W, C) or (H, W).
            uint8, or float on [0, data_range] (values outside are clamped).
        data_range: peak value of a float ``x``, e.g. 1.0 or 255; required for floats, ignored for uint8.
    Returns:
        numpy uint8 array (H, W, C), or (H, W) for a 2-D input.
    """
    if isinstance(x, torch.Tensor):
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be a tensor (C, H, W), (1, C, H, W) or (H, W), got shape {tuple(x.shape)}")
        x = x.detach().cpu()
        x = (x if x.dtype == torch.uint8 else x.double()).numpy()
        x = np.moveaxis(x, 0, -1) if x.ndim == 3 else x
    elif not isinstance(x, np.ndarray) or x.ndim not in (2, 3):
        raise ValueError(f"x must be a numpy (H, W, C) or (H, W) array, got shape {getattr(x, 'shape', None)}")
    if x.ndim == 3 and x.shape[2] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels (numpy (H, W, C), torch (C, H, W)), got {x.shape} as HWC")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be uint8 or float, got dtype {x.dtype}")
    if data_range is None or not data_range > 0:
        raise ValueError(f"data_range must be given and positive for a float image, got {data_range!r}")
    if np.isnan(x).any():
        raise ValueError("x contains NaN")
    return np.round(np.clip(x.astype(np.float64) * (255.0 / data_range), 0, 255)).astype(np.uint8)


def _prepare(sr, hr, scale, y_channel, data_range, shave=None):
    """Steps 1-3 of the protocol: two float64 (H', W', C') arrays on [0, 255], shaved (``shave`` or ``scale``)."""
    sr, hr = to_uint8(sr, data_range), to_uint8(hr, data_range)
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {sr.shape} and {hr.shape} (as HWC)")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 0:
        raise ValueError(f"scale (pixels shaved per side) must be an int >= 0, got {scale!r}")
    name = "scale" if shave is None else "shave"
    if shave is None:
        shave = scale
    elif isinstance(shave, bool) or not isinstance(shave, (int, np.integer)) or shave < 0:
        raise ValueError(f"shave={shave!r}: must be an int >= 0 (pixels per side)")
    h, w = sr.shape[:2]
    if 2 * shave >= min(h, w):
        raise ValueError(f"{name}={shave}: shaving it leaves nothing of an image of shape {sr.shape}")
    if y_channel and sr.ndim == 3 and sr.shape[2] == 3:
        sr, hr = rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None]
    # Grey images are compared as they are, as MATLAB scripts do (no Y of replicated channels).
    sr, hr = np.atleast_3d(sr).astype(np.float64), np.atleast_3d(hr).astype(np.float64)
    crop = (slice(shave, h - shave), slice(shave, w - shave))
    return sr[crop], hr[crop]


def psnr(sr, hr, scale, y_channel=True, data_range=None, shave=None):
    """PSNR in dB with peak 255: ``10 log10(255^2 / MSE)``, after the protocol's quantise / Y / shave.

    Args:
        sr, hr: images in any layout :func:`to_uint8` accepts, same size.
        scale: the SR scale; pixels shaved from every side unless ``shave`` says otherwise (0 for none).
        y_channel: compare BT.601 Y of RGB images (the benchmark convention); else all channels.
        data_range: peak value of float inputs (1.0 or 255).
        shave: pixels shaved per side; None = ``scale`` (benchmarks). EDSR-PyTorch's DIV2K metric is
            ``psnr(sr, hr, scale, y_channel=False, shave=scale + 6)`` (``edsr_psnr``).
    Returns:
        Python float; ``inf`` for identical images (after quantisation).
    """
    sr, hr = _prepare(sr, hr, scale, y_channel, data_range, shave)
    mse = float(np.mean((sr - hr) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def edsr_psnr(sr, hr, scale, data_range=None):
    """EDSR-PyTorch's PSNR for a non-benchmark set such as DIV2K validation (``utility.calc_psnr``): all
    channels as they are (RGB for RGB models), ``scale + 6`` pixels shaved per side, peak 255, in dB.

    The metric of the paper's Fig. 4 and of the 34.61 dB published for EDSR-baseline x2; it is *not* the
    benchmark metric (Y, shave = scale) of Table 1. Arguments as in :func:`psnr`.
    """
    return psnr(sr, hr, scale, y_channel=False, data_range=data_range, shave=scale + 6)


def _gaussian_window():
    d = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1)
    g = np.exp(-(d**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()  # outer(g, g) is MATLAB's fspecial('gaussian', 11, 1.5)


def _filter_valid(x, g):
    """2-D Gaussian filter of (H, W) x, 'valid' part only: (H - 10, W - 10)."""
    # Separable correlation; borders are computed with some padding and then cut away, so only
    # windows fully inside the image remain (MATLAB filter2(..., 'valid')).
    y = scipy.ndimage.correlate1d(scipy.ndimage.correlate1d(x, g, axis=0), g, axis=1)
    r = _SSIM_RADIUS
    return y[r:-r, r:-r]


def _ssim_single(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(sr, hr, scale, y_channel=True, data_range=None, shave=None):
    """MATLAB-style SSIM (Wang et al. 2004, ``ssim_index.m``) after the protocol's quantise / Y / shave.

    11 x 11 Gaussian window (sigma 1.5), valid filtering (no padding), float64 on [0, 255],
    C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, mean of the SSIM map. Equal to scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``.

    Args:
        sr, hr, scale, y_channel, data_range, shave: as in :func:`psnr`. Without ``y_channel`` the result
            is the mean over channels of per-channel SSIM.
    Returns:
        Python float in [-1, 1]; exactly 1.0 for identical images.
    """
    sr, hr = _prepare(sr, hr, scale, y_channel, data_range, shave)
    if min(sr.shape[:2]) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"ssim needs at least 11 x 11 pixels after shaving, got {sr.shape[:2]}")
    return float(np.mean([_ssim_single(sr[..., k], hr[..., k]) for k in range(sr.shape[2])]))


def scores_on_device(sr, hr, shave: int, y_channel: bool, edsr_shave: int | None = None) -> dict:
    """The protocol's PSNR and SSIM of one image computed where the model ran (a GPU scores a 2K DIV2K image
    in milliseconds; numpy on the host needs ~0.3 s for its SSIM alone).

    Args:
        sr, hr: float tensors (1, C, H, W) of uint8 values on [0, 255] (``sr`` already quantised: clamped
            and rounded), C = 1 or 3, on any device.
        shave: pixels shaved per side for ``psnr`` and ``ssim``. y_channel: score BT.601 Y of RGB.
        edsr_shave: also return ``edsr_psnr``, all channels with this shave (EDSR-PyTorch: scale + 6).
    Returns:
        dict of Python floats: psnr (dB), ssim, and edsr_psnr (dB) when asked. Equal to :func:`psnr`,
        :func:`ssim` and :func:`edsr_psnr` to ~1e-10 (float64 throughout; float32 on MPS, which has no float64).
    """
    def db(mse: float) -> float:
        return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)

    return {k: v.item() if k == "ssim" else db(v.item()) for k, v in _errors(sr, hr, shave, y_channel, edsr_shave).items()}


def scores_of_batch(sr, hr, shave: int, y_channel: bool, edsr_shave: int | None = None) -> dict:
    """``scores_on_device`` for N images of one shape at once, with nothing read back to the host.

    Args:
        sr, hr: float (quantised ``sr``) or uint8 tensors (N, C, H, W) of uint8 values on [0, 255], C = 1 or 3.
        shave, y_channel, edsr_shave: as in ``scores_on_device``.
    Returns:
        dict of float64 tensors (N,) on the images' device (float32 on MPS): edsr_psnr (dB, when asked), psnr
        (dB, inf for identical images) and ssim. Each equals ``scores_on_device`` of that image up to the
        order of float sums (~1e-12).
    """
    return {k: v if k == "ssim" else torch.log10(255.0**2 / v) * 10.0
            for k, v in _errors(sr, hr, shave, y_channel, edsr_shave).items()}


def _errors(sr, hr, shave: int, y_channel: bool, edsr_shave: int | None) -> dict:
    """Per image of (N, C, H, W) tensors of uint8 values: the squared error the PSNRs are made of (``edsr_psnr``
    when ``edsr_shave`` is given, then ``psnr``) and the mean SSIM (``ssim``), each a (N,) tensor on their device."""
    from pspl_nb.ssim import ssim_map

    wide = torch.float32 if sr.device.type == "mps" else torch.float64
    sr, hr = sr.to(wide), hr.to(wide)

    def shaved(t, k):
        return t[..., k : t.shape[-2] - k, k : t.shape[-1] - k]

    out = {}
    if edsr_shave is not None:
        out["edsr_psnr"] = (shaved(sr, edsr_shave) - shaved(hr, edsr_shave)).square().mean(dim=(1, 2, 3))
    if y_channel and sr.shape[1] == 3:
        coeffs = torch.tensor(_Y_COEFFS, dtype=wide, device=sr.device).view(1, 3, 1, 1)
        sr, hr = ((t / 255.0 * coeffs).sum(1, keepdim=True) + 16.0 for t in (sr, hr))
    sr, hr = shaved(sr, shave), shaved(hr, shave)
    if min(sr.shape[-2:]) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"ssim needs at least 11 x 11 pixels after shaving, got {tuple(sr.shape[-2:])}")
    out["psnr"] = (sr - hr).square().mean(dim=(1, 2, 3))
    out["ssim"] = ssim_map(sr, hr, 255.0, "valid", win_size=2 * _SSIM_RADIUS + 1, sigma=_SSIM_SIGMA).mean(dim=(1, 2, 3))
    return out
