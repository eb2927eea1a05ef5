"""The device-resident patch sampler gives the host loader's batches bit for bit (run here on CPU tensors)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pspl_nb.data import TrainPatches
from pspl_nb.data.datasets import EpochBatches
from pspl_nb.data.device_patches import DevicePatches, crop_index


@pytest.mark.parametrize("scale, y_channel", [(2, False), (3, True), (4, False)])
def test_device_batches_equal_the_host_loader(data_root, scale, y_channel):
    host = TrainPatches("embedded", scale, patch=12, batch=5, iters_per_epoch=4, seed=7, y_channel=y_channel,
                        root=data_root)
    device = DevicePatches(host, "cpu")
    sampler = EpochBatches(4, 5)
    loader = DataLoader(host, batch_sampler=sampler)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        for t, (lr, hr) in enumerate(loader):
            d_lr, d_hr = device.batch(epoch, range(t * 5, t * 5 + 5))
            assert d_lr.dtype == torch.uint8 and d_lr.shape == lr.shape and d_hr.shape == hr.shape
            assert torch.equal(d_lr, lr) and torch.equal(d_hr, hr)


def test_crop_index_applies_the_eight_flips_like_numpy():
    import numpy as np

    img = np.arange(5 * 6 * 2).reshape(5, 6, 2)  # H=5, W=6, C=2
    flat = torch.from_numpy(img.reshape(-1))
    for h in (0, 1):
        for v in (0, 1):
            for t in (0, 1):
                crop = img[1:4, 2:5]
                crop = crop[:, ::-1] if h else crop
                crop = crop[::-1] if v else crop
                crop = crop.transpose(1, 0, 2) if t else crop
                idx = crop_index(torch.tensor([0]), torch.tensor([6]), torch.tensor([1]), torch.tensor([2]),
                                 torch.tensor([[h, v, t]]), 3, 2)
                assert np.array_equal(flat[idx][0].numpy(), crop.transpose(2, 0, 1))


def test_epoch_batches_carry_the_epoch_and_split_ranks():
    sampler = EpochBatches(iters=2, batch=4, rank=1, world=2)
    sampler.set_epoch(5)
    assert list(sampler) == [[(5, 2), (5, 3)], [(5, 6), (5, 7)]]


def test_crop_tables_give_crop_index(data_root):
    from pspl_nb.data.device_patches import CropTables

    g = torch.Generator().manual_seed(0)
    for side, channels in ((5, 3), (8, 1)):
        tables = CropTables(side, channels, "cpu")
        starts, widths = torch.randint(0, 1000, (16,), generator=g), torch.randint(20, 40, (16,), generator=g)
        tops, lefts = torch.randint(0, 10, (16,), generator=g), torch.randint(0, 10, (16,), generator=g)
        flips = torch.randint(0, 2, (16, 3), generator=g)
        code = flips[:, 0] + 2 * flips[:, 1] + 4 * flips[:, 2]
        corner = channels * (starts + tops * widths + lefts)
        assert torch.equal(tables.index(corner, channels * widths, code),
                           crop_index(starts, widths, tops, lefts, flips, side, channels))


@pytest.mark.parametrize("y_channel", [False, True])
def test_a_planned_epoch_gives_the_host_loader_batches_in_a_few_kernels_without_host_work(data_root, monkeypatch,
                                                                                          y_channel):
    """Batches of ``DevicePatches.epoch`` equal the host loader's; once the epoch is planned (in the planner
    thread) a batch is at most 12 device kernels (operations other than views) and no draw happens on the
    training thread."""
    import threading

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += not func.is_view  # views (slices, reshapes) launch nothing
            return func(*args, **(kwargs or {}))

    host = TrainPatches("embedded", 2, patch=10, batch=4, iters_per_epoch=5, seed=3, y_channel=y_channel,
                        root=data_root)
    sampler = EpochBatches(5, 4)
    expected = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        expected[epoch] = list(DataLoader(host, batch_sampler=sampler))
    planned_on = []
    real = TrainPatches.plans
    monkeypatch.setattr(TrainPatches, "plans", lambda self, *a: planned_on.append(threading.current_thread().name)
                        or real(self, *a))
    device = DevicePatches(host, "cpu")
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        ids = [[i for _, i in indices] for indices in sampler]
        batches = device.epoch(epoch, ids)
        first = next(batches)  # the epoch's plan is made before the first batch
        counts, cut = [], [first]
        for _ in range(len(ids) - 1):
            with Count() as count:
                cut.append(next(batches))
            counts.append(count.ops)
        assert len(cut) == len(expected[epoch])
        for (lr, hr), (d_lr, d_hr) in zip(expected[epoch], cut):
            assert torch.equal(d_lr, lr) and torch.equal(d_hr, hr)
        assert max(counts) <= 12, counts
    assert planned_on and all(name.startswith("plan-epoch") for name in planned_on), planned_on


def test_luma_is_converted_in_bounded_chunks_with_the_same_result():
    """A DIV2K-shaped stand-in (100 images of DIV2K's 2040 x 1356 shape at 1/8 scale, x2 LR): converting it
    to luma for the device takes at most half of its uint8 size in host memory, and the chunks (here
    smaller than an image, and not dividing it) give the whole-set conversion bit for bit."""
    import tracemalloc
    from types import SimpleNamespace

    import pspl_nb.data.device_patches as D
    from pspl_nb.data.datasets import y_uint8

    rng = np.random.default_rng(0)
    hr_shape, lr_shape = (170, 255, 3), (85, 127, 3)
    n = 100
    hr = rng.integers(0, 256, size=n * int(np.prod(hr_shape)), dtype=np.uint8)
    lr = rng.integers(0, 256, size=n * int(np.prod(lr_shape)), dtype=np.uint8)
    standin = SimpleNamespace(
        lr_flat=lr, hr_flat=hr, y_channel=True, patch=16, scale=2,
        lr_index=[(k * int(np.prod(lr_shape)), lr_shape) for k in range(n)],
        hr_index=[(k * int(np.prod(hr_shape)), hr_shape) for k in range(n)])
    tracemalloc.start()
    try:
        device = DevicePatches(standin, "cpu")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = hr.nbytes + lr.nbytes
    assert peak <= 0.5 * size, f"{peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB set"
    assert torch.equal(device.hr, torch.from_numpy(y_uint8(hr.reshape(1, -1, 3))[0].reshape(-1)))

    chunked, _ = D.device_pixels(lr, True, "cpu")
    D_chunk = D.LUMA_CHUNK
    try:
        D.LUMA_CHUNK = 1000  # smaller than one LR image, and no divisor of it
        small, _ = D.device_pixels(lr, True, "cpu")
    finally:
        D.LUMA_CHUNK = D_chunk
    whole = torch.from_numpy(y_uint8(lr.reshape(1, -1, 3))[0].reshape(-1))
    assert torch.equal(chunked, whole) and torch.equal(small, whole)
