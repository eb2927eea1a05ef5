"""Per-pixel SSIM map (Wang et al. 2004; Eq. 3-5 of the PSPL paper) for (N, C, H, W) tensors.

With G the 11 x 11 Gaussian window (sigma 1.5, sum 1) and ``*`` filtering by it, at every pixel::

    mu_x = G * x        var_x = G * x^2 - mu_x^2        cov = G * (x y) - mu_x mu_y      (same for y)

    SSIM = l * cs,    l  = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)       luminance
                      cs = (2 cov + C2) / (var_x + var_y + C2)               contrast and structure

    C1 = (0.01 L)^2,  C2 = (0.03 L)^2,  L = the data's dynamic range.

Three functions compute it:

- ``ssim_map_readable``: the equation as written, with padded depthwise 11 x 11 convolutions in float64.
  Short and obviously right; the readable path, and what the fast path is tested against.
- ``ssim_map``: the fast path, the one the kit uses. Same map (to ~1e-12 in float64, tests/test_ssim.py),
  computed with banded matrix products, chunked on CPU, in reused buffers (see its helpers below).
- ``ssim_map_dense``: the official PSPL code's version (float32 raw moments, fixed constants), kept to
  compare with.

docs/method.md#ssim-map explains the terms and what C1 and C2 do; bench/REPORT.md section 1 times the paths
against peer libraries.
"""
import functools
import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F

PADDINGS = ("zeros", "reflect", "valid")
MOMENTS = ("float64", "float32")
CHUNK = 32  # outputs per product on CPU: the band's ~CHUNK + 11 inputs instead of the whole side (bench/REPORT.md)
SCRATCH_MAX = 2**22  # elements (32 MB in float64) of each reusable CPU scratch buffer; larger calls allocate
_scratch = threading.local()


@contextmanager
def ieee_float32():
    """Inside: float32 matrix products and convolutions in IEEE float32 on CUDA, whatever TF32 setting the run
    chose (``RunConfig.tf32``); outside, the run's setting again.

    TF32 keeps 10 bits of each float32 factor. The SSIM map's variances are small differences of large
    moments (``ssim_map``), so float32 moments computed in TF32 would be off by far more than float32's own
    rounding; float64 moments are not affected by TF32 at all. The flags are process-wide and only read
    by CUDA kernels: on other devices this changes nothing.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D Gaussian taps, shape (size,), normalised to sum 1 (the paper's circular window is its outer product)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _check_args(name, x, y, data_range, padding, c1, c2, win_size, moments="float64") -> tuple[float, float]:
    """Raise ValueError naming the first bad argument; return (c1, c2) with the range-matched defaults filled in."""
    if x.shape != y.shape:
        raise ValueError(f"{name}: x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected (N, C, H, W), got shape {tuple(x.shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"{name}: padding={padding!r}, expected one of {PADDINGS}")
    if not data_range > 0:
        raise ValueError(f"{name}: data_range={data_range} must be > 0")
    if moments not in MOMENTS:
        raise ValueError(f"{name}: moments={moments!r}, expected one of {MOMENTS}")
    h, w = x.shape[-2:]
    if padding == "valid" and min(h, w) < win_size:
        raise ValueError(f"{name}: valid padding needs H, W >= {win_size}, got {(h, w)}")
    if padding == "reflect" and min(h, w) <= win_size // 2:
        raise ValueError(f"{name}: reflect padding needs H, W > {win_size // 2}, got {(h, w)}")
    return ((0.01 * data_range) ** 2 if c1 is None else c1), ((0.03 * data_range) ** 2 if c2 is None else c2)


# ---- the readable path --------------------------------------------------------------------------------------

@torch.no_grad()
def ssim_map_readable(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, padding: str = "zeros",
                       c1: float | None = None, c2: float | None = None, win_size: int = 11,
                       sigma: float = 1.5) -> torch.Tensor:
    """The SSIM map exactly as the module docstring writes it: padding, an 11 x 11 depthwise convolution per
    moment, then the equation, all in float64. Arguments and result as ``ssim_map`` (no ``moments``).

    Slow (121 multiply-adds per pixel and moment) but plain; ``ssim_map`` must agree with it.
    """
    c1, c2 = _check_args("ssim_map_readable", x, y, data_range, padding, c1, c2, win_size)
    channels = x.shape[1]
    g = gaussian_window(win_size, sigma, torch.float64, x.device)
    window = torch.outer(g, g).expand(channels, 1, win_size, win_size)  # one circular window per channel

    def local_mean(t):  # G * t, channel by channel
        if padding != "valid":
            p = win_size // 2
            t = F.pad(t, (p, p, p, p), mode="constant" if padding == "zeros" else "reflect")
        return F.conv2d(t, window, groups=channels)

    x64, y64 = x.double(), y.double()
    mu_x, mu_y = local_mean(x64), local_mean(y64)
    var_x = local_mean(x64 * x64) - mu_x**2
    var_y = local_mean(y64 * y64) - mu_y**2
    cov = local_mean(x64 * y64) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return (luminance * contrast_structure).to(x.dtype)


# ---- the fast path ------------------------------------------------------------------------------------------

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
        the map is a constant for PSPL (Eq. 7 takes no gradient through it). Equal to
        ``ssim_map_readable`` to ~1e-12 in float64, and to ``skimage.metrics.structural_similarity(
        full=True, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)`` wherever
        the window lies inside the image.

    The filtering runs in IEEE float32 or float64 whatever the process's TF32 setting (``ieee_float32``).

    How: the four moments x, y, 2xy, (x - y)^2 are laid out (H, 4 N C, W) in one buffer, each axis is
    filtered by one matrix product (``filter_matrix``), and SSIM is evaluated in place on the result.
    """
    c1, c2 = _check_args("ssim_map", x, y, data_range, padding, c1, c2, win_size, moments)
    # Variances are small differences of large moments: accumulated in float32 they are off by up to ~1e-3
    # in SSIM on real images (bench/REPORT.md), so the moments are float64 unless asked (MPS has none).
    work = torch.float32 if moments == "float32" or x.device.type == "mps" else torch.float64
    n, c, h, w = x.shape
    buf, spare = _scratch_buffers(4 * n * c * h * w, work, x.device)
    _pixel_moments(x, y, buf.view(h, 4, n, c, w))
    with ieee_float32():  # float32 moments stay IEEE float32 on CUDA (TF32 would round the products' factors)
        filtered = _filter_moments(buf, spare, h, 4 * n * c, w, padding, win_size, sigma)  # (H', 4 N C, W') in buf
    return _ssim_from_moments(filtered.view(filtered.shape[0], 4, n, c, -1), spare, c1, c2, x.dtype)


