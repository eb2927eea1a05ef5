"""MATLAB-compatible bicubic resizing, the degradation every SR benchmark is built with.

MATLAB ``imresize(A, scale, 'bicubic')`` (docs/protocol.md#degradation) is reproduced exactly:

- Keys cubic kernel with a = -0.5, support 4 pixels;
- when shrinking (scale < 1) the kernel is stretched by 1/scale and scaled by ``scale`` (antialiasing);
- output pixel x (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)`` (pixel centres);
- taps outside the image are mirrored half-sample ("symmetric": ``... 2 1 | 1 2 ... n | n n-1 ...``);
- the weights of every output pixel are normalised to sum to 1;
- output size ``ceil(in * scale)``; the dimension with the smaller scale is resized first.

Each 1-D pass is a dense ``(out, in)`` weight matrix applied with a matmul, so the resize is
differentiable, runs on any device and is cheap for the patch sizes models see. The matrices are cached.
"""

import functools
import math
import numbers

import numpy as np
import torch

_KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input pixels, before antialias stretching


def cubic(x, a=-0.5):
    """Keys cubic convolution kernel (Keys 1981, eq. 15), the one MATLAB's ``'bicubic'`` uses.

    ``k(x) = (a+2)|x|^3 - (a+3)|x|^2 + 1`` for ``|x| <= 1``, ``a|x|^3 - 5a|x|^2 + 8a|x| - 4a`` for
    ``1 < |x| <= 2``, 0 beyond. ``a = -0.5`` (MATLAB, PIL); OpenCV and plain torch bicubic use -0.75.

    Args:
        x: distances in pixels; a numpy array, a torch tensor (any shape, float) or a Python number.
        a: the kernel's free parameter.
    Returns:
        k(x), same type and shape as ``x``.
    """
    absx = abs(x)
    near = ((a + 2) * absx - (a + 3)) * absx**2 + 1
    far = a * (((absx - 5) * absx + 8) * absx - 4)
    return near * (absx <= 1) + far * ((absx > 1) & (absx <= 2))


