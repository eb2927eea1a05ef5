"""The kit's SSIM map against peer libraries: time per call and how far each result is from the exact map.

Inputs are real photographs, not noise: crops of scikit-image's bundled images (HR) and a blurred, noisy
copy (SR: Gaussian blur sigma 1.2 + noise sigma 4/255, clipped), float32 on [0, 1], data_range 1, the
window 11 taps sigma 1.5 and C1 = 0.01^2, C2 = 0.03^2 everywhere. Noise images would hide what matters:
float32 moments lose the variance of flat regions (E[x^2] - E[x]^2 cancels), which noise does not have.

Every implementation is compared with the exact map: float64, from scipy's Gaussian filter on the same (float32-
rounded) inputs, in the output it gives: a "same" map with zero or reflect padding, the "valid" interior,
or a per-image mean of that interior. An implementation "gives the same values" when its largest absolute
difference is <= 1e-5, the kit's float32 accuracy contract (tests/test_ssim.py). Peers run in float32 (their
usual use) and with float64 inputs, where their convolutions then run in float64. piq needs torchvision;
where that does not import, the row says why. scikit-image (numpy, CPU) runs on CPU only.

    python -m bench.ssim_peers
    python -m bench.ssim_peers --device cuda --json bench/out/gpu/ssim_peers.json
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bench import timing
from pspl_nb.ssim import gaussian_window, ssim_map, ssim_map_dense

SHAPES = ((16, 3, 96, 96), (1, 3, 512, 512))
TOLERANCE = 1e-5
C1, C2 = 0.01**2, 0.03**2
DEPTHWISE = "separable depthwise conv, float64"  # depthwise_f64's row
IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photo_pair(shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(sr, hr) float32 arrays of ``shape`` (N, 3, H, W) on [0, 1]: random crops of bundled photographs."""
    from skimage import data, transform

    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    pictures = [getattr(data, name)() for name in IMAGES]
    hr = np.empty(shape, np.float64)
    for i in range(n):
        img = pictures[i % len(pictures)].astype(np.float64) / 255
        if img.shape[0] < h or img.shape[1] < w:  # only the 512 case can be larger than a picture
            img = transform.resize(img, (max(h, img.shape[0]), max(w, img.shape[1])), order=3)
        top, left = rng.integers(0, img.shape[0] - h + 1), rng.integers(0, img.shape[1] - w + 1)
        hr[i] = img[top:top + h, left:left + w, :c].transpose(2, 0, 1)
    sr = ndimage.gaussian_filter(hr, sigma=(0, 0, 1.2, 1.2)) + rng.normal(0, 4 / 255, shape)
    return np.clip(sr, 0, 1).astype(np.float32), np.clip(hr, 0, 1).astype(np.float32)


def exact_map(sr: np.ndarray, hr: np.ndarray, padding: str) -> np.ndarray:
    """float64 SSIM map (N, C, H, W) with scipy's separable Gaussian (11 taps: truncate 3.5 at sigma 1.5).

    padding "zeros" -> scipy mode "constant", "reflect" -> "mirror" (torch's reflect); "valid" = either, cropped.
    """
    mode = {"zeros": "constant", "reflect": "mirror", "valid": "mirror"}[padding]
    f = lambda a: ndimage.gaussian_filter(a, sigma=(0, 0, 1.5, 1.5), truncate=3.5, mode=mode, cval=0.0)  # noqa: E731
    x, y = sr.astype(np.float64), hr.astype(np.float64)
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    s = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return s[..., 5:-5, 5:-5] if padding == "valid" else s


def depthwise_f64(x, y):
    """The plain PyTorch way to the same float64 map, for comparison with the kit's banded products: the five
    moments zero-padded and filtered by two grouped 11-tap ``conv2d`` calls (separable window) in float64."""
    c = x.shape[1]
    x, y = (F.pad(t.double(), (5, 5, 5, 5)) for t in (x, y))
    m = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    g = gaussian_window(11, 1.5, torch.float64, x.device)
    m = F.conv2d(m, g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), groups=5 * c)
    m = F.conv2d(m, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1), groups=5 * c)
    mx, my, mxx, myy, mxy = m.split(c, dim=1)
    vx, vy, cov = mxx - mx * mx, myy - my * my, mxy - mx * my
    return ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))