@functools.lru_cache(maxsize=64)
def filter_matrix(n: int, padding: str = "zeros", win_size: int = 11, sigma: float = 1.5,
                  dtype=torch.float64, device=None) -> torch.Tensor:
    """The 1-D Gaussian filtering of a length-``n`` signal as a matrix ``A``: ``A @ v`` is the filtered ``v``.

    The window is separable, so filtering along W and then along H is the 2-D filtering. The rows of ``A``
    already hold the border rule: zero padding drops the taps that fall outside, reflect padding folds them
    back in, "valid" keeps only the rows whose window lies inside. One product then replaces padding plus a
    depthwise convolution: in float64 on a CPU, depthwise convolutions run ~10x slower than BLAS products.

    Shape (n, n) for "zeros" and "reflect" (torch's reflect: index -1 reads 1), (n - win_size + 1, n) for
    "valid". Built in float64 and cast, cached per arguments (a 96 x 96 matrix is 74 kB): shared, so
    never modify it in place.
    """
    with torch.inference_mode(False):  # cached: a normal tensor even when first asked for in inference mode
        return _banded_matrix(n, padding, win_size, sigma).to(dtype=dtype, device=device)


def _banded_matrix(n: int, padding: str, win_size: int, sigma: float) -> torch.Tensor:
    """``filter_matrix`` in float64 on the CPU."""
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
    return a


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
        # normal tensors even when made under inference mode (evaluation): later calls write into them
        with torch.inference_mode(False):
            kept = _scratch.buffers = (torch.empty(numel, dtype=dtype), torch.empty(numel, dtype=dtype))
    return kept[0][:numel], kept[1][:numel]


def _pixel_moments(x: torch.Tensor, y: torch.Tensor, planes: torch.Tensor) -> None:
    """Write x, y, 2xy and d^2 (d = x - y) into ``planes`` (H, 4, N, C, W), in its dtype.

    The layout (H, B, W), B = 4 moments x N x C, makes both filterings single 2-D products with contiguous
    outputs. d^2 instead of x^2 and y^2: written with it, each denominator of SSIM is its numerator plus a
    non-negative term that is exactly 0 when x == y, so the map is then exactly 1 however the operations
    round (tests/test_properties.py); see ``_ssim_from_moments``.
    """
    mx, my, xy2, dd = planes.permute(1, 2, 3, 0, 4).unbind(0)  # (N, C, H, W) views
    mx.copy_(x)
    my.copy_(y)
    zero = torch.zeros((), dtype=planes.dtype, device=planes.device)
    torch.addcmul(zero, mx, my, value=2, out=xy2)
    torch.sub(mx, my, out=dd).square_()


def _filter_moments(buf: torch.Tensor, spare: torch.Tensor, h: int, b: int, w: int, padding: str,
                    win_size: int, sigma: float) -> torch.Tensor:
    """Filter the (H, B, W) moments in ``buf`` along W (``M (H*B, W) @ A_w.T``, into ``spare``), then along H
    (``A_h @ M (H, B*W')``, back into ``buf``). Returns the (H', B, W') view of ``buf``."""
    dtype, device = buf.dtype, buf.device
    m = _filter_last(buf.view(h * b, w), _axis_plan(w, padding, win_size, sigma, dtype, device), spare)
    w2 = m.shape[1]
    m = _filter_first(m.view(h, b * w2), _axis_plan(h, padding, win_size, sigma, dtype, device), buf)
    return m.view(-1, b, w2)