def _contributions(in_size, out_size, scale):
    """(out_size, in_size) float64 matrix of one 1-D MATLAB bicubic pass (MATLAB's ``contributions``)."""
    if scale < 1:  # antialiasing: a low-pass kernel as wide as the output pixel footprint
        width = _KERNEL_WIDTH / scale

        def kernel(d):
            return scale * cubic(scale * d)
    else:
        width, kernel = _KERNEL_WIDTH, cubic
    u = np.arange(1, out_size + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(math.ceil(width) + 2)  # (out, P) 1-based indices, some outside
    weights = kernel(u[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    # Half-sample mirror, as MATLAB: indices run 1..n, n..1 periodically.
    mirror = np.concatenate([np.arange(in_size), np.arange(in_size - 1, -1, -1)])
    cols = mirror[np.mod(taps.astype(np.int64) - 1, 2 * in_size)]
    matrix = np.zeros((out_size, in_size))
    # Mirrored taps can land on the same pixel; their weights add up.
    np.add.at(matrix, (np.repeat(np.arange(out_size), taps.shape[1]), cols.ravel()), weights.ravel())
    return matrix


# Small on purpose: a 2K-wide matrix is ~8 MB (float32) and evaluating whole images of many sizes on a GPU
# would otherwise pin hundreds of MB; training reuses one or two patch sizes.
@functools.lru_cache(maxsize=32)
def _weights(in_size, out_size, scale, dtype, device):
    # a normal tensor even when first asked for under inference mode (evaluation): training saves it for backward
    with torch.inference_mode(False):
        return torch.from_numpy(_contributions(in_size, out_size, scale)).to(dtype=dtype, device=device)


def _plan(in_hw, scale, out_shape):
    """Validate the size arguments; return MATLAB's passes as ``[(axis, out_size, scale), ...]``."""
    if (scale is None) == (out_shape is None):
        raise ValueError(f"give exactly one of scale and out_shape, got scale={scale!r} out_shape={out_shape!r}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (0 < scale < math.inf):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        scales = (float(scale), float(scale))
        out_hw = tuple(math.ceil(scale * n) for n in in_hw)
    else:
        pair = isinstance(out_shape, (tuple, list, torch.Size)) and len(out_shape) == 2
        if not pair or not all(isinstance(n, numbers.Integral) and n > 0 for n in out_shape):
            raise ValueError(f"out_shape must be two positive ints (H, W), got {out_shape!r}")
        out_hw = tuple(int(n) for n in out_shape)
        scales = tuple(o / i for o, i in zip(out_hw, in_hw))
    # Stable sort: with equal scales MATLAB resizes rows (H) first.
    order = sorted(range(2), key=lambda k: scales[k])
    return [(k - 2, out_hw[k], scales[k]) for k in order]


def _resize_axis(x, axis, out_size, scale):
    """Apply one 1-D pass along ``axis`` (-2 = H, -1 = W) of a (..., H, W) float tensor."""
    w = _weights(x.shape[axis], out_size, scale, x.dtype, x.device)
    return w @ x if axis == -2 else x @ w.T


def imresize(x, scale=None, out_shape=None):
    """Resize like MATLAB ``imresize(x, scale, 'bicubic')`` (antialiased when shrinking).

    Args:
        x: float tensor (N, C, H, W), float32 or float64, any value range (the resize is linear; values
            may overshoot the input range near edges, nothing is clamped). Differentiable.
        scale: positive number, the same for H and W; output size ``ceil(H * scale), ceil(W * scale)``
            exactly as MATLAB computes it (pass ``out_shape`` when a product like ``n * (1/3)`` must not
            round up).
        out_shape: ``(H_out, W_out)`` instead of ``scale``; the per-axis scale is then ``out / in``.
    Returns:
        Tensor (N, C, H_out, W_out), same dtype and device as ``x`` (also inside an autocast region).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a tensor (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor, got dtype {x.dtype}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have H, W >= 1, got shape {tuple(x.shape)}")
    # in x's own dtype even under autocast, which would round a float32 image to bf16 in the products
    with torch.autocast(x.device.type, enabled=False):
        for axis, out_size, s in _plan(tuple(x.shape[-2:]), scale, out_shape):
            x = _resize_axis(x, axis, out_size, s)
    return x


def imresize_uint8(img, scale=None, out_shape=None):
    """MATLAB ``imresize`` of a uint8 image, as used to make benchmark LR images.

    MATLAB keeps uint8 between its two 1-D passes, so the result is rounded (half away from zero, as a
    MATLAB cast) and clipped to [0, 255] after *each* pass, computed in float64.

    Args:
        img: numpy uint8 array (H, W, C) or (H, W), values [0, 255].
        scale, out_shape: as in :func:`imresize`.
    Returns:
        numpy uint8 array (H_out, W_out, C) or (H_out, W_out).
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(
            f"img must be a uint8 numpy array (H, W, C) or (H, W), got {type(img).__name__} "
            f"{getattr(img, 'dtype', '')} shape {getattr(img, 'shape', ())}"
        )
    x = torch.from_numpy(np.atleast_3d(img).astype(np.float64)).permute(2, 0, 1)  # (C, H, W)
    for axis, out_size, s in _plan(img.shape[:2], scale, out_shape):
        # Values are clipped to >= 0 first, where floor(v + 0.5) is round-half-away-from-zero.
        x = torch.floor(_resize_axis(x, axis, out_size, s).clamp(0, 255) + 0.5)
    out = x.permute(1, 2, 0).numpy().astype(np.uint8)
    return out[:, :, 0] if img.ndim == 2 else out


def modcrop(img, scale):
    """Crop H and W down to multiples of ``scale`` (keeps the top-left), so HR and LR align exactly.

    Args:
        img: numpy array (H, W, C) or (H, W), or torch tensor (..., H, W); any dtype.
        scale: positive int.
    Returns:
        A view of ``img`` with H, W reduced to ``H - H % scale``, ``W - W % scale``.
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if isinstance(img, np.ndarray) and img.ndim in (2, 3):
        h, w = img.shape[:2]
        return img[: h - h % scale, : w - w % scale]
    if isinstance(img, torch.Tensor) and img.ndim >= 2:
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    raise ValueError(
        f"img must be a numpy (H, W[, C]) array or a torch (..., H, W) tensor, got {type(img).__name__} "
        f"shape {tuple(getattr(img, 'shape', ()))}"
    )
