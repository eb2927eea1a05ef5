"""Training patches and evaluation images from any set in the layout (``sources.py``).

Training reads decoded pixels from a uint8 cache, one flat ``.npy`` per folder memory-mapped read-only
(``<root>/<Name>/cache/HR.npy`` + ``HR.json`` index; ``LR_X{s}.*``): decoding a 2K PNG takes ~0.1 s, a
48 x 48 crop of the memmap microseconds. One file per folder keeps two file descriptors per dataset
however many images (800 per-image memmaps would hit the usual 1024-descriptor limit in every worker).
"""
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pspl_nb.atomic import atomic_write, write_json
from pspl_nb.config import TEST_SETS
from pspl_nb.housekeeping import sweep
from pspl_nb.metrics import rgb_to_y
from pspl_nb.places import data_root

from . import embedded, standin
from .embedded import ensure_embedded
from .prepare import prepare_pair
from .sources import (
    DATASET_KEYS,
    EXPECTED_IMAGES,
    SET_NAMES,
    STANDIN_MARKER,
    resolve_root,
    set_name,
)


class EvalPair(NamedTuple):
    """One evaluation image: ``name`` (file stem), ``lr`` uint8 (h, w, 3), ``hr`` uint8 (h*s, w*s, 3)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


class DamagedImageError(OSError):
    """An image file under the data root does not decode (truncated, corrupt, a header claiming an absurd
    size) or an LR image does not match its HR; the message is one line naming the file and the command
    that repairs it."""


# What Pillow raises for a file that does not decode: OSError (truncated), SyntaxError (bad chunk), ValueError,
# DecompressionBombError (a header claiming more than twice Image.MAX_IMAGE_PIXELS, e.g. 30000 x 30000).
UNDECODABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def repair_command(name: str, root=None) -> str:
    """The shell command that puts back a good copy of set ``name``: a forced re-fetch, or a rebuild for the
    embedded set and for stand-ins."""
    root = resolve_root(root)
    rebuild = standin.rebuild_command(name, root)
    if rebuild:
        return rebuild
    where = "" if root == data_root() else f" --root {shlex.quote(str(root))}"
    return f"python -m pspl_nb.data fetch {'embedded' if name.startswith('embedded_') else name} --force{where}"


def _repair_of(path) -> str:
    """"; repair with `<command>`" for a file of a set under a data root, "" for a file elsewhere."""
    folder = next((p for p in Path(path).parents if p.name in SET_NAMES), None)  # <root>/<Name>
    return f"; repair with `{repair_command(folder.name, folder.parent)}`" if folder else ""


def _damaged(path, err: Exception) -> Exception:
    """The decoding error ``err`` of ``path`` as a DamagedImageError; a missing file stays FileNotFoundError."""
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return err
    return DamagedImageError(f"{path} does not decode ({type(err).__name__}: {err}){_repair_of(path)}")


def _mismatch(lr_path, lr_hw: tuple, hr_hw: tuple, scale: int) -> DamagedImageError:
    """An LR image whose (height, width) ``lr_hw`` is not its HR's ``hr_hw`` // ``scale``, as one line."""
    (lh, lw), (hh, hw) = lr_hw, hr_hw
    return DamagedImageError(f"{lr_path} is {lw}x{lh}, expected {hw // scale}x{hh // scale} (HR {hw}x{hh} // "
                             f"{scale}): the LR image does not match its HR{_repair_of(lr_path)}")


def read_rgb(path) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) RGB (grayscale and palette images are expanded).

    Raises DamagedImageError when the file is there but does not decode, FileNotFoundError when it is not.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except UNDECODABLE as err:
        raise _damaged(path, err) from None


