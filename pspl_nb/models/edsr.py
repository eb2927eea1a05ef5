"""EDSR and EDSR-baseline (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017).

Parameter names follow EDSR-PyTorch (``src/model/edsr.py`` and ``common.py``) so that the official
pretrained weights load with ``strict=True``::

    sub_mean, add_mean             1x1 convs holding the DIV2K mean (frozen)
    head.0                         conv C -> F
    body.{i}.body.0, body.{i}.body.2   the two convs of residual block i (body.{i}.body.1 is the ReLU)
    body.{num_block}               conv closing the body, before the long skip
    tail.0.{k}                     upsampler: conv F -> 4F + PixelShuffle(2) per x2 step, or F -> 9F + x3
    tail.1                         conv F -> C
"""

import math

import torch
from torch import Tensor, nn

# DIV2K training-set RGB mean on [0, 1], as hard-coded in EDSR-PyTorch.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

#: EDSR-baseline presets. ``full``: the published baseline (16 blocks x 64 features, res_scale 1,
#: 1.37 M parameters at x2). ``tiny``: 4 blocks x 32 features, for CPU runs. ``small``: 8 blocks x 48
#: features (about 4.5x tiny's arithmetic per pixel), a stronger model a 2-core CPU still trains in minutes.
EDSR_BASELINE_PRESETS = {
    "full": {"num_block": 16, "num_feat": 64, "res_scale": 1.0},
    "small": {"num_block": 8, "num_feat": 48, "res_scale": 1.0},
    "tiny": {"num_block": 4, "num_feat": 32, "res_scale": 1.0},
}

#: EDSR (paper) presets. ``full``: 32 blocks x 256 features with residual scaling 0.1 (40.7 M parameters
#: at x2). ``tiny``: the baseline's tiny size with the paper's residual scaling.
EDSR_PRESETS = {
    "full": {"num_block": 32, "num_feat": 256, "res_scale": 0.1},
    "small": {"num_block": 8, "num_feat": 48, "res_scale": 0.1},
    "tiny": {"num_block": 4, "num_feat": 32, "res_scale": 0.1},
}


class MeanShift(nn.Conv2d):
    """Add or subtract the DIV2K RGB mean, as a frozen 1x1 convolution.

    A convolution rather than a buffer because EDSR-PyTorch checkpoints store it as ``weight``/``bias``.
    Maps (N, 3, H, W) -> (N, 3, H, W): ``x + sign * rgb_range * mean`` per channel (std 1).

    Args:
        rgb_range: value range of the images, 255 for [0, 255] data.
        sign: -1 subtracts the mean (network input), +1 adds it back (network output).
    """

    def __init__(self, rgb_range: float, sign: int):
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_RGB_MEAN))
        for p in self.parameters():
            p.requires_grad = False


def mean_shift(in_channels: int, rgb_range: float, sign: int) -> nn.Module:
    """``MeanShift`` for RGB, identity for a single (Y) channel.

    The DIV2K mean is an RGB statistic; Y-channel models in the official code (DRRN, LapSRN) use no mean
    shift, so 1-channel variants of the RGB models skip it too.
    """
    if in_channels == 3:
        return MeanShift(rgb_range, sign)
    return nn.Identity()


def in_float32(layer, *xs: Tensor) -> Tensor:
    """``layer(*xs)`` computed in float32 (or wider) even inside a bf16 autocast region.

    Every model writes its output image through here: the last convolution, the mean shift and the
    bicubic skip. In bf16 an image on [0, 255] has steps of 1.0 on [128, 256), so a bf16 output would make
    many residuals ``sr - hr`` exactly 0 (no L1 gradient) and PSPL's SSIM map would read the rounding as
    structure in flat regions. The layers before stay in autocast's precision. Outside autocast this is
    ``layer(*xs)`` with the same operations, so float32 results do not change.

    Args:
        layer: a module or function of the tensors ``xs`` (any shapes).
        xs: float tensors; bf16/fp16 ones are widened to float32, float32/float64 ones kept as they are.
    Returns:
        ``layer``'s output, float32 for float32 parameters.
    """
    with torch.autocast(xs[0].device.type, enabled=False):
        return layer(*(x.to(torch.promote_types(x.dtype, torch.float32)) for x in xs))


