"""Training patches cut on the device: the whole training set held there as uint8, crops by indexing.

A host loader decodes nothing during training (the uint8 cache is memory-mapped) but still copies every
crop through Python and the PCIe bus; once a training step takes a few milliseconds, that becomes the
bottleneck. ``DevicePatches`` keeps the set's pixels on the device (DIV2K x2: ~8 GB of HR and LR uint8)
and turns a batch's random draws into one gather per tensor.

The draws are ``TrainPatches.plans``: the same seeded numpy streams the host loader uses. A whole epoch is
planned at once, in a background thread one epoch ahead, and sent to the device as one (samples, 6) integer
tensor; a batch is then a slice of it and a few kernels (``CropTables``), with no work on the host. So for
a seed both loaders give bit-identical batches and no result depends on which one ran
(tests/test_device_patches.py compares them).
"""
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .datasets import TrainPatches, y_uint8

LUMA_CHUNK = 1 << 16  # pixels converted to luma at a time: ~3 MB of float64 temporaries, whatever the set's size


def device_pixels(flat: np.ndarray, y_channel: bool, device) -> tuple[torch.Tensor, int]:
    """(the cache's pixels as a flat uint8 tensor (P * C,) on ``device``, C): RGB as stored, or its BT.601
    luma rounded to uint8 (C = 1).

    Luma is per pixel, so converting the set equals converting every crop (the host loader's way). It is
    converted ``LUMA_CHUNK`` pixels at a time into the device tensor: converting DIV2K's 2.8 G pixels at
    once would take ~60 GB of float64 temporaries on the host. Host memory beyond the memory-mapped cache
    is one chunk's temporaries (tests/test_device_patches.py measures it).
    """
    rgb = np.asarray(flat).reshape(-1, 3)
    with warnings.catch_warnings():  # the memory-mapped cache is read-only, and nothing here writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        if not y_channel:
            return torch.from_numpy(np.ascontiguousarray(rgb)).reshape(-1).to(device), 3
        out = torch.empty(len(rgb), dtype=torch.uint8, device=device)
        for start in range(0, len(rgb), LUMA_CHUNK):
            luma = y_uint8(rgb[None, start:start + LUMA_CHUNK])[0].reshape(-1)
            out[start:start + len(luma)].copy_(torch.from_numpy(luma))
    return out, 1


