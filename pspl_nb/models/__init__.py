"""The five super-resolution networks of the PSPL paper, picked by name.

Every model maps an LR batch (N, C, h, w) on [0, rgb_range] to SR (N, C, scale*h, scale*w) and takes the
same constructor vocabulary: ``scale``, ``in_channels``, ``num_feat``, ``num_block``, ``rgb_range``.
``build_model(name, scale, size)`` fills ``num_feat``/``num_block`` from the model's preset dict:
``"full"`` is the published architecture, ``"tiny"`` a small one that trains on a 2-core CPU and ``"small"``
one in between (about 4x tiny's arithmetic) for a stronger CPU regime.

``MODEL_CARDS`` records what the official PSPL code (Elin24/PSPL, template.py) trained each model with.
"""

from dataclasses import asdict, dataclass

import pandas as pd
from torch import nn

from pspl_nb.models.drrn import DRRN, DRRN_PRESETS
from pspl_nb.models.edsr import EDSR, EDSR_BASELINE_PRESETS, EDSR_PRESETS
from pspl_nb.models.lapsrn import LapSRN, LAPSRN_PRESETS
from pspl_nb.models.srcnn import SRCNN, SRCNN_PRESETS
from pspl_nb.models.vdsr import VDSR, VDSR_PRESETS

MODELS = {
    "srcnn": SRCNN,
    "vdsr": VDSR,
    "drrn": DRRN,
    "lapsrn": LapSRN,
    "edsr_baseline": EDSR,
    "edsr": EDSR,
}

PRESETS = {
    "srcnn": SRCNN_PRESETS,
    "vdsr": VDSR_PRESETS,
    "drrn": DRRN_PRESETS,
    "lapsrn": LAPSRN_PRESETS,
    "edsr_baseline": EDSR_BASELINE_PRESETS,
    "edsr": EDSR_PRESETS,
}

SIZES = ("full", "small", "tiny")


def build_model(name: str, scale: int, size: str = "full", in_channels: int = 3, rgb_range: float = 255.0) -> nn.Module:
    """Build a model by name with a size preset.

    Args:
        name: one of ``MODELS`` (srcnn, vdsr, drrn, lapsrn, edsr_baseline, edsr).
        scale: upscaling factor; 2, 3, 4 (LapSRN: 2, 4, 8).
        size: ``"full"`` (published architecture), ``"small"`` or ``"tiny"`` (CPU presets); see each
            model's ``*_PRESETS``.
        in_channels: 3 for RGB, 1 for the Y channel.
        rgb_range: value range of the images (255 for [0, 255], the official setting).

    Returns:
        A freshly initialised module mapping (N, C, h, w) -> (N, C, scale*h, scale*w).

    Raises:
        ValueError: unknown name or size, or a scale / in_channels the model does not support.
    """
    if name not in MODELS:
        raise ValueError(f"name must be one of {tuple(MODELS)}, got {name!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return MODELS[name](scale=scale, in_channels=in_channels, rgb_range=rgb_range, **PRESETS[name][size])


@dataclass(frozen=True)
class ModelCard:
    """How the official PSPL code configures one model, and where the architecture was published.

    ``hr_patch`` is the HR training patch the template sets; None where it keeps EDSR-PyTorch's default
    (``--patch_size 192``; its demo script uses 96 at x2, i.e. LR 48x48).
    """

    name: str
    architecture: str
    loss: str
    channels: str  # "RGB" or "Y": what the template trains on (``--n_colors``)
    bicubic_input: bool  # True: the network sees the bicubic-upsampled LR
    scales: tuple[int, ...]
    hr_patch: int | None
    paper: str


MODEL_CARDS = {
    "srcnn": ModelCard(
        "srcnn", "9-5-5 convs, 64/32 features, ReLU", "MSE", "RGB", True, SRCNN.SCALES, 128,
        "Dong et al., Image Super-Resolution Using Deep Convolutional Networks, TPAMI 2016",
    ),
    "vdsr": ModelCard(
        "vdsr", "20 conv layers x 64 ch, global residual", "L1", "RGB", True, VDSR.SCALES, 41,
        "Kim et al., Accurate Image Super-Resolution Using Very Deep Convolutional Networks, CVPR 2016",
    ),
    "drrn": ModelCard(
        "drrn", "B1U25, 128 ch, shared weights, no BN", "L1", "Y", True, DRRN.SCALES, None,
        "Tai et al., Image Super-Resolution via Deep Recursive Residual Network, CVPR 2017",
    ),
    "lapsrn": ModelCard(
        "lapsrn", "d=10 per x2 level, 64 ch, LeakyReLU 0.2", "MSE (original: Charbonnier)", "Y", False,
        LapSRN.SCALES, None,
        "Lai et al., Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution, CVPR 2017",
    ),
    "edsr_baseline": ModelCard(
        "edsr_baseline", "16 resblocks x 64 feats, res_scale 1", "L1", "RGB", False, EDSR.SCALES, None,
        "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017",
    ),
    "edsr": ModelCard(
        "edsr", "32 resblocks x 256 feats, res_scale 0.1", "L1", "RGB", False, EDSR.SCALES, None,
        "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017",
    ),
}


def model_card_table() -> pd.DataFrame:
    """``MODEL_CARDS`` as a DataFrame indexed by model name, one column per ``ModelCard`` field."""
    table = pd.DataFrame([asdict(card) for card in MODEL_CARDS.values()]).set_index("name")
    return table.astype({"hr_patch": "Int64"})  # keeps 128, 41 integers beside the missing ones
