"""VDSR (Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016).

20 3x3 convolutions (C -> F, 18 x F -> F, F -> C) with ReLU between them learn the residual that is added
to the bicubic-upsampled input. As in EDSR-PyTorch's VDSR, RGB input has the DIV2K mean subtracted before
the convolutions; the skip adds the un-shifted upsample, so a zero residual is exactly bicubic.
"""

from torch import Tensor, nn

from pspl_nb.models.edsr import check_in_channels, check_scale, in_float32, mean_shift
from pspl_nb.resize import imresize

#: ``full``: the paper's 20 layers x 64 channels. ``small``: 10 layers x 32 and ``tiny``: 6 layers x 16
#: channels, for CPU runs.
VDSR_PRESETS = {
    "full": {"num_block": 20, "num_feat": 64},
    "small": {"num_block": 10, "num_feat": 32},
    "tiny": {"num_block": 6, "num_feat": 16},
}


class VDSR(nn.Module):
    """VDSR: very deep plain CNN with a global residual to the bicubic upsample.

    Maps LR (N, C, h, w) to SR (N, C, scale*h, scale*w), both nominally on [0, rgb_range]; the input is
    upsampled inside ``forward`` with MATLAB-compatible bicubic (``pspl_nb.resize.imresize``). Output not
    clamped.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        in_channels: 3 (RGB, DIV2K mean shift) or 1 (Y, no mean shift; the paper's setting).
        num_feat: channels of the hidden layers (64).
        num_block: total number of conv layers including first and last (20); at least 2.
        rgb_range: value range of the images (255 for [0, 255]).
    """

    SCALES = (2, 3, 4)

    def __init__(
        self, scale: int, in_channels: int = 3, num_feat: int = 64, num_block: int = 20, rgb_range: float = 255.0
    ):
        super().__init__()
        check_scale(scale, self.SCALES, "VDSR")
        check_in_channels(in_channels)
        if num_block < 2:
            raise ValueError(f"num_block must be >= 2 for VDSR (first and last conv), got {num_block!r}")
        self.scale, self.rgb_range = scale, rgb_range
        self.sub_mean = mean_shift(in_channels, rgb_range, sign=-1)
        layers = [nn.Conv2d(in_channels, num_feat, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(num_block - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_feat, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """LR (N, C, h, w) on [0, rgb_range] -> SR (N, C, scale*h, scale*w)."""
        up = in_float32(lambda t: imresize(t, self.scale), x)
        feat = self.body[:-1](in_float32(self.sub_mean, up))
        return in_float32(lambda f, u: u + self.body[-1](f), feat, up)  # last conv and skip in float32
