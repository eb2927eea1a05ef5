"""The trainer's CUDA and DDP branches, exercised on a CPU: CUDA's functions are replaced by recording
stand-ins, DDP runs as gloo processes, bf16 as CPU autocast. What only a GPU can settle (speed, CUDA
kernels' rounding) is measured by ``make gpu-check`` (bench/gpu_check.py) instead.

The CPU path itself must not move: ``test_cpu_histories_are_those_of_the_unchanged_trainer`` pins whole
runs to fingerprints taken from the trainer before the GPU path was reworked.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import pspl_nb.train as T
from pspl_nb.config import profile
from pspl_nb.models import MODELS, build_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}


def smoke(**kw):
    return profile("smoke", **kw)


# ---- bf16 autocast leaves the output image in float32 ------------------------------------------------------

def off_bf16_grid(t: torch.Tensor) -> float:
    """Share of the elements of a float32 tensor that bf16 cannot represent."""
    return (t != t.bfloat16().float()).float().mean().item()


@pytest.mark.parametrize("name", list(MODELS))
def test_under_bf16_autocast_the_criterion_receives_a_float32_image_off_the_bf16_grid(name):
    scale, channels = (2, 1) if name in ("drrn", "lapsrn") else (2, 3)
    torch.manual_seed(0)
    model = build_model(name, scale, "tiny", channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    low, high = torch.rand(2, channels, 12, 12) * 255, torch.rand(2, channels, 24, 24) * 255
    seen = []

    def criterion(sr, hr, age):
        seen.append(sr.detach())
        return (sr - hr).abs().mean()

    loss = T.train_step(model, criterion, optimizer, low, high, 1.0, torch.autocast("cpu", dtype=torch.bfloat16))
    assert torch.isfinite(loss)
    assert seen[0].dtype == torch.float32 and off_bf16_grid(seen[0]) > 0.9
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        inside = model(low)
    assert inside.dtype == torch.float32 and off_bf16_grid(inside) > 0.9


def test_imresize_keeps_its_input_dtype_and_values_under_autocast():
    from pspl_nb.resize import imresize

    x = torch.rand(2, 3, 10, 14) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = imresize(x, 2)
    assert inside.dtype == torch.float32 and torch.equal(inside, imresize(x, 2))


# ---- TF32 is a stated choice, and the SSIM map stays IEEE float32 ------------------------------------------

def test_the_ssim_map_filters_in_ieee_float32_whatever_the_tf32_setting(monkeypatch):
    import pspl_nb.ssim as S

    seen = []
    real = S._filter_moments
    monkeypatch.setattr(S, "_filter_moments", lambda *a: seen.append(
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)) or real(*a))
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        S.ssim_map(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), moments="float32")
        after = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert seen == [(False, False)] and after == (True, True)


# ---- evaluation: staged on the device, inference mode, batched by shape ------------------------------------

def test_batched_scores_equal_the_scores_of_one_image_at_a_time():
    from pspl_nb.metrics import scores_of_batch, scores_on_device

    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (3, 3, 40, 36), generator=g).float()
    sr = (hr + torch.randint(-9, 10, hr.shape, generator=g)).clamp(0, 255)
    sr[1] = hr[1]  # identical images: PSNR inf in both
    for y_channel in (True, False):
        batch = scores_of_batch(sr, hr, 2, y_channel, edsr_shave=8)
        for i in range(3):
            one = scores_on_device(sr[i:i + 1], hr[i:i + 1], 2, y_channel, edsr_shave=8)
            for key, value in one.items():
                assert batch[key][i].item() == pytest.approx(value, rel=1e-12, abs=1e-12), (key, i)


def test_batched_evaluation_of_staged_images_agrees_with_one_image_at_a_time(data_root):
    """Batches change only the float rounding inside the model (a batch of N convolves in another order than
    N batches of 1), so a few pixels may round to the other uint8 value: scores agree to 1e-3 dB."""
    from pspl_nb.data import EvalPair, load_eval_set
    from pspl_nb.evaluate import evaluate, shape_batches, stage_pairs

    pairs = load_eval_set("embedded_valid", 2, root=data_root)
    images = [EvalPair(f"{p.name}-{k}", p.lr[k:k + h, :w], p.hr[2 * k:2 * (k + h), :2 * w])
              for p in pairs for k in (0, 3) for h, w in ((20, 24), (16, 30))]  # two shapes, several images of each
    for name, channels in (("edsr_baseline", "rgb"), ("drrn", "y")):
        torch.manual_seed(0)
        model = build_model(name, 2, "tiny", 3 if channels == "rgb" else 1).train()
        one = evaluate(model, images, 2, channels, edsr_metric=True, batched=False)
        staged = stage_pairs(images, channels, "cpu")
        batched = evaluate(model, staged, 2, channels, edsr_metric=True, batched=True)
        assert model.training  # evaluation leaves the model's mode as it found it
        assert list(batched.image) == list(one.image) == [p.name for p in images]
        for column, tolerance in (("psnr", 1e-3), ("ssim", 1e-5), ("edsr_psnr", 1e-3)):
            np.testing.assert_allclose(batched[column], one[column], rtol=0, atol=tolerance)
        # the default on the CPU is one image at a time, the scores bit for bit those of the pairs
        pd.testing.assert_frame_equal(evaluate(model, staged, 2, channels, edsr_metric=True), one)
    groups = shape_batches(stage_pairs(images, "rgb", "cpu"), max_pixels=20 * 24 * 3)
    assert sorted(i for g in groups for i in g) == list(range(len(images))) and max(map(len, groups)) == 3
    assert all(len({tuple(images[i].lr.shape) for i in g}) == 1 for g in groups)


def test_evaluation_in_inference_mode_leaves_nothing_training_cannot_use(data_root):
    """Inference mode makes inference tensors; the resize matrices and SSIM buffers it caches are then used
    by training steps, which must be able to save them for backward and write into them."""
    from pspl_nb.data import EvalPair
    from pspl_nb.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model("vdsr", 2, "tiny")
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (13, 13, 3), dtype=np.uint8)  # the training patch's size: the same cache entries
    evaluate(model, [EvalPair("a", lr, rng.integers(0, 256, (26, 26, 3), dtype=np.uint8))], 2)
    criterion = T.make_criterion(smoke())
    optimizer = torch.optim.Adam(model.parameters())
    low, high = torch.rand(2, 3, 13, 13) * 255, torch.rand(2, 3, 26, 26) * 255
    off = torch.autocast("cpu", enabled=False)
    assert torch.isfinite(T.train_step(model, criterion, optimizer, low, high, 1.0, off))