def implementations(device) -> tuple[list, dict]:
    """([(name, input dtype, output, fn)], {peer: why it cannot run}). fn(x, y) takes (N, C, H, W) tensors.

    output: "map zeros" / "map reflect" / "map valid" / "mean valid" (per image, over C, H, W).
    """
    rows, missing = [], {}
    for dtype in (torch.float32, torch.float64):
        rows += [
            ("kit ssim_map", dtype, "map zeros", lambda x, y: ssim_map(x, y, 1.0, "zeros")),
            ("kit ssim_map", dtype, "map reflect", lambda x, y: ssim_map(x, y, 1.0, "reflect")),
            ("kit ssim_map", dtype, "map valid", lambda x, y: ssim_map(x, y, 1.0, "valid")),
        ]
    rows.append(("kit ssim_map_dense (official 11x11)", torch.float32, "map zeros",
                 lambda x, y: ssim_map_dense(x, y, C1, C2)))
    rows.append((DEPTHWISE, torch.float32, "map zeros", depthwise_f64))
    try:
        import kornia

        for dtype in (torch.float32, torch.float64):
            rows.append((f"kornia {kornia.__version__}", dtype, "map reflect",
                         lambda x, y: kornia.metrics.ssim(x, y, 11, max_val=1.0, eps=0.0, padding="same")))
    except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
        missing["kornia"] = f"{type(e).__name__}: {e}"
    try:
        import pytorch_msssim

        for dtype in (torch.float32, torch.float64):
            rows.append(("pytorch-msssim", dtype, "mean valid",
                         lambda x, y: pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)))
    except Exception as e:  # noqa: BLE001
        missing["pytorch-msssim"] = f"{type(e).__name__}: {e}"
    try:
        import piq

        for dtype in (torch.float32, torch.float64):
            rows.append((f"piq {piq.__version__}", dtype, "mean valid",
                         lambda x, y: piq.ssim(x, y, kernel_size=11, kernel_sigma=1.5, data_range=1.0,
                                               reduction="none", downsample=False)))
    except Exception as e:  # noqa: BLE001
        missing["piq"] = f"{type(e).__name__}: {e}".splitlines()[0]
    if torch.device(device).type == "cpu":
        import skimage
        from skimage.metrics import structural_similarity

        def skimage_valid(x, y):
            # one call per image, channels as the last axis; its full map is cropped to the valid interior
            maps = [structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5, data_range=1.0,
                                          use_sample_covariance=False, full=True)[1][:, 5:-5, 5:-5]
                    for a, b in zip(x, y)]
            return np.stack(maps)

        rows.append((f"scikit-image {skimage.__version__} (numpy)", np.float64, "map valid", skimage_valid))
    return rows, missing


