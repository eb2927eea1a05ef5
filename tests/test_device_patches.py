"""The device-resident patch sampler gives the host loader's batches bit for bit (run here on CPU tensors)."""
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
