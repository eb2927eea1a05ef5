"""Per-pixel SSIM map (Wang et al. 2004, Eq. 5 of the PSPL paper) for (N, C, H, W) tensors.

The Gaussian window is separable, so every local moment is a 1-D filtering along W followed by one along H.
Each 1-D filtering is written as a product with a small banded matrix ``A`` (``A @ v`` filters the vector
``v``) whose rows already hold the border rule: zero padding drops the taps that fall outside, reflect
padding folds them back in, "valid" keeps only the rows whose window lies inside. One matrix product per
axis then replaces padding plus a depthwise convolution: in float64 on a CPU, depthwise convolutions run
~10x slower than BLAS matrix products, and float64 is what the accuracy needs (see ``ssim_map``).

The moments are laid out (H, B, W), B = 4 moments x N x C, so that both filterings are single 2-D
products with contiguous outputs: along W, ``M (H*B, W) @ A_w.T``; along H, ``A_h @ M (H, B*W)``. On CPU
a side of ``2 * CHUNK`` pixels or more is cut into chunks of ~``CHUNK`` outputs, each multiplied by the
~``CHUNK + win_size`` inputs it needs only (the band of ``A``, not its zeros) and written straight into
its slice of the output; CUDA takes one dense product per axis (fewer launches win there).
On CPU the work buffers are kept between calls (see ``_scratch_buffers``); the map carries no gradient.
Timings against the previous depthwise-convolution version and peer libraries: bench/REPORT.md.
"""
import functools
import threading

import torch
import torch.nn.functional as F

PADDINGS = ("zeros", "reflect", "valid")
MOMENTS = ("float64", "float32")
CHUNK = 32  # outputs per product on CPU: the band's ~CHUNK + 11 inputs instead of the whole side (bench/REPORT.md)
SCRATCH_MAX = 2**22  # elements (32 MB in float64) of each reusable CPU scratch buffer; larger calls allocate
_scratch = threading.local()


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D Gaussian taps, shape (size,), normalised to sum 1 (the paper's circular window is its outer product)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def filter_matrix(n: int, padding: str = "zeros", win_size: int = 11, sigma: float = 1.5,
                  dtype=torch.float64, device=None) -> torch.Tensor:
    """The 1-D Gaussian filtering of a length-``n`` signal as a matrix ``A``: ``A @ v`` is the filtered ``v``.

    Shape (n, n) for "zeros" and "reflect" (torch's reflect: index -1 reads 1), (n - win_size + 1, n) for
    "valid". Built in float64 and cast, cached per arguments (a 96 x 96 matrix is 74 kB): shared, so
    never modify it in place.
    """
    g = gaussian_window(win_size, sigma, torch.float64)
    pad = win_size // 2
    rows = n - 2 * pad if padding == "valid" else n
    out = torch.arange(rows).repeat_interleave(win_size)  # output index of every (output, tap) pair
    src = out + torch.arange(win_size).repeat(rows)       # the input index it reads, before the border rule
    if padding != "valid":
        src = src - pad
    if padding == "reflect":
        src = src.abs()
        src = torch.where(src > n - 1, 2 * (n - 1) - src, src)
    taps = g.repeat(rows)
    inside = (src >= 0) & (src < n)  # zero padding: taps outside the signal contribute nothing
    a = torch.zeros(rows, n, dtype=torch.float64)
    a.index_put_((out[inside], src[inside]), taps[inside], accumulate=True)  # reflect can hit one input twice
    return a.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _axis_plan(n: int, padding: str, win_size: int, sigma: float, dtype, device) -> list:
    """The products that filter one axis of length ``n``: a list of ``(o0, o1, i0, i1, block)``, where
    outputs o0:o1 need only inputs i0:i1 and ``block = A[o0:o1, i0:i1]``. One piece (all of ``A``) on
    CUDA or below ``2 * CHUNK``; otherwise ~``CHUNK`` outputs each."""
    a = filter_matrix(n, padding, win_size, sigma, dtype, device)
    k = 1 if torch.device(device or "cpu").type != "cpu" else max(1, round(a.shape[0] / CHUNK))
    edges = [round(i * a.shape[0] / k) for i in range(k + 1)]
    pieces = []
    for o0, o1 in zip(edges[:-1], edges[1:]):
        used = a[o0:o1].ne(0).any(dim=0).nonzero().flatten()  # the band's columns for these rows
        i0, i1 = (0, n) if k == 1 else (int(used.min()), int(used.max()) + 1)
        pieces.append((o0, o1, i0, i1, a[o0:o1, i0:i1].contiguous()))
    return pieces


def _filter_last(m: torch.Tensor, plan: list, out: torch.Tensor) -> torch.Tensor:
    """(R, n) -> (R, n'): every row filtered (``m @ A.T``), written into ``out`` (R * n' elements or more)."""
    out = out[: m.shape[0] * plan[-1][1]].view(m.shape[0], plan[-1][1])
    for o0, o1, i0, i1, block in plan:
        torch.mm(m[:, i0:i1], block.T, out=out[:, o0:o1])
    return out


def _filter_first(m: torch.Tensor, plan: list, out: torch.Tensor) -> torch.Tensor:
    """(n, R) -> (n', R): every column filtered (``A @ m``), written into ``out`` (n' * R elements or more)."""
    out = out[: plan[-1][1] * m.shape[1]].view(plan[-1][1], m.shape[1])
    for o0, o1, i0, i1, block in plan:
        torch.mm(block, m[i0:i1], out=out[o0:o1])
    return out


