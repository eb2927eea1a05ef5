"""Tests for pspl_nb.models: published parameter counts, EDSR-PyTorch checkpoint names, shapes, residual paths.

Expected values come from hand arithmetic over each paper's architecture and from EDSR-PyTorch's
module layout, never from the modules under test.
"""

import pytest
import torch

from pspl_nb.models import MODEL_CARDS, MODELS, PRESETS, SIZES, build_model, model_card_table
from pspl_nb.models.edsr import DIV2K_RGB_MEAN
from pspl_nb.resize import imresize

SCALES = {name: (2, 4, 8) if name == "lapsrn" else (2, 3, 4) for name in MODELS}
GRID = [(name, scale) for name in MODELS for scale in SCALES[name]]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv(cin, cout, k, bias=True):
    """Parameters of a k x k convolution (or transposed convolution)."""
    return cin * k * k * cout + (cout if bias else 0)


def expected_params(name, scale, c):
    """Full-size parameter count from each paper's layer list."""
    if name == "srcnn":  # 9-5-5, 64/32 features
        return conv(c, 64, 9) + conv(64, 32, 5) + conv(32, c, 5)
    if name == "vdsr":  # 20 layers: c->64, 18 x 64->64, 64->c
        return conv(c, 64, 3) + 18 * conv(64, 64, 3) + conv(64, c, 3)
    if name == "drrn":  # head, two convs shared by all 25 units, tail; no bias
        return conv(c, 128, 3, False) + 2 * conv(128, 128, 3, False) + conv(128, c, 3, False)
    if name == "lapsrn":  # per x2 level: 10 convs, 4x4 feature deconv, residual conv, 4x4 image deconv
        level = 10 * conv(64, 64, 3, False) + conv(64, 64, 4, False) + conv(64, c, 3, False) + conv(c, c, 4, False)
        return conv(c, 64, 3, False) + {2: 1, 4: 2, 8: 3}[scale] * level
    feat, blocks = {"edsr_baseline": (64, 16), "edsr": (256, 32)}[name]
    upsampler = conv(feat, 9 * feat, 3) if scale == 3 else {2: 1, 4: 2}[scale] * conv(feat, 4 * feat, 3)
    return conv(c, feat, 3) + blocks * 2 * conv(feat, feat, 3) + conv(feat, feat, 3) + upsampler + conv(feat, c, 3)


def test_edsr_baseline_x2_has_published_parameter_count():
    assert trainable(build_model("edsr_baseline", 2)) == 1_369_859


@pytest.mark.parametrize("name, scale", GRID)
def test_full_size_parameter_count_and_shape(name, scale):
    model = build_model(name, scale, "full")
    assert trainable(model) == expected_params(name, scale, 3)
    out = model(torch.rand(1, 3, 6, 5) * 255)
    assert out.shape == (1, 3, 6 * scale, 5 * scale)


def test_y_channel_counts_match_papers():
    # SRCNN 9-5-5 weights without biases: 81*64 + 64*25*32 + 32*25 = 57,184; DRRN B1U25: "297K".
    assert trainable(build_model("srcnn", 2, in_channels=1)) == 57_184 + 64 + 32 + 1
    assert trainable(build_model("drrn", 2, in_channels=1)) == 297_216
    assert trainable(build_model("edsr", 4)) == 43_089_923  # the EDSR paper's "43M"


def test_drrn_units_share_weights():
    small = build_model("drrn", 2, "tiny")
    deeper = MODELS["drrn"](scale=2, num_feat=PRESETS["drrn"]["tiny"]["num_feat"], num_block=9)
    assert trainable(small) == trainable(deeper)


@pytest.mark.parametrize("name, scale", GRID)
@pytest.mark.parametrize("in_channels", [3, 1])
def test_tiny_output_shape(name, scale, in_channels):
    model = build_model(name, scale, "tiny", in_channels=in_channels)
    out = model(torch.rand(2, in_channels, 7, 5) * 255)
    assert out.shape == (2, in_channels, 7 * scale, 5 * scale)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert trainable(model) < expected_params(name, scale, in_channels)


