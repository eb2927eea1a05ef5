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
