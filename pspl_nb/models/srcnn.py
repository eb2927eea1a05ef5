"""SRCNN (Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016), 9-5-5.

Three convolutions on the bicubic-upsampled image: 9x9 patch extraction to F features, 5x5 non-linear
mapping to F/2, 5x5 reconstruction; ReLU after the first two. "Same" padding keeps the output the size of
the upsampled input (the paper used valid convolutions and a smaller target). As in the PSPL fork's
SRCNN, RGB input has the DIV2K mean subtracted and added back.
"""

from torch import Tensor, nn

from pspl_nb.models.edsr import check_in_channels, check_scale, in_float32, mean_shift
from pspl_nb.resize import imresize

#: ``full``: the paper's 9-5-5 network with 64/32 features. ``small``: 48/24 and ``tiny``: 32/16 features,
#: for CPU runs.
SRCNN_PRESETS = {
    "full": {"num_feat": 64},
    "small": {"num_feat": 48},
    "tiny": {"num_feat": 32},
}


class SRCNN(nn.Module):
    """SRCNN 9-5-5; predicts the HR image directly (no global residual).

    Maps LR (N, C, h, w) to SR (N, C, scale*h, scale*w), both nominally on [0, rgb_range]; the input is
    first upsampled inside ``forward`` with MATLAB-compatible bicubic (``pspl_nb.resize.imresize``).
    Output not clamped.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        in_channels: 3 (RGB, DIV2K mean shift) or 1 (Y, no mean shift).
        num_feat: features of the first layer (64); the second layer has ``num_feat // 2`` (32).
        rgb_range: value range of the images (255 for [0, 255]).
    """

    SCALES = (2, 3, 4)

    def __init__(self, scale: int, in_channels: int = 3, num_feat: int = 64, rgb_range: float = 255.0):
        super().__init__()
        check_scale(scale, self.SCALES, "SRCNN")
        check_in_channels(in_channels)
        self.scale, self.rgb_range = scale, rgb_range
        self.sub_mean = mean_shift(in_channels, rgb_range, sign=-1)
        self.add_mean = mean_shift(in_channels, rgb_range, sign=+1)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, num_feat, 9, padding=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat, num_feat // 2, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // 2, in_channels, 5, padding=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        """LR (N, C, h, w) on [0, rgb_range] -> SR (N, C, scale*h, scale*w)."""
        up = in_float32(lambda t: self.sub_mean(imresize(t, self.scale)), x)
        feat = self.body[:-1](up)  # patch extraction and mapping
        return in_float32(lambda f: self.add_mean(self.body[-1](f)), feat)  # reconstruction, in float32