def edsr_official_shapes(scale, feat=64, blocks=16):
    """Key -> shape of an EDSR-PyTorch checkpoint (src/model/edsr.py + common.py), in state_dict order."""
    shapes = {
        "sub_mean.weight": (3, 3, 1, 1),
        "sub_mean.bias": (3,),
        "add_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.0.weight": (feat, 3, 3, 3),
        "head.0.bias": (feat,),
    }
    for i in range(blocks):
        for j in (0, 2):  # body.{i}.body.1 is the ReLU
            shapes[f"body.{i}.body.{j}.weight"] = (feat, feat, 3, 3)
            shapes[f"body.{i}.body.{j}.bias"] = (feat,)
    shapes[f"body.{blocks}.weight"] = (feat, feat, 3, 3)
    shapes[f"body.{blocks}.bias"] = (feat,)
    steps = {2: [0], 3: [0], 4: [0, 2]}[scale]  # conv, PixelShuffle, conv, PixelShuffle
    width = 9 * feat if scale == 3 else 4 * feat
    for k in steps:
        shapes[f"tail.0.{k}.weight"] = (width, feat, 3, 3)
        shapes[f"tail.0.{k}.bias"] = (width,)
    shapes["tail.1.weight"] = (3, feat, 3, 3)
    shapes["tail.1.bias"] = (3,)
    return shapes


