"""DRRN (Tai et al., "Image Super-Resolution via Deep Recursive Residual Network", CVPR 2017), B1U25.

One recursive block: an input conv gives H0, then U residual units, each pre-activation
ReLU-conv-ReLU-conv, whose output is added to H0 (local residual learning, multi-path). The two convs
are the same two modules in every unit (recursive learning: weights shared across units). A final
ReLU-conv reconstructs the residual that is added to the bicubic-upsampled input (global residual).

Follows the PSPL fork's DRRN template: 128 channels, no BatchNorm, convolutions without bias (which
makes the network positively homogeneous, so it needs no input normalisation: ``f(a*x) = a*f(x)``).
With one channel the full model has 297,216 parameters, the "297K" of the DRRN paper's B1U25.
Unlike the fork, the input image goes into the first conv without a ReLU in front of it.
"""

from torch import Tensor, nn

from pspl_nb.models.edsr import check_in_channels, check_scale, in_float32
from pspl_nb.resize import imresize

#: ``full``: B1U25 with 128 channels. ``small``: 5 units x 32 channels and ``tiny``: 3 units x 16, for CPU runs.
DRRN_PRESETS = {
    "full": {"num_block": 25, "num_feat": 128},
    "small": {"num_block": 5, "num_feat": 32},
    "tiny": {"num_block": 3, "num_feat": 16},
}


class DRRN(nn.Module):
    """DRRN with one recursive block of ``num_block`` weight-shared residual units.

    Maps LR (N, C, h, w) to SR (N, C, scale*h, scale*w), both nominally on [0, rgb_range]; the input is
    upsampled inside ``forward`` with MATLAB-compatible bicubic (``pspl_nb.resize.imresize``). Output not
    clamped.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        in_channels: 1 (Y, the paper's and template's setting) or 3 (RGB).
        num_feat: channels inside the recursive block (128).
        num_block: residual units U in the block (25).
        rgb_range: value range of the images; stored for callers only, since the bias-free network
            scales with its input.
    """

    SCALES = (2, 3, 4)

    def __init__(
        self, scale: int, in_channels: int = 3, num_feat: int = 128, num_block: int = 25, rgb_range: float = 255.0
    ):
        super().__init__()
        check_scale(scale, self.SCALES, "DRRN")
        check_in_channels(in_channels)
        self.scale, self.rgb_range, self.num_block = scale, rgb_range, num_block
        self.head = nn.Conv2d(in_channels, num_feat, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False)
        self.tail = nn.Conv2d(num_feat, in_channels, 3, padding=1, bias=False)
        self.act = nn.ReLU()  # not in-place: the first unit's input is H0, which every unit adds back

    def forward(self, x: Tensor) -> Tensor:
        """LR (N, C, h, w) on [0, rgb_range] -> SR (N, C, scale*h, scale*w)."""
        up = in_float32(lambda t: imresize(t, self.scale), x)
        h0 = self.head(up)
        h = h0
        for _ in range(self.num_block):
            h = h0 + self.conv2(self.act(self.conv1(self.act(h))))
        return in_float32(lambda f, u: u + self.tail(self.act(f)), h, up)  # reconstruction in float32