def compare(shape, device="cpu", repeats=10) -> dict:
    """Time and check every implementation on one pair of ``shape`` (interleaved rounds).

    Returns:
        dict: ``shape``, ``rows`` (name, dtype, output, ms [q1, median, q3], max_abs_diff, same) and
        ``verdicts``: for each peer that gives the same values, kit time / peer time with the kit in the
        same output and input dtype (<= 1: the kit is at least as fast).
    """
    sr, hr = photo_pair(shape)
    exact = {p: exact_map(sr, hr, p) for p in ("zeros", "reflect", "valid")}
    impls, missing = implementations(device)
    inputs = {}
    for _, dtype, _, _ in impls:
        if dtype is np.float64:
            inputs[dtype] = (sr.astype(np.float64), hr.astype(np.float64))
        else:
            inputs[dtype] = tuple(torch.from_numpy(a).to(device=device, dtype=dtype) for a in (sr, hr))
    cases, checks = {}, []
    for i, (name, dtype, output, fn) in enumerate(impls):
        x, y = inputs[dtype]
        key = f"{i}"
        cases[key] = (lambda fn=fn, x=x, y=y: fn(x, y))
        with torch.no_grad():
            value = fn(x, y)
        value = value.double().cpu().numpy() if torch.is_tensor(value) else np.asarray(value, np.float64)
        kind, padding = output.split()
        ref = exact[padding]
        ref = ref.mean(axis=(1, 2, 3)) if kind == "mean" else ref
        checks.append(float(np.abs(value.reshape(ref.shape) - ref).max()))
    with torch.no_grad():
        times = timing.interleave(cases, repeats, warmup=1, device=device)
    rows = []
    for i, (name, dtype, output, _) in enumerate(impls):
        label = "numpy float64" if dtype is np.float64 else str(dtype).replace("torch.", "")
        clean = timing.pick(times[f"{i}"], timing.clean_rounds(times, [f"{i}"]))  # this case's unstalled calls
        rows.append(dict(name=name, dtype=label, output=output, ms=[1e3 * t for t in timing.quartiles(clean)],
                         max_abs_diff=checks[i], same=checks[i] <= TOLERANCE, clean=len(clean)))
    # the kit row matching each peer's output (mean valid -> the kit's valid map) and input dtype
    verdicts = []
    for i, r in enumerate(rows):
        if r["name"].startswith("kit") or r["name"] == DEPTHWISE or not r["same"]:  # not peer libraries
            continue
        padding = r["output"].split()[1]
        dtype = r["dtype"] if r["dtype"] in ("float32", "float64") else "float64"
        k = next(j for j, q in enumerate(rows) if q["name"] == "kit ssim_map" and q["output"] == f"map {padding}"
                 and q["dtype"] == dtype)
        pair = [f"{k}", f"{i}"]
        ratio = timing.paired_ratio(times[f"{k}"], times[f"{i}"], timing.clean_rounds(times, pair))
        verdicts.append(dict(peer=f"{r['name']} {r['dtype']}", kit=f"kit {rows[k]['output']} {dtype}",
                             ratio=list(ratio)))
    return dict(shape=list(shape), rows=rows, verdicts=verdicts, missing=missing, repeats=repeats)


def run(device="cpu", repeats=None, shapes=SHAPES) -> dict:
    """Every shape of ``shapes``; repeats default to 20 rounds (small) / 8 (512 x 512)."""
    return dict(tolerance=TOLERANCE, shapes=[compare(s, device, repeats or (20 if s[-1] <= 128 else 12))
                                             for s in shapes])


def render(result: dict) -> str:
    """Markdown: one table per shape, then the verdict (kit vs the fastest peer giving the same values)."""
    parts = []
    for s in result["shapes"]:
        shape = " x ".join(str(v) for v in s["shape"])
        rows = [[r["name"], r["dtype"], r["output"], r.get("clean", s["repeats"]), f"{r['ms'][1]:.2f}",
                 f"[{r['ms'][0]:.2f}, {r['ms'][2]:.2f}]",
                 f"{r['max_abs_diff']:.1e}", "yes" if r["same"] else "no"] for r in s["rows"]]
        rows += [[peer, "-", "-", "-", "-", "-", "-", f"cannot run: {why}"] for peer, why in s["missing"].items()]
        parts.append(f"**{shape}** ({s['repeats']} interleaved rounds; medians over each case's calls that no "
                     "stall hit)\n\n" + timing.table(
            ["implementation", "input", "output", "clean calls", "median ms", "[q1, q3]", "max abs diff vs float64",
             f"same values (<= {result['tolerance']:g})"], rows))
        if s["verdicts"]:
            worst = max(s["verdicts"], key=lambda v: v["ratio"][1])  # the fastest peer, relative to the kit
            lines = [f"- {v['kit']} / {v['peer']}: {v['ratio'][1]:.2f} [{v['ratio'][0]:.2f}, {v['ratio'][2]:.2f}]"
                     for v in s["verdicts"]]
            ok = all(v["ratio"][1] <= 1 for v in s["verdicts"])
            parts.append("Kit time / peer time, round by round, for the peers that give the same values:\n\n"
                         + "\n".join(lines)
                         + f"\n\nVerdict: the kit is {'at least as fast as' if ok else 'SLOWER than'}"
                         f" the fastest such peer ({worst['peer']}: ratio {worst['ratio'][1]:.2f}).")
        else:
            parts.append("Verdict: no peer gives the same values at this tolerance.")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    timing.add_common_args(parser, repeats=0)
    args = parser.parse_args()
    timing.setup(args)
    result = run(args.device, args.repeats or None)
    print(render(result))
    if args.json:
        timing.write_json(args.json, "ssim_peers", result, args.device)


if __name__ == "__main__":
    main()
