"""Run a model on whole evaluation images and score it with the field's protocol (``pspl_nb.metrics``).

The trainer evaluates after every epoch (the paper's protocol: all 100 DIV2K validation images at 2K), so
evaluation is made cheap where it runs: the images are staged on the device once (``stage_pairs``), the
model runs in inference mode, and off the CPU images of one shape go through the model and the metrics
together (``EVAL_BATCH_PIXELS``) with one read-back per batch. On the CPU images go one at a time, which
keeps every score bit for bit what the committed CPU grids recorded.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from pspl_nb.data import EvalPair, prepare_pair, y_uint8
from pspl_nb.metrics import scores_of_batch, scores_on_device, to_uint8
from pspl_nb.resize import imresize

EVAL_BATCH_PIXELS = 1 << 21  # LR pixels per batched forward: three 2K DIV2K images at x2, twelve at x4


def as_channels(img: np.ndarray, channels: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 (H, W, 3) for "rgb" or the rounded BT.601 luma (H, W, 1) for "y".

    Y-channel models (DRRN, LapSRN) see and predict MATLAB's ``rgb2ycbcr`` luma, which is uint8.
    """
    return img if channels == "rgb" else y_uint8(img)


def to_tensor(img: np.ndarray, rgb_range: float, device=None) -> torch.Tensor:
    """uint8 (H, W, C) -> float32 (1, C, H, W) on [0, rgb_range]."""
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device, torch.float32)
    return x[None] * (rgb_range / 255.0)