def y_uint8(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 (H, W, 3) RGB, rounded to uint8 (H, W, 1), as MATLAB's ``rgb2ycbcr``."""
    return np.clip(np.round(rgb_to_y(rgb)), 0, 255).astype(np.uint8)[..., None]


def set_dir(name: str, root=None, split: str = "train") -> Path:
    """``<root>/<Name>`` for a dataset key or Name, built (embedded) or checked to exist.

    Raises FileNotFoundError with one line naming the folder and the command that fetches it.
    """
    root = resolve_root(root)
    name = set_name(name, split)
    if name.startswith("embedded_"):
        ensure_embedded(root)
    folder = root / name
    if not (folder / "HR").is_dir() or not any((folder / "HR").iterdir()):
        what = "div2k" if name.startswith("DIV2K") else "benchmarks" if name in TEST_SETS else name
        raise FileNotFoundError(f"{folder / 'HR'} is missing: run `python -m pspl_nb.data fetch {what}` "
                                f"(needs a network) or use the offline set 'embedded'")
    return folder


def _lr_file(folder: Path, stem: str, scale: int) -> Path:
    return folder / "LR_bicubic" / f"X{scale}" / f"{stem}x{scale}.png"


def _cached_folder(files: list[Path], cache: Path) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    """(flat uint8 memmap, [(offset, (H, W, 3)), ...]) for ``files``, decoding them once into ``cache``.

    The index (``cache.json``) records each PNG's name, size and mtime; any change rebuilds the cache.
    Both files are written atomically (``atomic``), the index last, so a reader never sees a half-written
    cache and concurrent builders (DataLoader workers, xdist) cannot corrupt it; a damaged image (or ^C)
    leaves no half-written cache behind, which for DIV2K would be GBs.
    """
    stamp = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    index_path, data_path = cache.with_suffix(".json"), cache.with_suffix(".npy")
    if index_path.exists() and data_path.exists():
        index = json.loads(index_path.read_text())
        if index["files"] == stamp:
            flat = np.load(data_path, mmap_mode="r")
            return flat, [(o, tuple(s)) for o, s in zip(index["offsets"], index["shapes"])]
    shapes = []
    for f in files:  # headers only: sizes first, so the memmap is allocated once
        try:
            with Image.open(f) as img:
                shapes.append((img.height, img.width, 3))
        except UNDECODABLE as err:
            raise _damaged(f, err) from None
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    cache.parent.mkdir(parents=True, exist_ok=True)
    sweep(cache.parent)  # what a build killed earlier left (GBs for DIV2K), never a live builder's files

    def decode_into(tmp):
        flat = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(sum(sizes), 1),))
        for f, off, shape in tqdm(list(zip(files, offsets, shapes)),
                                  desc=f"cache {cache.parent.parent.name}/{cache.name}", leave=False):
            flat[off : off + int(np.prod(shape))] = read_rgb(f).reshape(-1)
        flat.flush()

    atomic_write(data_path, decode_into, setting="PSPL_DATA")  # the index last: it vouches for the data
    write_json(index_path, {"files": stamp, "offsets": offsets, "shapes": shapes}, setting="PSPL_DATA")
    return np.load(data_path, mmap_mode="r"), list(zip(offsets, shapes))