def crop_index(starts: torch.Tensor, widths: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
               flips: torch.Tensor, side: int, channels: int) -> torch.Tensor:
    """Flat indices of B augmented square crops in a set stored as one flat (pixels * C) array.

    The readable form of what ``CropTables`` computes in fewer kernels (the two are tested equal).

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


class CropTables:
    """``crop_index`` for one crop side, with everything that does not depend on the sample precomputed.

    A flip code f = hflip + 2 vflip + 4 transpose names one of the 8 augmentations. For each f, ``rows[f]``
    (1, side, side) and ``cols[f]`` (C, side, side) hold the offsets of ``crop_index`` inside the crop:
    flat index = C * (corner pixel) + C * width * rows[f] + cols[f], with cols[f] = C * col + channel.
    ``index`` is then two lookups, a product and two sums per batch.
    """

    def __init__(self, side: int, channels: int, device):
        flips = torch.tensor([[f & 1, f >> 1 & 1, f >> 2 & 1] for f in range(8)], device=device)
        zeros = torch.zeros(8, dtype=torch.int64, device=device)
        ones = torch.ones(8, dtype=torch.int64, device=device)
        col = crop_index(zeros, ones, zeros, zeros, flips, side, channels)  # width 1: C * (row + col) + ch
        width = crop_index(zeros, ones * side * 2, zeros, zeros, flips, side, 1)  # 2 side * row + col
        self.rows = torch.div(width, 2 * side, rounding_mode="floor")          # (8, 1, side, side)
        self.cols = col - channels * self.rows                                  # (8, C, side, side)
        self.channels = channels

    def index(self, corner: torch.Tensor, width: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """int64 (B, C, side, side) flat indices, equal to ``crop_index``.

        Args:
            corner: (B,) int64, C * the flat pixel index of each crop's top-left corner.
            width: (B,) int64, C * the width of each sample's image. code: (B,) int64 flip codes.
        """
        return torch.add(self.cols[code], self.rows[code] * width.view(-1, 1, 1, 1)).add_(corner.view(-1, 1, 1, 1))


class DevicePatches:
    """The batches of a ``TrainPatches`` set, cut on ``device`` from a device-resident copy of its pixels.

    Args:
        patches: the host dataset (its caches, index and ``plans`` are reused).
        device: where the pixels live and batches are made.

    ``epoch(epoch, ids)`` yields the (lr, hr) uint8 batches (B, C, p, p) and (B, C, p*s, p*s) of an epoch
    on the device, equal to stacking ``patches[(epoch, i)]`` for the ``i`` of each row of ``ids``; it plans
    the next epoch in a background thread meanwhile. ``batch(epoch, indices)`` cuts one batch (planned on
    the spot). ``nbytes(patches)`` tells what the pixels cost.
    """

    def __init__(self, patches: TrainPatches, device):
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # the planner thread has its own current device
            device = torch.device("cuda", torch.cuda.current_device())
        self.patches, self.device = patches, device
        self.lr, self.channels = device_pixels(patches.lr_flat, patches.y_channel, self.device)
        self.hr, _ = device_pixels(patches.hr_flat, patches.y_channel, self.device)
        # per image: first pixel and width, in the LR and HR flat arrays (offsets there count bytes of RGB);
        # kept on the host, where the epoch's plan is made
        self.table = torch.tensor([[lo // 3, ls[1], ho // 3, hs[1]] for (lo, ls), (ho, hs) in
                                   zip(patches.lr_index, patches.hr_index)], dtype=torch.int64)
        p, s = patches.patch, patches.scale
        self.crops = (CropTables(p, self.channels, self.device), CropTables(p * s, self.channels, self.device))
        self._planner = ThreadPoolExecutor(1, thread_name_prefix="plan-epoch")
        self._next = None  # (epoch, ids key, future) of the plan being made ahead

    @staticmethod
    def nbytes(patches: TrainPatches) -> int:
        """Device memory the pixels take (bytes): RGB, or a third of it for Y-channel sets."""
        size = patches.lr_flat.size + patches.hr_flat.size
        return size // 3 if patches.y_channel else size

    def _plan(self, epoch: int, ids: np.ndarray) -> torch.Tensor:
        """Every draw of the samples ``ids`` of ``epoch``, as the per-sample terms of ``CropTables.index``:
        int64 (n, 5) on the device, columns LR corner, LR width, HR corner, HR width (each times C), flip code."""
        draws = torch.from_numpy(self.patches.plans(epoch, ids))
        k, y, x, flips = draws[:, 0], draws[:, 1], draws[:, 2], draws[:, 3:]
        info = self.table[k]  # LR start, LR width, HR start, HR width of each sample's image
        s, ch = self.patches.scale, self.channels
        terms = torch.stack([info[:, 0] + y * info[:, 1] + x, info[:, 1],
                             info[:, 2] + y * s * info[:, 3] + x * s, info[:, 3]], dim=1) * ch
        code = flips[:, 0] + 2 * flips[:, 1] + 4 * flips[:, 2]
        plan = torch.cat([terms, code[:, None]], dim=1)
        if self.device.type == "cuda":  # pinned, so the one copy per epoch is queued without waiting for the GPU
            plan = plan.pin_memory()
        return plan.to(self.device, non_blocking=True)

    def _planned(self, epoch: int, ids: np.ndarray):
        """The future of ``_plan(epoch, ids)``, reusing the one made ahead when it matches."""
        key = ids.tobytes()
        if self._next is not None and self._next[:2] == (epoch, key):
            return self._next[2]
        return self._planner.submit(self._plan, epoch, ids)

    def _cut(self, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (lr, hr) batch of the planned samples ``plan`` (B, 5): two index tables and two gathers."""
        lr_crops, hr_crops = self.crops
        code = plan[:, 4]
        lr = self.lr[lr_crops.index(plan[:, 0], plan[:, 1], code)]
        hr = self.hr[hr_crops.index(plan[:, 2], plan[:, 3], code)]
        return lr, hr

    def epoch(self, epoch: int, ids):
        """Yield the batches of ``epoch``: one per row of ``ids`` (iterations, B) of sample indices.

        The epoch's plan comes from the background thread (made during the previous epoch when its ids
        were the same; at once otherwise); the next epoch's plan starts before the first batch is cut.
        """
        ids = np.asarray(ids, dtype=np.int64)
        plan = self._planned(epoch, ids).result()
        self._next = (epoch + 1, ids.tobytes(), self._planner.submit(self._plan, epoch + 1, ids))
        for t in range(len(ids)):
            yield self._cut(plan[t * ids.shape[1]:(t + 1) * ids.shape[1]])

    def batch(self, epoch: int, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """The (lr, hr) batch of samples ``indices`` of ``epoch``, planned now on this thread."""
        return self._cut(self._plan(epoch, np.asarray(list(indices), dtype=np.int64)))