@functools.lru_cache(maxsize=64)
def _axis_plan(n: int, padding: str, win_size: int, sigma: float, dtype, device) -> list:
    """The products that filter one axis of length ``n``: a list of ``(o0, o1, i0, i1, block)``, where
    outputs o0:o1 need only inputs i0:i1 and ``block = A[o0:o1, i0:i1]``.

    On CPU a side of ``2 * CHUNK`` pixels or more is cut into pieces of ~``CHUNK`` outputs, each multiplied
    by the ~``CHUNK + win_size`` inputs it needs (the band of ``A``, not its zeros): ``A`` has 11 non-zeros
    per row, so a dense product of a long side does mostly multiplications by 0. CUDA takes one dense
    product per axis: there fewer kernel launches win over fewer operations.
    """
    with torch.inference_mode(False):  # cached blocks: normal tensors even when made in inference mode
        return _plan_products(filter_matrix(n, padding, win_size, sigma, dtype, device), n, device)


def _plan_products(a: torch.Tensor, n: int, device) -> list:
    """``_axis_plan``'s pieces of the filter matrix ``a`` (n', n)."""
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
        torch.mm(m[:, i0:i1], block.T, out=out[:, o0:o1])  # straight into its slice: no concatenation
    return out


def _filter_first(m: torch.Tensor, plan: list, out: torch.Tensor) -> torch.Tensor:
    """(n, R) -> (n', R): every column filtered (``A @ m``), written into ``out`` (n' * R elements or more)."""
    out = out[: plan[-1][1] * m.shape[1]].view(plan[-1][1], m.shape[1])
    for o0, o1, i0, i1, block in plan:
        torch.mm(block, m[i0:i1], out=out[o0:o1])
    return out


def _ssim_from_moments(m: torch.Tensor, spare: torch.Tensor, c1: float, c2: float, dtype) -> torch.Tensor:
    """SSIM from the filtered moments ``m`` (H', 4, N, C, W'): E[x], E[y], E[2xy], E[d^2]. Returns (N, C, H', W').

    With mx^2 + my^2 = 2 mx my + (mx - my)^2 and var_x + var_y = 2 cov + var_d, the equation reads

        SSIM = lum * cs / ((lum + (mx - my)^2) (cs + var_d)),   lum = 2 mx my + C1,  cs = 2 cov + C2,

    evaluated in ten passes, in place on the moments (the map costs as much as the filtering), with one
    buffer for ``lum`` taken from ``spare``. The moments are consumed.
    """
    mx, my, e_2xy, e_dd = m.permute(1, 2, 3, 0, 4).unbind(0)  # (N, C, H', W') views
    h2, n, c, w2 = m.shape[0], m.shape[2], m.shape[3], m.shape[4]
    lum = spare[: mx.numel()].view(h2, n, c, w2).permute(1, 2, 0, 3)  # same layout as the moments
    torch.addcmul(torch.full((), c1, dtype=m.dtype, device=m.device), mx, my, value=2, out=lum)
    cs = e_2xy.sub_(lum).add_(c1 + c2)                        # 2 E[xy] - (2 mx my + C1) + C1 + C2
    dm = mx.sub_(my)                                          # E[d] = mx - my
    cs_den = e_dd.addcmul_(dm, dm, value=-1).add_(cs)         # var_d + cs
    lum_den = torch.addcmul(lum, dm, dm, out=my)              # lum + (mx - my)^2
    out = torch.empty(lum.shape, dtype=dtype, device=m.device)  # (N, C, H', W'), the caller's layout
    return torch.div(lum.mul_(cs), lum_den.mul_(cs_den), out=out)


# ---- the official code's map --------------------------------------------------------------------------------

def ssim_map_dense(x: torch.Tensor, y: torch.Tensor, c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """The official PSPL code's SSIM: dense 11x11 window, zero padding, raw moments, fixed c1/c2, in the
    input's dtype (float32 in its training). (N, C, H, W) -> same.

    Kept to compare with: bench/train_step.py times PSPL with it, tests check ``ssim_map`` against it.
    """
    c = x.shape[1]
    g = gaussian_window(11, 1.5, x.dtype, x.device)
    win = torch.outer(g, g).expand(c, 1, 11, 11)
    conv = lambda t: F.conv2d(t, win, padding=5, groups=c)  # noqa: E731
    mx, my = conv(x), conv(y)
    var_x, var_y, cov = conv(x * x) - mx * mx, conv(y * y) - my * my, conv(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (var_x + var_y + c2))