def _scratch_buffers(numel: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 1-D work tensors of ``numel`` elements, reused from call to call on this thread (CPU only).

    On CPU a fresh multi-megabyte tensor comes back from the OS as new pages at every call: ~1700 page
    faults and ~20% of the map's time at the tiny model's 16 x 3 x 48 x 48. CUDA's caching allocator
    already reuses its memory. The buffers never leave ``ssim_map``: it returns a fresh tensor.
    """
    if device.type != "cpu" or numel > SCRATCH_MAX:
        return torch.empty(numel, dtype=dtype, device=device), torch.empty(numel, dtype=dtype, device=device)
    kept = getattr(_scratch, "buffers", None)
    if kept is None or kept[0].dtype != dtype or kept[0].numel() < numel:
        kept = _scratch.buffers = (torch.empty(numel, dtype=dtype), torch.empty(numel, dtype=dtype))
    return kept[0][:numel], kept[1][:numel]


@torch.no_grad()
def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    padding: str = "zeros",
    c1: float | None = None,
    c2: float | None = None,
    win_size: int = 11,
    sigma: float = 1.5,
    moments: str = "float64",
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
        moments: "float64" (default; float32 on MPS, which has no float64) or "float32", the dtype the
            local moments are accumulated in. float32 halves the memory traffic (~1.5x faster on CPU) but
            variances are small differences of large moments: on real images the map is then ~1e-4 off
            with range-matched constants, and with the official code's C2 = 9e-4 on [0, 255] data flat
            regions are rounding noise (as in the official float32 code). Not covered by the accuracy
            promise below; bench/REPORT.md measures what it buys.

    Returns:
        SSIM values on [-1, 1], same dtype as ``x``, a new tensor without gradient:
        the map is a constant for PSPL (Eq. 7 takes no gradient through it). Matches
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
    if moments not in MOMENTS:
        raise ValueError(f"ssim_map: moments={moments!r}, expected one of {MOMENTS}")
    n, c, h, w = x.shape
    if padding == "valid" and min(h, w) < win_size:
        raise ValueError(f"ssim_map: valid padding needs H, W >= {win_size}, got {(h, w)}")
    if padding == "reflect" and min(h, w) <= win_size // 2:
        raise ValueError(f"ssim_map: reflect padding needs H, W > {win_size // 2}, got {(h, w)}")
    c1 = (0.01 * data_range) ** 2 if c1 is None else c1
    c2 = (0.03 * data_range) ** 2 if c2 is None else c2

    # Variances are small differences of large moments: accumulated in float32 they are off by up to ~1e-3
    # in SSIM on real images (bench/REPORT.md), so the moments are float64 unless asked (MPS has none).
    work = torch.float32 if moments == "float32" or x.device.type == "mps" else torch.float64
    # Four moments: E[x], E[y], E[2xy] and E[d^2] of the difference d = x - y. Written with d, each
    # denominator is its numerator plus a non-negative term (see below) that is exactly 0 when x == y,
    # so the map is then exactly 1 (tests/test_properties.py) however the operations round.
    buf, spare = _scratch_buffers(4 * n * c * h * w, work, x.device)
    planes = buf.view(h, 4, n, c, w)
    mx, my, xy2, dd = planes.permute(1, 2, 3, 0, 4).unbind(0)  # (N, C, H, W) views of the (H, B, W) layout
    mx.copy_(x)
    my.copy_(y)
    zero = torch.zeros((), dtype=work, device=x.device)
    torch.addcmul(zero, mx, my, value=2, out=xy2)
    torch.sub(mx, my, out=dd).square_()
    # The two buffers in turn: moments -> W-filtered (spare) -> H-filtered (back into buf).
    m = _filter_last(buf.view(h * 4 * n * c, w), _axis_plan(w, padding, win_size, sigma, work, x.device), spare)
    w2 = m.shape[1]
    m = _filter_first(m.view(h, 4 * n * c * w2), _axis_plan(h, padding, win_size, sigma, work, x.device), buf)
    mx, my, e_2xy, e_dd = m.view(-1, 4, n, c, w2).permute(1, 2, 3, 0, 4).unbind(0)

    # SSIM = (2 mx my + C1)(2 cov + C2) / ((mx^2 + my^2 + C1)(var_x + var_y + C2)); with
    # mx^2 + my^2 = 2 mx my + (mx - my)^2 and var_x + var_y = 2 cov + var_d it is
    #      lum * cs / ((lum + (mx - my)^2) (cs + var_d)),   lum = 2 mx my + C1,  cs = 2 cov + C2.
    # Ten passes over the map, in place on the filtered moments (the map costs as much as the filtering).
    lum = spare[: mx.numel()].view(mx.shape[2], n, c, w2).permute(1, 2, 0, 3)  # same layout as the moments
    torch.addcmul(zero.add_(c1), mx, my, value=2, out=lum)
    cs = e_2xy.sub_(lum).add_(c1 + c2)                        # 2 E[xy] - (2 mx my + C1) + C1 + C2
    dm = mx.sub_(my)                                          # E[d] = mx - my
    cs_den = e_dd.addcmul_(dm, dm, value=-1).add_(cs)         # var_d + cs
    lum_den = torch.addcmul(lum, dm, dm, out=my)              # lum + (mx - my)^2
    out = torch.empty(lum.shape, dtype=x.dtype, device=x.device)  # (N, C, H', W'), the caller's layout
    return torch.div(lum.mul_(cs), lum_den.mul_(cs_den), out=out)


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