def check_in_channels(in_channels: int) -> None:
    """Raise ValueError unless ``in_channels`` is 1 (Y) or 3 (RGB)."""
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (Y) or 3 (RGB), got {in_channels!r}")


def check_scale(scale: int, allowed: tuple[int, ...], model: str, why: str = "") -> None:
    """Raise ValueError unless ``scale`` is one of ``allowed`` for ``model``; ``why`` is appended in brackets."""
    if scale not in allowed:
        raise ValueError(f"scale must be one of {allowed} for {model}, got {scale!r}" + (f" ({why})" if why else ""))


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """3x3 convolution with bias and "same" padding (EDSR-PyTorch's ``default_conv``)."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale`` and added to the input; no BatchNorm (EDSR Fig. 2).

    Submodules are ``body.0`` (conv), ``body.1`` (ReLU), ``body.2`` (conv), as in EDSR-PyTorch.
    """

    def __init__(self, num_feat: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(conv3x3(num_feat, num_feat), nn.ReLU(inplace=True), conv3x3(num_feat, num_feat))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        """(N, F, H, W) -> (N, F, H, W)."""
        return x + self.res_scale * self.body(x)


def upsampler(scale: int, num_feat: int) -> nn.Sequential:
    """Sub-pixel upsampler: per x2 step a conv to 4F channels + PixelShuffle(2); x3 uses 9F + PixelShuffle(3).

    Maps (N, F, h, w) -> (N, F, scale*h, scale*w). Scales 2, 4, 8 (powers of two) and 3.
    """
    if scale == 3:
        layers = [conv3x3(num_feat, 9 * num_feat), nn.PixelShuffle(3)]
    else:
        layers = []
        for _ in range(int(math.log2(scale))):
            layers += [conv3x3(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR / EDSR-baseline super-resolution network (Lim et al., CVPRW 2017).

    Maps an LR image (N, C, h, w) to SR (N, C, scale*h, scale*w); both nominally on [0, rgb_range]. The
    output is not clamped: evaluation clamps and rounds (docs/protocol.md#quantisation), training needs the gradient.

    Args:
        scale: upscaling factor, 2, 3 or 4 (the published and pretrained ones).
        in_channels: 3 (RGB, with the DIV2K mean shift) or 1 (Y, no mean shift).
        num_feat: feature channels F (64 baseline, 256 paper).
        num_block: residual blocks (16 baseline, 32 paper).
        res_scale: residual scaling inside each block (1 baseline, 0.1 paper, to keep 32x256 stable).
        rgb_range: value range of the images (255 for [0, 255]).
    """

    SCALES = (2, 3, 4)

    def __init__(
        self,
        scale: int,
        in_channels: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ):
        super().__init__()
        check_scale(scale, self.SCALES, "EDSR")
        check_in_channels(in_channels)
        self.scale, self.rgb_range = scale, rgb_range
        # Registration order fixes the state_dict order; it matches EDSR-PyTorch's.
        self.sub_mean = mean_shift(in_channels, rgb_range, sign=-1)
        self.add_mean = mean_shift(in_channels, rgb_range, sign=+1)
        self.head = nn.Sequential(conv3x3(in_channels, num_feat))
        self.body = nn.Sequential(
            *[ResBlock(num_feat, res_scale) for _ in range(num_block)], conv3x3(num_feat, num_feat)
        )
        self.tail = nn.Sequential(upsampler(scale, num_feat), conv3x3(num_feat, in_channels))

    def forward(self, x: Tensor) -> Tensor:
        """LR (N, C, h, w) on [0, rgb_range] -> SR (N, C, scale*h, scale*w)."""
        feat = self.head(in_float32(self.sub_mean, x))
        feat = feat + self.body(feat)  # long skip over all residual blocks
        return in_float32(self.to_image, self.tail[0](feat))  # tail[0] upsamples, tail[1] writes the image

    def to_image(self, feat: Tensor) -> Tensor:
        """Upsampled features (N, F, sh, sw) -> SR (N, C, sh, sw): the last conv and the mean added back."""
        return self.add_mean(self.tail[1](feat))
