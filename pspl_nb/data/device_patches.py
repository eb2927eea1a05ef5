"""Training patches cut on the device: the whole training set held there as uint8, crops by indexing.

A host loader decodes nothing during training (the uint8 cache is memory-mapped) but still copies every
crop through Python and the PCIe bus; once a training step takes a few milliseconds, that becomes the
bottleneck. ``DevicePatches`` keeps the set's pixels on the device (DIV2K x2: ~8 GB of HR and LR uint8)
and turns a batch's random draws into one gather per tensor.

The draws are ``TrainPatches.plan(epoch, i)``: the same seeded numpy streams the host loader uses, drawn on
the host and sent as a (B, 6) integer tensor. So for a seed both loaders give bit-identical batches and
no result depends on which one ran (tests/test_device_patches.py compares them).
"""
import warnings

import numpy as np
import torch

from .datasets import TrainPatches, y_uint8


def _flat_pixels(flat: np.ndarray, y_channel: bool) -> tuple[np.ndarray, int]:
    """(the cache's uint8 pixels as (P, C), C): RGB as stored, or its BT.601 luma rounded to uint8 (C = 1).

    Luma is per pixel, so converting the whole set once equals converting every crop (the host loader's way).
    """
    rgb = np.asarray(flat).reshape(-1, 3)
    return (y_uint8(rgb[None])[0], 1) if y_channel else (rgb, 3)


def crop_index(starts: torch.Tensor, widths: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
               flips: torch.Tensor, side: int, channels: int) -> torch.Tensor:
    """Flat indices of B augmented square crops in a set stored as one flat (pixels * C) array.

    Args:
        starts: (B,) int64, first pixel of each sample's image in the flat array. widths: (B,) image widths.
        tops, lefts: (B,) crop corners (pixels). flips: (B, 3) 0/1 hflip, vflip, transpose.
        side: crop side (pixels). channels: C.
    Returns:
        int64 (B, C, side, side): ``flat[index]`` is the batch, as ``TrainPatches`` cuts it: crop, then
        h-flip, v-flip, transpose. Output pixel (r, c) reads crop pixel (row, col) with
        (a, b) = (c, r) if transpose else (r, c), row = side-1-a if vflip else a, col = side-1-b if hflip else b.
    """
    r = torch.arange(side, device=starts.device).view(1, side, 1)
    c = torch.arange(side, device=starts.device).view(1, 1, side)
    hflip, vflip, transpose = (flips[:, k].view(-1, 1, 1).bool() for k in range(3))
    a, b = torch.where(transpose, c, r), torch.where(transpose, r, c)       # (B, side, side)
    row = torch.where(vflip, side - 1 - a, a) + tops.view(-1, 1, 1)
    col = torch.where(hflip, side - 1 - b, b) + lefts.view(-1, 1, 1)
    pixel = starts.view(-1, 1, 1) + row * widths.view(-1, 1, 1) + col     # (B, side, side)
    ch = torch.arange(channels, device=starts.device).view(1, channels, 1, 1)
    return pixel.unsqueeze(1) * channels + ch


class DevicePatches:
    """The batches of a ``TrainPatches`` set, cut on ``device`` from a device-resident copy of its pixels.

    Args:
        patches: the host dataset (its caches, index and ``plan`` are reused).
        device: where the pixels live and batches are made.

    ``batch(epoch, indices)`` returns (lr, hr) uint8 tensors (B, C, p, p) and (B, C, p*s, p*s) on the device,
    equal to stacking ``patches[(epoch, i)]`` for ``i`` in ``indices``. ``nbytes(patches)`` tells what it costs.
    """

    def __init__(self, patches: TrainPatches, device):
        self.patches, self.device = patches, torch.device(device)
        lr, self.channels = _flat_pixels(patches.lr_flat, patches.y_channel)
        hr, _ = _flat_pixels(patches.hr_flat, patches.y_channel)
        with warnings.catch_warnings():  # the memory-mapped cache is read-only, and nothing here writes to it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.lr = torch.from_numpy(np.ascontiguousarray(lr)).reshape(-1).to(self.device)
            self.hr = torch.from_numpy(np.ascontiguousarray(hr)).reshape(-1).to(self.device)
        # per image: first pixel and width, in the LR and HR flat arrays (offsets there count bytes of RGB)
        self.table = torch.tensor([[lo // 3, ls[1], ho // 3, hs[1]] for (lo, ls), (ho, hs) in
                                   zip(patches.lr_index, patches.hr_index)], dtype=torch.int64, device=self.device)

    @staticmethod
    def nbytes(patches: TrainPatches) -> int:
        """Device memory the pixels take (bytes): RGB, or a third of it for Y-channel sets."""
        size = patches.lr_flat.size + patches.hr_flat.size
        return size // 3 if patches.y_channel else size

    def batch(self, epoch: int, indices) -> tuple[torch.Tensor, torch.Tensor]:
        plans = torch.tensor([self.patches.plan(epoch, i) for i in indices], dtype=torch.int64)
        if self.device.type == "cuda":  # pinned, so the copy is queued without waiting for the GPU
            plans = plans.pin_memory()
        plans = plans.to(self.device, non_blocking=True)
        k, y, x, flips = plans[:, 0], plans[:, 1], plans[:, 2], plans[:, 3:]
        rows = self.table[k]
        p, s, ch = self.patches.patch, self.patches.scale, self.channels
        lr = self.lr[crop_index(rows[:, 0], rows[:, 1], y, x, flips, p, ch)]
        hr = self.hr[crop_index(rows[:, 2], rows[:, 3], y * s, x * s, flips, p * s, ch)]
        return lr, hr