def test_edsr_baseline_x2_state_dict_keys_are_edsr_pytorch_keys():
    keys = list(build_model("edsr_baseline", 2).state_dict())
    assert keys[:6] == ["sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias",
                        "head.0.weight", "head.0.bias"]
    assert keys[6:10] == ["body.0.body.0.weight", "body.0.body.0.bias", "body.0.body.2.weight", "body.0.body.2.bias"]
    assert keys[-6:] == ["body.16.weight", "body.16.bias", "tail.0.0.weight", "tail.0.0.bias",
                         "tail.1.weight", "tail.1.bias"]
    assert len(keys) == 6 + 16 * 4 + 2 + 2 + 2
    assert keys == list(edsr_official_shapes(2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_baseline_loads_official_layout_strictly(scale):
    model = build_model("edsr_baseline", scale)
    official = {k: torch.randn(shape) for k, shape in edsr_official_shapes(scale).items()}
    model.load_state_dict(official, strict=True)
    assert torch.equal(model.tail[1].weight, official["tail.1.weight"])


def test_edsr_mean_shift_is_frozen_div2k_mean():
    model = build_model("edsr_baseline", 2, rgb_range=255.0)
    x = torch.rand(1, 3, 4, 4) * 255
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1) * 255
    assert torch.allclose(model.sub_mean(x), x - mean, atol=1e-4)
    assert torch.allclose(model.add_mean(x), x + mean, atol=1e-4)
    assert not any(p.requires_grad for p in [*model.sub_mean.parameters(), *model.add_mean.parameters()])
    assert DIV2K_RGB_MEAN == (0.4488, 0.4371, 0.4040)


def test_edsr_res_scale_presets():
    assert all(block.res_scale == 1.0 for block in build_model("edsr_baseline", 2, "tiny").body[:-1])
    assert all(block.res_scale == 0.1 for block in build_model("edsr", 2, "tiny").body[:-1])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_small_sits_between_tiny_and_full(name):
    """The CPU presets are strictly smaller than the published size and ordered tiny < small < full."""
    count = {size: sum(p.numel() for p in build_model(name, 2, size).parameters()) for size in SIZES}
    assert count["tiny"] < count["small"] < count["full"]
    x = torch.rand(1, 3, 6, 5) * 255
    assert build_model(name, 2, "small")(x).shape == (1, 3, 12, 10)


def test_small_edsr_baseline_is_8_blocks_of_48_features():
    model = build_model("edsr_baseline", 2, "small")
    assert len(model.body) == 9 and model.head[0].out_channels == 48  # 8 residual blocks + the closing conv


@pytest.mark.parametrize("name", ["vdsr", "drrn"])
@pytest.mark.parametrize("scale", [2, 3])
def test_zero_residual_gives_exactly_bicubic(name, scale):
    model = build_model(name, scale, "tiny")
    last = model.body[-1] if name == "vdsr" else model.tail
    with torch.no_grad():
        for p in last.parameters():
            p.zero_()
    x = torch.rand(2, 3, 9, 7) * 255
    assert torch.equal(model(x), imresize(x, scale))


def centre_identity_(conv, gain=1.0):
    """Make ``conv`` copy input channel c to output channel c (times ``gain``), other weights zero."""
    with torch.no_grad():
        conv.weight.zero_()
        k = conv.kernel_size[0] // 2
        for c in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[c, c, k, k] = gain


def test_drrn_recursion_follows_the_paper_equation():
    # DRRN eq.: H_u = H_0 + conv2(relu(conv1(relu(H_{u-1})))). With identity convs scaled by a and b and
    # positive signals (ReLUs pass), H_U = H_0 * sum_{k=0..U} (ab)^k, and SR = up + H_U.
    model = build_model("drrn", 2, "tiny")
    units = PRESETS["drrn"]["tiny"]["num_block"]
    a, b = 2.0, 0.25
    for conv_, gain in [(model.head, 1.0), (model.conv1, a), (model.conv2, b), (model.tail, 1.0)]:
        centre_identity_(conv_, gain)
    x = 100 + torch.rand(1, 3, 6, 6)  # bicubic overshoot stays far above 0
    up = imresize(x, 2)
    torch.testing.assert_close(model(x), up * (1 + sum((a * b) ** k for k in range(units + 1))))
    # Negative features: every pre-activation ReLU (including the one before the tail) zeroes them.
    centre_identity_(model.head, -1.0)
    torch.testing.assert_close(model(x), up)


def test_vdsr_convolutions_see_the_mean_shifted_upsample():
    model = build_model("vdsr", 2, "tiny")
    seen = []
    model.body[0].register_forward_pre_hook(lambda _module, args: seen.append(args[0].clone()))  # the first conv
    x = torch.rand(1, 3, 5, 5) * 255
    model(x)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(seen[0], imresize(x, 2) - mean)


@pytest.mark.parametrize("scale", [2, 3])
def test_srcnn_identity_weights_give_bicubic(scale):
    # SRCNN has no global residual; with centre-tap identity convs and a large positive offset (so the
    # ReLUs pass everything) the whole network reduces to its input, the bicubic upsample.
    model = build_model("srcnn", scale, "tiny")
    offset = 1000.0
    with torch.no_grad():
        for layer in model.body[::2]:
            centre_identity_(layer)
            layer.bias.zero_()
        model.body[0].bias[:3] = offset
        model.body[4].bias[:] = -offset
    x = torch.rand(2, 3, 9, 7) * 255
    torch.testing.assert_close(model(x), imresize(x, scale), atol=1e-3, rtol=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_lapsrn_image_branch_starts_bilinear(scale):
    # Bilinear x2 reproduces a linear ramp away from the borders: output column j sits at input
    # coordinate (j + 0.5) / 2 - 0.5; composing levels keeps that true for x4.
    model = build_model("lapsrn", scale, "tiny", in_channels=1)
    with torch.no_grad():
        for level in model.levels:
            level.to_residual.weight.zero_()
    h, w, margin = 8, 16, 2 * scale  # the deconv's border outputs miss a tap: skip them
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w)
    out = model(ramp)[0, 0, margin:-margin, margin:-margin]
    j = torch.arange(margin, scale * w - margin, dtype=torch.float32)
    torch.testing.assert_close(out, ((j + 0.5) / scale - 0.5).expand_as(out))


def test_lapsrn_pyramid_has_every_level():
    model = build_model("lapsrn", 8, "tiny")
    x = torch.rand(1, 3, 5, 4)
    pyramid = model.forward_pyramid(x)
    assert [p.shape[-2:] for p in pyramid] == [(10, 8), (20, 16), (40, 32)]
    assert torch.equal(pyramid[-1], model(x))


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_reach_every_trainable_parameter(name):
    model = build_model(name, 2, "tiny")
    x = torch.rand(2, 3, 8, 8) * 255
    (model(x) - torch.rand(2, 3, 16, 16) * 255).abs().mean().backward()
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key
        else:
            assert p.grad is None, key


@pytest.mark.parametrize("name", ["srcnn", "vdsr", "edsr_baseline"])
def test_y_channel_models_have_no_rgb_mean_shift(name):
    keys = build_model(name, 2, "tiny", in_channels=1).state_dict()
    assert not any("mean" in k for k in keys)


def test_lapsrn_x3_is_refused():
    with pytest.raises(ValueError, match=r"LapSRN, got 3.*x3 is broken") as err:
        build_model("lapsrn", 3)
    assert "(2, 4, 8)" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"name": "srgan", "scale": 2}, "'srgan'"),
        ({"name": "vdsr", "scale": 2, "size": "medium"}, "'medium'"),
        ({"name": "edsr", "scale": 5}, "got 5"),
        ({"name": "drrn", "scale": 2, "in_channels": 2}, "got 2"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, bad):
    with pytest.raises(ValueError) as err:
        build_model(**kwargs)
    assert bad in str(err.value) and "\n" not in str(err.value)


def test_model_cards_follow_official_templates():
    table = model_card_table()
    assert list(table.index) == list(MODELS)
    assert set(MODEL_CARDS) == set(MODELS) == set(PRESETS)
    assert table.loc[["srcnn", "vdsr", "drrn"], "bicubic_input"].all()
    assert not table.loc[["lapsrn", "edsr_baseline", "edsr"], "bicubic_input"].any()
    assert list(table.loc[table["channels"] == "Y"].index) == ["drrn", "lapsrn"]
    assert table.loc["srcnn", "loss"] == "MSE" and table.loc["srcnn", "hr_patch"] == 128
    assert table.loc["lapsrn", "scales"] == (2, 4, 8)