def merge_luma(y: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Show a Y-channel result in colour: uint8 luma (H, W, 1) + the chroma of uint8 RGB (H, W, 3) -> RGB.

    Uses BT.601 YCbCr (MATLAB ``rgb2ycbcr``/``ycbcr2rgb``), the usual way Y-only SR models are displayed.
    """
    rgb = rgb.astype(np.float64)
    cb = 128 + (-37.797 * rgb[..., 0] - 74.203 * rgb[..., 1] + 112.0 * rgb[..., 2]) / 255
    cr = 128 + (112.0 * rgb[..., 0] - 93.786 * rgb[..., 1] - 18.214 * rgb[..., 2]) / 255
    yy, cb, cr = y[..., 0].astype(np.float64) - 16, cb - 128, cr - 128
    out = np.stack([298.082 * yy + 408.583 * cr, 298.082 * yy - 100.291 * cb - 208.120 * cr,
                    298.082 * yy + 516.412 * cb], axis=-1) / 256
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class Bicubic(nn.Module):
    """The "Bicubic" row of every SR table: MATLAB bicubic upsampling as a model (N, C, h, w) -> (N, C, sh, sw)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return imresize(x, self.scale)


def super_resolve(model: nn.Module, lr: np.ndarray, channels: str = "rgb", rgb_range: float = 255.0,
                  device=None) -> np.ndarray:
    """SR of one uint8 RGB LR image (h, w, 3) -> uint8 (s h, s w, C), C = 3 for "rgb", 1 for "y"."""
    device = torch.device(device or next(model.parameters(), torch.empty(0)).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return to_uint8(_quantised(model, _uint8_batch(lr, channels, device), rgb_range).to(torch.uint8))
    finally:
        model.train(was_training)


@dataclass
class StagedPairs:
    """Evaluation images held on a device, ready for every ``evaluate`` call: per image its ``names`` entry,
    ``lr`` uint8 (1, C, h, w) and ``hr`` uint8 (1, C, sh, sw), in the model's ``channels`` ("rgb" or "y")."""

    names: list
    lr: list
    hr: list
    channels: str

    def __len__(self) -> int:
        return len(self.names)


def stage_pairs(pairs, channels: str, device) -> StagedPairs:
    """``EvalPair`` s (uint8 RGB numpy) -> ``StagedPairs`` on ``device``: converted to the model's channels and
    copied once, instead of at every evaluation (DIV2K validation x2: ~1 GB of uint8)."""
    return StagedPairs([p.name for p in pairs], [_uint8_batch(p.lr, channels, device) for p in pairs],
                       [_uint8_batch(p.hr, channels, device) for p in pairs], channels)


def _uint8_batch(img: np.ndarray, channels: str, device) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> uint8 (1, C, H, W) in the model's ``channels`` on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(as_channels(img, channels).transpose(2, 0, 1)))[None].to(device)


def shape_batches(staged: StagedPairs, max_pixels: int = EVAL_BATCH_PIXELS) -> list[list[int]]:
    """Indices of ``staged`` grouped by LR shape, each group cut into batches of at most ``max_pixels`` LR
    pixels (at least one image), in order of first appearance."""
    groups = {}
    for i, lr in enumerate(staged.lr):
        groups.setdefault(tuple(lr.shape), []).append(i)
    batches = []
    for shape, ids in groups.items():
        per = max(1, max_pixels // (shape[-2] * shape[-1]))
        batches += [ids[k:k + per] for k in range(0, len(ids), per)]
    return batches


def evaluate(model: nn.Module, pairs, scale: int, channels: str = "rgb", rgb_range: float = 255.0,
             device=None, edsr_metric: bool = False, batched: bool | None = None) -> pd.DataFrame:
    """PSNR (dB) and SSIM of ``model`` on each image of ``pairs``, scored on its device.

    Protocol (docs/protocol.md): uint8 output, Y channel (BT.601), ``scale`` pixels shaved on each side,
    PSNR per image with peak 255, MATLAB-style SSIM (``metrics.scores_on_device``, equal to ``metrics.psnr``
    and ``metrics.ssim``). Y-channel models are scored on their own uint8 luma. ``edsr_metric`` adds
    ``edsr_psnr``: EDSR-PyTorch's metric for non-benchmark sets such as DIV2K validation (all channels,
    shave ``scale + 6``; ``metrics.edsr_psnr``).

    Args:
        pairs: ``EvalPair`` s (uint8 RGB ``lr``, ``hr``) or ``StagedPairs`` already on the device.
        device: where the model runs (None: its parameters' device).
        batched: run images of one LR shape together (``shape_batches``), scores read back once per batch;
            None = off the CPU only. A batch changes the order in which the model's convolutions round, so
            a few output pixels may land on the neighbouring uint8 value: scores agree with one image at a
            time to ~1e-3 dB. One at a time keeps the CPU's scores bit for bit as they were.
    Returns one row per image: ``image, psnr, ssim`` (and ``edsr_psnr``).
    """
    device = torch.device(device or next(model.parameters(), torch.empty(0)).device)
    staged = pairs if isinstance(pairs, StagedPairs) else stage_pairs(pairs, channels, device)
    batched = device.type != "cpu" if batched is None else batched
    edsr_shave = scale + 6 if edsr_metric else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if batched:
                return _evaluate_batched(model, staged, scale, rgb_range, device, edsr_shave)
            rows = []
            for name, lr, hr in zip(staged.names, staged.lr, staged.hr):
                sr = _quantised(model, lr.to(device), rgb_range)
                scores = scores_on_device(sr, hr.to(device), scale, y_channel=staged.channels == "rgb",
                                          edsr_shave=edsr_shave)
                rows.append(dict(image=name, **scores))
            return pd.DataFrame(rows)
    finally:
        model.train(was_training)


def _quantised(model: nn.Module, lr: torch.Tensor, rgb_range: float) -> torch.Tensor:
    """SR of uint8 LR (N, C, h, w) as a float (N, C, sh, sw) tensor of uint8 values (EDSR-PyTorch's quantize:
    to [0, 255], clamp, round half to even). The model is in eval mode."""
    sr = model(lr.float() * (rgb_range / 255.0))
    return sr.float().mul(255.0 / rgb_range).clamp_(0, 255).round_()


def _evaluate_batched(model, staged: StagedPairs, scale: int, rgb_range: float, device, edsr_shave) -> pd.DataFrame:
    """``evaluate``'s batched path: per batch one forward, the scores of all its images, one read-back."""
    order, columns = [], []
    for ids in shape_batches(staged):
        lr = torch.cat([staged.lr[i] for i in ids]).to(device)
        hr = torch.cat([staged.hr[i] for i in ids]).to(device)
        sr = _quantised(model, lr, rgb_range)
        scores = scores_of_batch(sr, hr, scale, y_channel=staged.channels == "rgb", edsr_shave=edsr_shave)
        order += ids
        columns.append({k: v.cpu().numpy() for k, v in scores.items()})
    table = pd.DataFrame({k: np.concatenate([c[k] for c in columns]) for k in columns[0]} if columns else {},
                         index=order).sort_index()
    table.insert(0, "image", staged.names)
    return table.reset_index(drop=True)


def bicubic_psnr(name: str, scale: int, root=None, limit: int | None = None) -> float:
    """Mean PSNR (dB, the protocol's Y and shave) of MATLAB bicubic upsampling on set ``name``: the floor every
    SR model is measured from: a run's gain over it says how far training got beyond interpolation."""
    from pspl_nb.data import load_eval_set

    return float(evaluate(Bicubic(scale), load_eval_set(name, scale, root=root, limit=limit), scale).psnr.mean())


def protocol_check(model: nn.Module, hr_images, scale: int, channels: str = "rgb", rgb_range: float = 255.0,
                   device=None) -> pd.DataFrame:
    """How many dB the benchmark preparation alone moves a score: one model, the same HR images, two protocols.

    Args:
        hr_images: {name: uint8 HR (H, W, 3)}; sizes not divisible by ``scale`` (like B100's 481 x 321) are
            where the protocols differ most: "modcrop" crops HR, "resample" (the official script) resizes it.
    Returns:
        One row per image: image, psnr_modcrop, psnr_resample, shift_db = resample - modcrop.
    """
    rows = []
    for name, hr in hr_images.items():
        row = dict(image=name, size=f"{hr.shape[1]}x{hr.shape[0]}")
        for prep in ("modcrop", "resample"):
            lr, prepared = prepare_pair(hr, scale, prep)
            row[f"psnr_{prep}"] = evaluate(model, [EvalPair(name, lr, prepared)], scale, channels, rgb_range,
                                           device).psnr.iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.assign(shift_db=table.psnr_resample - table.psnr_modcrop)
