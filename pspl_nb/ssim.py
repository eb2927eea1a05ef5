"""Per-pixel SSIM map (Wang et al. 2004, Eq. 5 of the PSPL paper) for (N, C, H, W) tensors.

The Gaussian window is separable, so the five local moments (mean of x, y, x^2, y^2, xy) are one
grouped 11-tap convolution along H and one along W: ~22 multiply-adds per pixel and moment instead of
the 121 of the dense 11x11 window the official PSPL code uses. Zero padding gives the same numbers as
the dense window (a zero-padded outer product is still separable).
"""
import torch
import torch.nn.functional as F

PADDINGS = ("zeros", "reflect", "valid")


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D Gaussian taps, shape (size,), normalised to sum 1 (the paper's circular window is its outer product)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    padding: str = "zeros",
    c1: float | None = None,
    c2: float | None = None,
    win_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """SSIM of every pixel's neighbourhood, one map per channel.

    Args:
        x, y: images (N, C, H, W), float32 or float64, values on [0, data_range].
        data_range: L, the dynamic range of the data (1.0 for [0, 1], 255.0 for [0, 255]).
        padding: "zeros" or "reflect" give a map of shape (N, C, H, W) ("same"); "valid" gives
            (N, C, H - win_size + 1, W - win_size + 1), the MATLAB / scikit-image interior.
        c1, c2: stabilisers; default (0.01 L)^2 and (0.03 L)^2. The official PSPL code passes
            c1 = 1e-4, c2 = 9e-4 whatever the range (see ``pspl.PSPLLoss``).
        win_size, sigma: Gaussian window, 11 taps and sigma 1.5 as in the paper.

    Returns:
        SSIM values on [-1, 1], same dtype as ``x`` (computed in float64). Matches
        ``skimage.metrics.structural_similarity(full=True, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=L)`` wherever the window lies inside the image.
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim_map: x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"ssim_map: expected (N, C, H, W), got shape {tuple(x.shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"ssim_map: padding={padding!r}, expected one of {PADDINGS}")
    if not data_range > 0:
        raise ValueError(f"ssim_map: data_range={data_range} must be > 0")
    n, c, h, w = x.shape
    if padding == "valid" and min(h, w) < win_size:
        raise ValueError(f"ssim_map: valid padding needs H, W >= {win_size}, got {(h, w)}")
    c1 = (0.01 * data_range) ** 2 if c1 is None else c1
    c2 = (0.03 * data_range) ** 2 if c2 is None else c2

    # Variances are small differences of large moments: accumulated in float32 they are off by ~1e-4
    # in SSIM on flat regions, so the moments are always float64 (MPS has none: float32 there).
    out_dtype = x.dtype
    work = torch.float32 if x.device.type == "mps" else torch.float64
    x, y = x.to(work), y.to(work)
    pad = win_size // 2
    if padding != "valid":
        mode = "constant" if padding == "zeros" else "reflect"
        x, y = (F.pad(t, (pad, pad, pad, pad), mode=mode) for t in (x, y))
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H + 2 pad, W + 2 pad)
    g = gaussian_window(win_size, sigma, work, x.device)
    k = 5 * c
    moments = F.conv2d(moments, g.view(1, 1, -1, 1).expand(k, 1, -1, 1), groups=k)
    moments = F.conv2d(moments, g.view(1, 1, 1, -1).expand(k, 1, 1, -1), groups=k)
    mx, my, mxx, myy, mxy = moments.split(c, dim=1)

    var_x, var_y, cov = mxx - mx * mx, myy - my * my, mxy - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (var_x + var_y + c2))
    return ssim.to(out_dtype)


def ssim_map_dense(x: torch.Tensor, y: torch.Tensor, c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """The official PSPL code's SSIM: dense 11x11 window, zero padding, raw moments, fixed c1/c2.

    Kept as the reference the fast ``ssim_map`` is tested and benchmarked against. (N, C, H, W) -> same.
    """
    c = x.shape[1]
    g = gaussian_window(11, 1.5, x.dtype, x.device)
    win = torch.outer(g, g).expand(c, 1, 11, 11)
    conv = lambda t: F.conv2d(t, win, padding=5, groups=c)  # noqa: E731
    mx, my = conv(x), conv(y)
    var_x, var_y, cov = conv(x * x) - mx * mx, conv(y * y) - my * my, conv(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (var_x + var_y + c2))

