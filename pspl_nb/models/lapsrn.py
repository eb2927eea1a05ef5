"""LapSRN (Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution", CVPR 2017).

Progressive x2 levels, log2(scale) of them. Each level has two branches:
- feature extraction: ``d`` 3x3 convs with LeakyReLU(0.2), then a 4x4 stride-2 transposed conv (x2) with
  LeakyReLU; a 3x3 conv turns these features into the level's residual image;
- image reconstruction: a 4x4 stride-2 transposed conv upsamples the previous level's image, and the
  residual is added.
Follows the PSPL fork's template (d = 10, 64 channels, convolutions without bias). The image upsampler
starts as bilinear interpolation, as in the LapSRN paper, so an untrained network is close to a bilinear
upsample. The fork's x3 is broken (a pyramid of x2 levels cannot reach it), so only 2, 4, 8 are offered.
"""

import math

import torch
from torch import Tensor, nn

from pspl_nb.models.edsr import check_in_channels, check_scale, in_float32

#: ``full``: d = 10 convs per level, 64 channels. ``small``: d = 4, 32 channels and ``tiny``: d = 2, 16, for CPU runs.
LAPSRN_PRESETS = {
    "full": {"num_block": 10, "num_feat": 64},
    "small": {"num_block": 4, "num_feat": 32},
    "tiny": {"num_block": 2, "num_feat": 16},
}


def bilinear_kernel() -> Tensor:
    """(4, 4) kernel that makes a stride-2, padding-1 transposed conv a bilinear x2 upsampler.

    Each output pixel lies 1/4 and 3/4 of the way between two input pixels: taps 0.25, 0.75, 0.75, 0.25.
    """
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return taps[:, None] * taps[None, :]


class PyramidLevel(nn.Module):
    """One x2 level: (features (N, F, h, w), image (N, C, h, w)) -> same at (2h, 2w)."""

    def __init__(self, in_channels: int, num_feat: int, num_block: int):
        super().__init__()
        layers = []
        for _ in range(num_block):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.ConvTranspose2d(num_feat, num_feat, 4, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.to_residual = nn.Conv2d(num_feat, in_channels, 3, padding=1, bias=False)
        self.upsample_image = nn.ConvTranspose2d(in_channels, in_channels, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():  # channel c upsamples channel c only
            self.upsample_image.weight.copy_(torch.eye(in_channels)[:, :, None, None] * bilinear_kernel())

    def forward(self, feat: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        """Return the upsampled features and the level's SR image."""
        feat = self.features(feat)
        # the image branch carries the output: float32 under autocast too (``in_float32``)
        return feat, in_float32(lambda f, im: self.upsample_image(im) + self.to_residual(f), feat, image)


class LapSRN(nn.Module):
    """LapSRN with log2(scale) x2 pyramid levels of ``num_block`` convs each.

    Maps LR (N, C, h, w) to SR (N, C, scale*h, scale*w), both nominally on [0, rgb_range]; the LR image is
    the input (no bicubic pre-upsampling). Output not clamped. ``forward_pyramid`` also returns the
    intermediate x2, x4, ... images (the original trains every level against a downscaled HR).

    Args:
        scale: upscaling factor, 2, 4 or 8.
        in_channels: 1 (Y, the paper's and template's setting) or 3 (RGB).
        num_feat: channels of the feature branch (64).
        num_block: convs per level, d (10).
        rgb_range: value range of the images; stored for callers only, since the bias-free network
            scales with its input.
    """

    SCALES = (2, 4, 8)

    def __init__(
        self, scale: int, in_channels: int = 3, num_feat: int = 64, num_block: int = 10, rgb_range: float = 255.0
    ):
        super().__init__()
        check_scale(scale, self.SCALES, "LapSRN", "the official fork's x3 is broken")
        check_in_channels(in_channels)
        self.scale, self.rgb_range = scale, rgb_range
        self.head = nn.Sequential(nn.Conv2d(in_channels, num_feat, 3, padding=1, bias=False), nn.LeakyReLU(0.2))
        self.levels = nn.ModuleList(
            [PyramidLevel(in_channels, num_feat, num_block) for _ in range(int(math.log2(scale)))]
        )

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """LR (N, C, h, w) -> [SR at x2 (N, C, 2h, 2w), x4, ..., x scale]."""
        feat, image, pyramid = self.head(x), x, []
        for level in self.levels:
            feat, image = level(feat, image)
            pyramid.append(image)
        return pyramid

    def forward(self, x: Tensor) -> Tensor:
        """LR (N, C, h, w) on [0, rgb_range] -> SR (N, C, scale*h, scale*w)."""
        return self.forward_pyramid(x)[-1]
