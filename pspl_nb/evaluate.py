"""Run a model on whole evaluation images and score it with the field's protocol (``pspl_nb.metrics``)."""
import numpy as np
import pandas as pd
import torch
from torch import nn

from pspl_nb.metrics import psnr, rgb_to_y, ssim
from pspl_nb.resize import imresize


def as_channels(img: np.ndarray, channels: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 (H, W, 3) for "rgb" or the rounded BT.601 luma (H, W, 1) for "y".

    Y-channel models (DRRN, LapSRN) see and predict MATLAB's ``rgb2ycbcr`` luma, which is uint8.
    """
    if channels == "rgb":
        return img
    return np.clip(np.round(rgb_to_y(img)), 0, 255).astype(np.uint8)[..., None]


def to_tensor(img: np.ndarray, rgb_range: float, device=None) -> torch.Tensor:
    """uint8 (H, W, C) -> float32 (1, C, H, W) on [0, rgb_range]."""
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device, torch.float32)
    return x[None] * (rgb_range / 255.0)


def to_uint8(x: torch.Tensor, rgb_range: float) -> np.ndarray:
    """float (1, C, H, W) on [0, rgb_range] -> uint8 (H, W, C), clamped and rounded as EDSR's ``quantize``."""
    x = (x[0].float() * (255.0 / rgb_range)).clamp(0, 255).round()
    return x.permute(1, 2, 0).to("cpu", torch.uint8).numpy()


class Bicubic(nn.Module):
    """The "Bicubic" row of every SR table: MATLAB bicubic upsampling as a model (N, C, h, w) -> (N, C, sh, sw)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return imresize(x, self.scale)


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, channels: str = "rgb", rgb_range: float = 255.0,
                  device=None) -> np.ndarray:
    """SR of one uint8 RGB LR image (h, w, 3) -> uint8 (s h, s w, C), C = 3 for "rgb", 1 for "y"."""
    device = device or next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    sr = model(to_tensor(as_channels(lr, channels), rgb_range, device))
    model.train(was_training)
    return to_uint8(sr, rgb_range)


def evaluate(model: nn.Module, pairs, scale: int, channels: str = "rgb", rgb_range: float = 255.0,
             device=None) -> pd.DataFrame:
    """PSNR (dB) and SSIM of ``model`` on each ``EvalPair`` (uint8 RGB ``lr``, ``hr``).

    Protocol (REFERENCE section 3): uint8 output, Y channel (BT.601), ``scale`` pixels shaved on each side,
    PSNR per image with peak 255, MATLAB-style SSIM. Y-channel models are scored on their own uint8 luma.
    Returns one row per image: ``image, psnr, ssim``.
    """
    rows = []
    for p in pairs:
        sr = super_resolve(model, p.lr, channels, rgb_range, device)
        hr = as_channels(p.hr, channels)
        rows.append(dict(image=p.name, psnr=psnr(sr, hr, scale, y_channel=channels == "rgb"),
                         ssim=ssim(sr, hr, scale, y_channel=channels == "rgb")))
    return pd.DataFrame(rows)