class TrainPatches(Dataset):
    """Random aligned (LR, HR) patches of a training set, EDSR style: ``iters_per_epoch * batch`` per epoch.

    Args:
        name: "div2k", "embedded" (their training halves) or a set Name such as "DIV2K_train".
        scale: upscaling factor s; the set needs ``LR_bicubic/X{s}``.
        patch: LR patch side p in pixels (HR side p * s).
        batch: batch size, only to size an epoch (len = iters_per_epoch * batch); batching is the DataLoader's.
        iters_per_epoch: iterations per epoch (EDSR: 1000).
        seed: non-negative int. Sample i of epoch e depends only on (seed, e, i): identical across runs and
            across DataLoader worker counts. Use ``shuffle=False``; the order is already random.
        y_channel: return BT.601 luma, rounded to uint8 (C = 1) instead of RGB (C = 3).
        augment: random h-flip, v-flip and transpose (the same on LR and HR).
        root: data root (None -> ``places.data_root()``).

    Items: ``(lr, hr)`` uint8 tensors (C, p, p) and (C, p*s, p*s), values [0, 255].
    Each image of the set is drawn equally often per epoch (a seeded permutation of ``i % n_images``).
    With persistent DataLoader workers, index by ``(epoch, i)`` (``EpochBatches`` does): a worker keeps
    the copy of the dataset it started with, so ``set_epoch`` does not reach it.
    """

    def __init__(self, name: str, scale: int, patch: int, batch: int, iters_per_epoch: int = 1000,
                 seed: int = 0, y_channel: bool = False, augment: bool = True, root=None):
        for arg, value in (("scale", scale), ("patch", patch), ("batch", batch), ("iters_per_epoch", iters_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        folder = set_dir(name, root, "train")
        hr_files = sorted((folder / "HR").glob("*.png"))
        if not hr_files:
            raise FileNotFoundError(f"no .png images in {folder / 'HR'}")
        lr_files = [_lr_file(folder, f.stem, scale) for f in hr_files]
        missing = [f for f in lr_files if not f.exists()]
        if missing:
            raise FileNotFoundError(f"{missing[0]} is missing ({len(missing)} LR files of {folder.name} at x{scale})"
                                    f"{_repair_of(missing[0])}")
        self._caches = (folder / "cache" / "HR.npy", folder / "cache" / f"LR_X{scale}.npy")
        self.hr_flat, self.hr_index = _cached_folder(hr_files, self._caches[0].with_suffix(""))
        self.lr_flat, self.lr_index = _cached_folder(lr_files, self._caches[1].with_suffix(""))
        for f, (_, (lh, lw, _c)), (_, (hh, hw, _c2)) in zip(lr_files, self.lr_index, self.hr_index):
            if (lh, lw) != (hh // scale, hw // scale):  # checked before any batch is cut from a wrong pair
                raise _mismatch(f, (lh, lw), (hh, hw), scale)
        small = min(range(len(hr_files)), key=lambda k: min(self.lr_index[k][1][:2]))
        lh, lw = self.lr_index[small][1][:2]
        if patch > min(lh, lw):
            raise ValueError(f"patch {patch} is larger than the smallest LR image {hr_files[small].stem} "
                             f"({lh}x{lw} at x{scale}) of {folder.name}")
        self.names = [f.stem for f in hr_files]
        self.scale, self.patch, self.batch, self.iters_per_epoch = scale, patch, batch, iters_per_epoch
        self.seed, self.y_channel, self.augment = int(seed), y_channel, augment
        self.epoch = 0
        self._order = None

    def __len__(self) -> int:
        return self.iters_per_epoch * self.batch

    def __getstate__(self) -> dict:
        # A memmap pickles as an in-memory copy of the whole file; workers started with "spawn"
        # (macOS, Windows) reopen the cache instead.
        return {**self.__dict__, "hr_flat": None, "lr_flat": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.hr_flat, self.lr_flat = (np.load(p, mmap_mode="r") for p in self._caches)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (non-negative int) whose samples an integer index ``__getitem__(i)`` returns."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def image_order(self, epoch: int | None = None) -> np.ndarray:
        """Index of the source image of every sample of ``epoch`` (default: the current one), int64 (len(self),)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._order is None or self._order[0] != epoch:
            # The leading 0 / 1 keeps this stream apart from the per-sample streams (seed, epoch, 1, i).
            rng = np.random.default_rng((self.seed, epoch, 0))
            self._order = (epoch, rng.permutation(np.arange(len(self)) % len(self.names)))
        return self._order[1]

    def plan(self, epoch: int, i: int) -> tuple[int, int, int, int, int, int]:
        """The random draws of sample ``i`` of ``epoch``: (image k, LR top y, LR left x, hflip, vflip, transpose).

        Every loader cuts its patches from these numbers (``__getitem__`` here, ``DevicePatches`` on a GPU),
        so a seed gives the same batches whichever loader ran. Flags are 0/1 (all 0 without ``augment``).
        """
        return tuple(int(v) for v in self.plans(epoch, [i])[0])

    def plans(self, epoch: int, ids) -> np.ndarray:
        """``plan(epoch, i)`` of every sample ``i`` in ``ids`` (ints in [0, len)), as int64 (len(ids), 6).

        The image of every sample is one lookup in the epoch's permutation; the crop and flips come from
        each sample's own seeded stream (seed, epoch, 1, i), so a sample's draws never depend on which
        other samples are planned with it. ``DevicePatches`` plans a whole epoch with one call.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and not (0 <= ids.min() and ids.max() < len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise IndexError(f"index {bad} out of range for {len(self)} samples")
        out = np.zeros((len(ids), 6), dtype=np.int64)
        out[:, 0] = self.image_order(epoch)[ids]
        for row, i in zip(out, ids.tolist()):
            rng = np.random.default_rng((self.seed, int(epoch), 1, i))
            lh, lw = self.lr_index[row[0]][1][:2]
            row[1], row[2] = rng.integers(0, lh - self.patch + 1), rng.integers(0, lw - self.patch + 1)
            if self.augment:
                row[3:] = rng.integers(0, 2, size=3)
        return out

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index`` of the current epoch, or ``index = (epoch, i)``: a loader whose workers persist
        across epochs (``EpochBatches``) names the epoch in the index, since ``set_epoch`` cannot reach them."""
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        k, y, x, hflip, vflip, transpose = self.plan(epoch, i)
        (lo, lshape), (ho, hshape) = self.lr_index[k], self.hr_index[k]
        lr = self.lr_flat[lo : lo + int(np.prod(lshape))].reshape(lshape)
        hr = self.hr_flat[ho : ho + int(np.prod(hshape))].reshape(hshape)
        p, s = self.patch, self.scale
        lr, hr = lr[y : y + p, x : x + p], hr[y * s : (y + p) * s, x * s : (x + p) * s]
        if hflip:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        if vflip:
            lr, hr = lr[::-1], hr[::-1]
        if transpose:
            lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
        if self.y_channel:
            lr, hr = y_uint8(lr), y_uint8(hr)
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))))


class EpochBatches(torch.utils.data.Sampler):
    """Batch sampler of ``TrainPatches`` indices ``(epoch, i)`` for a DataLoader whose workers persist.

    ``set_epoch(e)`` (in the main process) picks the epoch; iterating yields ``iters`` lists, rank ``rank``
    of ``world`` taking its slice of each global batch of ``batch``, so DDP sees exactly the samples a single
    process would. The epoch travels inside each index because persistent workers never see ``set_epoch``.
    """

    def __init__(self, iters: int, batch: int, rank: int = 0, world: int = 1):
        self.iters, self.batch, self.rank, self.world, self.epoch = iters, batch, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.iters

    def __iter__(self):
        per_rank = self.batch // self.world
        for t in range(self.iters):
            start = t * self.batch + self.rank * per_rank
            yield [(self.epoch, i) for i in range(start, start + per_rank)]


def load_eval_set(name: str, scale: int, hr_prep: str = "modcrop", root=None,
                  limit: int | None = None) -> list[EvalPair]:
    """Whole evaluation images of a set, sorted by file name.

    Args:
        name: a set Name ("Set5", "Set14", "B100", "Urban100", "DIV2K_valid", "embedded_valid", ...) or a
            dataset key ("div2k", "embedded" -> their validation halves). Embedded sets are built on demand.
        scale: 2, 3 or 4.
        hr_prep: "modcrop" (HR cropped to a multiple of ``scale``; LR from the source's ``LR_bicubic/X{s}``
            when present, else MATLAB bicubic) or "resample" (the official PSPL script; see ``prepare.py``).
        limit: keep only the first ``limit`` images (None: all).
    Returns:
        list of EvalPair(name, lr uint8 (h, w, 3), hr uint8 (h*scale, w*scale, 3)).
    Raises FileNotFoundError (one line, with the fetch or repair command) when a downloadable set, or an LR
    image of a set that ships LR images at ``scale``, is not there; DamagedImageError when an image does not
    decode or an LR image does not match its HR.
    """
    folder = set_dir(name, root, "valid")
    files = sorted((folder / "HR").glob("*.png"))[:limit]
    shipped = hr_prep == "modcrop" and (folder / "LR_bicubic" / f"X{scale}").is_dir()
    pairs = []
    for f in files:
        lr_path = _lr_file(folder, f.stem, scale)
        if shipped and not lr_path.exists():  # computing this one image's LR instead would mix two protocols
            raise FileNotFoundError(f"{lr_path} is missing (the LR image of {folder.name}/HR/{f.name} at x{scale})"
                                    f"{_repair_of(lr_path)}")
        lr, hr = read_rgb(lr_path) if shipped else None, read_rgb(f)
        if lr is not None and lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise _mismatch(lr_path, lr.shape[:2], hr.shape[:2], scale)
        lr, hr = prepare_pair(hr, scale, hr_prep, lr)
        pairs.append(EvalPair(f.stem, lr, hr))
    return pairs



def is_available(name: str, root=None) -> bool:
    """True when set ``name`` is on disk (embedded sets count as available: they are built on demand)."""
    try:
        set_dir(name, root, "valid")
        return True
    except FileNotFoundError:
        return False


def inventory(root=None):
    """One row per set Name: whether it is present, its image count, the LR scales found on disk and whether
    it is a synthetic stand-in (``standin.py``) rather than the real set."""
    import pandas as pd

    root = resolve_root(root)
    rows = []
    for name in SET_NAMES:
        folder = root / name
        hr = sorted((folder / "HR").glob("*.png")) if folder.is_dir() else []
        scales = sorted(p.name for p in (folder / "LR_bicubic").glob("X*")) if hr else []
        rows.append(dict(set=name, present=bool(hr), images=len(hr), lr_scales=" ".join(scales),
                         standin=(folder / STANDIN_MARKER).is_file(), examples=", ".join(p.stem for p in hr[:3])))
    return pd.DataFrame(rows).set_index("set")


def compare_lr(name: str, scale: int, root=None, limit: int | None = None):
    """PSNR (dB, RGB, no shave) between a set's shipped LR files and the kit's MATLAB-style bicubic of its HR.

    Above ~50 dB the two are the same degradation; torch/OpenCV bicubic would give ~30 dB.
    Returns one row per image: set, scale, image, psnr_db.
    """
    import pandas as pd

    from pspl_nb.metrics import psnr

    rows = []
    for shipped in load_eval_set(name, scale, "modcrop", root, limit):
        kit, _ = prepare_pair(shipped.hr, scale, "modcrop")
        rows.append(dict(set=name, scale=scale, image=shipped.name, psnr_db=psnr(kit, shipped.lr, 0, y_channel=False)))
    return pd.DataFrame(rows)


class SetCheck(NamedTuple):
    """What ``verify`` found in one set: ``ok`` is False when anything is wrong; ``line`` says it in one line."""

    name: str
    ok: bool
    line: str


def expected_images(name: str, root=None) -> int:
    """How many images a complete copy of set ``name`` holds: the published count, the embedded recipe's,
    or for a stand-in the count it was built with."""
    marker = resolve_root(root) / name / STANDIN_MARKER
    if marker.is_file():
        return json.loads(marker.read_text())["recipe"]["images"]
    return len(embedded.images(name)) if name.startswith("embedded_") else EXPECTED_IMAGES[name]


def verify_set(name: str, root=None) -> SetCheck:
    """Check set ``name`` on disk: every HR and LR PNG decodes to its last pixel, each LR of scale s is
    ``(H // s, W // s)`` of its HR and no LR is missing in a scale folder that exists, and the HR count is
    ``expected_images``. Decodes in threads (PIL releases the GIL); ~2 min for all of DIV2K_train."""
    root = resolve_root(root)
    folder = root / name
    if not (folder / "HR").is_dir():
        return SetCheck(name, False, f"{name:<15} missing    {folder / 'HR'} is not there")
    problems = []

    def decoded_size(path: Path) -> tuple[int, int] | None:
        try:
            with Image.open(path) as img:
                img.load()
                return img.size
        except UNDECODABLE as err:
            problems.append(f"{path.relative_to(folder)} does not decode ({type(err).__name__}: {err})")
            return None

    hr = sorted((folder / "HR").glob("*.png"))
    scales = sorted(int(p.name[1:]) for p in (folder / "LR_bicubic").glob("X*") if p.name[1:].isdigit())
    lr = {(f, s): _lr_file(folder, f.stem, s) for s in scales for f in hr}
    for (f, s), path in lr.items():
        if not path.exists():
            problems.append(f"{path.relative_to(folder)} is missing")
    present = hr + [path for path in lr.values() if path.exists()]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        size = dict(zip(present, tqdm(pool.map(decoded_size, present), total=len(present), desc=f"verify {name}",
                                      leave=False)))
    for (f, s), path in lr.items():
        if size.get(f) and size.get(path) and size[path] != (size[f][0] // s, size[f][1] // s):
            w, h = size[f]
            problems.append(f"{path.relative_to(folder)} is {size[path][0]}x{size[path][1]}, expected "
                            f"{w // s}x{h // s} (HR {w}x{h} // {s})")
    expected = expected_images(name, root)
    if len(hr) != expected:
        problems.append(f"{len(hr)} HR images, expected {expected}")
    what = " (a synthetic STAND-IN, not the real set)" if standin.is_standin(name, root) else ""
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return SetCheck(name, False, f"{name:<15} DAMAGED    {sorted(problems)[0]}{more}{what}; repair with "
                                     f"`{repair_command(name, root)}`")
    lrs = " ".join(f"x{s}" for s in scales) or "none"
    return SetCheck(name, True, f"{name:<15} ok         {len(hr)} images, LR {lrs}{what}")


def verify(names=None, root=None) -> list[SetCheck]:
    """``verify_set`` for each of ``names`` (set Names; "div2k", "embedded" and "benchmarks" stand for their
    sets), or, when None, for every set present on disk. A name given but absent is reported missing."""
    root = resolve_root(root)
    if not names:
        names = [n for n in SET_NAMES if (root / n / "HR").is_dir()]
    groups = {**DATASET_KEYS, "embedded": tuple(embedded.SETS), "benchmarks": TEST_SETS}
    sets = [s for n in names for s in (groups[n.lower()] if n.lower() in groups else (set_name(n),))]
    return [verify_set(s, root) for s in dict.fromkeys(sets)]
