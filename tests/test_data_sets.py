"""The embedded set, training patches (alignment, determinism, workers, Y channel, cache) and evaluation sets."""
import json
import os
import pickle
import socket

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pspl_nb.data import TrainPatches, embedded, ensure_embedded, load_eval_set, prepare_pair, y_uint8
from pspl_nb.resize import imresize_uint8


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A fresh data root holding the embedded set, built with every socket connection refused."""
    path = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()

    def no_network(*args, **kwargs):
        raise OSError("network used while building the embedded set")

    mp.setattr(socket.socket, "connect", no_network)
    try:
        assert ensure_embedded(path) == path
    finally:
        mp.undo()
    return path


def test_embedded_layout_split_and_sizes(root):
    for name, photos in embedded.SETS.items():
        hr = sorted(p.stem for p in (root / name / "HR").glob("*.png"))
        source = sorted({stem.rsplit("_", 1)[0] if name in embedded.TILED else stem for stem in hr})
        assert source == sorted(photos)
        for stem in hr:
            h, w = Image.open(root / name / "HR" / f"{stem}.png").size[::-1]
            assert h % 12 == 0 and w % 12 == 0
            for s in (2, 3, 4):
                lr = Image.open(root / name / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png")
                assert lr.mode == "RGB" and lr.size[::-1] == (h // s, w // s)
            if name in embedded.TILED:
                assert (h, w) == (embedded.TILE, embedded.TILE)
    assert not set(embedded.TRAIN) & set(embedded.VALID) and not set(embedded.TUNE) & (set(embedded.TRAIN) | set(embedded.VALID))
    both = {"motorcycle_left", "motorcycle_right"}  # near-duplicate stereo views: one side only
    assert both <= set(embedded.TRAIN) or both <= set(embedded.VALID)


def test_validation_tiles_are_crops_of_the_photograph_spread_over_it():
    img = np.arange(400 * 600 * 3, dtype=np.int64).reshape(400, 600, 3)
    crops = embedded.tiles(img, size=192, limit=4)  # a 2 x 3 grid of cells, 4 kept
    assert len(crops) == 4 and all(c.shape == (192, 192, 3) for c in crops)
    corners = [(int(c[0, 0, 0]) // 3 // 600, int(c[0, 0, 0]) // 3 % 600) for c in crops]
    assert corners[0] == (0, 0) and corners[-1] == (400 - 192, 600 - 192)  # first and last cell, at the borders
    assert len(set(corners)) == 4
    assert embedded.tiles(img[:100], size=192) == []  # too small for a tile


def test_embedded_lr_is_matlab_bicubic_of_hr(root):
    hr = np.asarray(Image.open(root / "embedded_valid/HR/chelsea_0.png"))
    lr = np.asarray(Image.open(root / "embedded_valid/LR_bicubic/X3/chelsea_0x3.png"))
    assert np.array_equal(lr, imresize_uint8(hr, out_shape=(hr.shape[0] // 3, hr.shape[1] // 3)))


def test_ensure_embedded_is_idempotent_and_rebuilds_a_stale_recipe(root, tmp_path):
    before = (root / "embedded_train/HR/astronaut.png").stat().st_mtime_ns
    ensure_embedded(root)
    assert (root / "embedded_train/HR/astronaut.png").stat().st_mtime_ns == before
    # A copy made by an older recipe is replaced, not trusted (here: a tiny fresh root to stay fast).
    (tmp_path / "embedded_valid").mkdir()
    (tmp_path / "embedded_valid" / embedded.MARKER).write_text(json.dumps({"version": 0}))
    (tmp_path / "embedded_train").mkdir()
    (tmp_path / "embedded_train" / embedded.MARKER).write_text(json.dumps(embedded.RECIPE))
    ensure_embedded(tmp_path)
    assert len(list((tmp_path / "embedded_valid/HR").glob("*.png"))) == len(embedded.images("embedded_valid"))
    assert not (tmp_path / "embedded_train/HR").exists()  # current marker: left alone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def as_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_patch_pairs_are_aligned(root, scale):
    """MATLAB bicubic of the HR patch reproduces the LR patch away from the patch border.

    The LR was made from the whole image, so the 2 outer LR pixels (the kernel's reach) see different
    neighbours and are excluded. Inside, the only freedom is the order of the two 1-D passes: MATLAB rounds
    and clips to uint8 after each, and a transposed patch swaps the order, which changes a few values by
    several levels near saturated edges. So each patch must match one of the two orders exactly (<= 1).
    """
    ds = TrainPatches("embedded", scale, 20, 4, iters_per_epoch=10, root=root)
    worst = shifted = 0
    for i in range(len(ds)):
        lr, hr = (as_hwc(t) for t in ds[i])
        assert lr.shape == (20, 20, 3) and hr.shape == (20 * scale, 20 * scale, 3)
        down = imresize_uint8(hr, out_shape=(20, 20)).astype(int)
        down_t = imresize_uint8(np.ascontiguousarray(hr.transpose(1, 0, 2)), out_shape=(20, 20)).transpose(1, 0, 2)
        inner = np.s_[2:-2, 2:-2]
        err = min(np.abs(down - lr)[inner].max(), np.abs(down_t - lr)[inner].max())
        worst = max(worst, err)
        shifted = max(shifted, np.abs(down[2:-3, 2:-2] - lr[3:-2, 2:-2]).max())  # one LR pixel off
    assert worst <= 1
    assert shifted > 10  # the check would see a misalignment


def batches(ds, workers):
    """Every batch of one epoch, as a list of (lr, hr)."""
    return list(DataLoader(ds, batch_size=ds.batch, shuffle=False, num_workers=workers))


def test_same_seed_same_batches_other_seed_other_batches(root):
    a = TrainPatches("embedded", 2, 16, 8, iters_per_epoch=3, seed=1, root=root)
    b = TrainPatches("embedded", 2, 16, 8, iters_per_epoch=3, seed=1, root=root)
    c = TrainPatches("embedded", 2, 16, 8, iters_per_epoch=3, seed=2, root=root)
    assert len(a) == 24 and len(batches(a, 0)) == 3
    for (la, ha), (lb, hb), (lc, _) in zip(batches(a, 0), batches(b, 0), batches(c, 0)):
        assert torch.equal(la, lb) and torch.equal(ha, hb) and not torch.equal(la, lc)
        assert la.dtype == torch.uint8 and la.shape == (8, 3, 16, 16) and ha.shape == (8, 3, 32, 32)
    first = a[0]
    a.set_epoch(1)
    assert not torch.equal(a[0][0], first[0])
    a.set_epoch(0)
    assert torch.equal(a[0][0], first[0])


def test_each_image_is_used_equally_often_per_epoch(root):
    ds = TrainPatches("embedded", 4, 16, 6, iters_per_epoch=5, root=root)
    assert np.bincount(ds.image_order()).tolist() == [5] * len(embedded.TRAIN)


def test_workers_give_the_same_batches(root):
    ds = TrainPatches("embedded", 3, 12, 4, iters_per_epoch=4, seed=5, root=root)
    ds.set_epoch(2)
    serial, parallel = batches(ds, 0), batches(ds, 2)
    assert len(serial) == len(parallel) == 4
    for (l0, h0), (l2, h2) in zip(serial, parallel):
        assert torch.equal(l0, l2) and torch.equal(h0, h2)


def test_pickling_reopens_the_cache_instead_of_copying_it(root):
    ds = TrainPatches("embedded", 2, 16, 4, iters_per_epoch=2, seed=7, root=root)
    ds.set_epoch(3)
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000  # the HR cache alone is ~9 MB
    clone = pickle.loads(blob)
    assert isinstance(clone.hr_flat, np.memmap) and clone.epoch == 3
    assert all(torch.equal(a, b) for a, b in zip(ds[5], clone[5]))


def test_y_channel_is_rounded_bt601_luma(root):
    rgb = TrainPatches("embedded", 2, 16, 2, iters_per_epoch=2, seed=3, root=root)
    y = TrainPatches("embedded", 2, 16, 2, iters_per_epoch=2, seed=3, y_channel=True, root=root)
    for i in range(len(y)):
        (lr, hr), (lr_rgb, hr_rgb) = y[i], rgb[i]
        assert lr.shape == (1, 16, 16) and hr.shape == (1, 32, 32) and lr.dtype == torch.uint8
        assert np.array_equal(as_hwc(hr), y_uint8(as_hwc(hr_rgb)))
        assert np.array_equal(as_hwc(lr), y_uint8(as_hwc(lr_rgb)))
    white = np.full((1, 1, 3), 255, np.uint8)
    assert y_uint8(white).item() == 235 and y_uint8(np.zeros_like(white)).item() == 16


def test_patch_larger_than_smallest_image_names_both(root):
    with pytest.raises(ValueError, match=r"patch 200 .*rocket \(105x159 at x4\)"):
        TrainPatches("embedded", 4, 200, 16, root=root)
    with pytest.raises(ValueError, match="scale"):
        TrainPatches("embedded", 0, 16, 16, root=root)


def test_decoded_images_are_cached_and_refreshed(root):
    TrainPatches("embedded", 2, 16, 4, root=root)
    cache = root / "embedded_train/cache"
    assert {p.name for p in cache.iterdir()} >= {"HR.npy", "HR.json", "LR_X2.npy", "LR_X2.json"}
    stamp = (cache / "HR.npy").stat().st_mtime_ns
    ds = TrainPatches("embedded", 2, 16, 4, root=root)
    assert (cache / "HR.npy").stat().st_mtime_ns == stamp and isinstance(ds.hr_flat, np.memmap)
    png = root / "embedded_train/HR/astronaut.png"
    os.utime(png, ns=(png.stat().st_atime_ns, png.stat().st_mtime_ns + 10**9))  # the image "changed"
    TrainPatches("embedded", 2, 16, 4, root=root)
    assert (cache / "HR.npy").stat().st_mtime_ns != stamp


def test_eval_set_embedded(root):
    pairs = load_eval_set("embedded", 3, root=root)
    assert [p.name for p in pairs] == sorted(embedded.images("embedded_valid"))
    for p in pairs:
        assert p.lr.dtype == np.uint8 and p.hr.shape == (p.lr.shape[0] * 3, p.lr.shape[1] * 3, 3)
    assert len(load_eval_set("embedded_valid", 2, root=root, limit=1)) == 1


@pytest.fixture
def odd_set(tmp_path):
    """A 'Set5' with one 31 x 46 HR image and an x2 LR file of zeros (so we can tell it was used)."""
    img = np.ascontiguousarray(skimage.data.astronaut()[100:131, 100:146])
    (tmp_path / "Set5/HR").mkdir(parents=True)
    (tmp_path / "Set5/LR_bicubic/X2").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "Set5/HR/a.png")
    Image.fromarray(np.zeros((15, 23, 3), np.uint8)).save(tmp_path / "Set5/LR_bicubic/X2/ax2.png")
    return tmp_path, img


def test_eval_protocols(odd_set):
    root, img = odd_set
    (pair,) = load_eval_set("Set5", 2, root=root)
    assert pair.hr.shape == (30, 46, 3) and np.array_equal(pair.hr, img[:30]) and not pair.lr.any()
    (pair3,) = load_eval_set("Set5", 3, root=root)  # no X3 folder: generated with MATLAB bicubic
    assert np.array_equal(pair3.lr, imresize_uint8(img[:30, :45], out_shape=(10, 15)))
    (res,) = load_eval_set("Set5", 3, hr_prep="resample", root=root)
    # The official script resizes 31 x 46 down to 30 x 45 (not a crop) and makes LR with PIL.
    assert res.hr.shape == (30, 45, 3) and not np.array_equal(res.hr, img[:30, :45])
    assert np.array_equal(res.lr, np.asarray(Image.fromarray(res.hr).resize((15, 10), Image.BICUBIC)))
    lr, hr = prepare_pair(img[:30, :45], 3, "resample")
    assert np.array_equal(hr, img[:30, :45])  # divisible: HR kept as is
    with pytest.raises(ValueError, match="hr_prep"):
        load_eval_set("Set5", 2, hr_prep="crop", root=root)


def test_missing_set_says_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_eval_set("Urban100", 4, root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "python -m pspl_nb.data fetch benchmarks" in msg and "embedded" in msg
    with pytest.raises(FileNotFoundError, match="fetch div2k"):
        TrainPatches("div2k", 2, 48, 16, root=tmp_path)
    with pytest.raises(ValueError, match="'Set6'"):
        load_eval_set("Set6", 2, root=tmp_path)


def test_a_set_another_process_built_meanwhile_is_kept_not_replaced(tmp_path, monkeypatch):
    """Two processes building the embedded sets at once (two grid workers on a fresh clone): the one that
    finishes second must not move away the set the first one installed and may already be reading."""
    real = embedded._write_set

    def racing(folder, name):  # while this process writes its copy, another installs a current one
        real(folder, name)
        other = tmp_path / name
        if not other.exists():
            (other / "HR").mkdir(parents=True)
            (other / embedded.MARKER).write_text(json.dumps(embedded.RECIPE))
            (other / "HR" / "theirs.txt").write_text("in use")

    monkeypatch.setattr(embedded, "_write_set", racing)
    monkeypatch.setattr(embedded, "SETS", {"embedded_tune": embedded.TUNE})
    ensure_embedded(tmp_path)
    assert (tmp_path / "embedded_tune" / "HR" / "theirs.txt").read_text() == "in use"
