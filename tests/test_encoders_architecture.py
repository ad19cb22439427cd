"""IR-SE backbone, map2style heads, pSp and e4e encoders: official key layout and forward behaviour."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from e4e_bench.errors import E4EBenchError
from encoders.e4e_encoder import Encoder4Editing
from encoders.ir_se import ArcFaceIRSE, IRSEBackbone, Subsample, body_units, num_layers_from_units
from encoders.map2style import GradualStyleBlock
from encoders.psp_encoder import GradualStyleEncoder, upsample_add
from tests.official_checkpoints import random_encoder

STYLE_DIM = 32


def official_encoder_shapes(n_styles: int) -> dict[str, tuple[int, ...]]:
    """The official encoder's state-dict keys and shapes, written out from the published key rules."""
    shapes: dict[str, tuple[int, ...]] = {}

    def batch_norm(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["input_layer.0.weight"] = (64, 3, 3, 3)
    batch_norm("input_layer.1", 64)
    shapes["input_layer.2.weight"] = (64,)
    units = [(64, 64)] * 3 + [(64, 128)] + [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 13
    units += [(256, 512)] + [(512, 512)] * 2
    for u, (cin, depth) in enumerate(units):
        if cin != depth:
            shapes[f"body.{u}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
            batch_norm(f"body.{u}.shortcut_layer.1", depth)
        batch_norm(f"body.{u}.res_layer.0", cin)
        shapes[f"body.{u}.res_layer.1.weight"] = (depth, cin, 3, 3)
        shapes[f"body.{u}.res_layer.2.weight"] = (depth,)
        shapes[f"body.{u}.res_layer.3.weight"] = (depth, depth, 3, 3)
        batch_norm(f"body.{u}.res_layer.4", depth)
        shapes[f"body.{u}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
        shapes[f"body.{u}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
    for s in range(n_styles):
        for m in range(4 if s < 3 else 5 if s < 7 else 6):
            shapes[f"styles.{s}.convs.{2 * m}.weight"] = (512, 512, 3, 3)
            shapes[f"styles.{s}.convs.{2 * m}.bias"] = (512,)
        shapes[f"styles.{s}.linear.weight"] = (512, 512)
        shapes[f"styles.{s}.linear.bias"] = (512,)
    shapes |= {"latlayer1.weight": (512, 256, 1, 1), "latlayer1.bias": (512,),
               "latlayer2.weight": (512, 128, 1, 1), "latlayer2.bias": (512,)}
    return shapes


@pytest.mark.parametrize("cls", [GradualStyleEncoder, Encoder4Editing])
@pytest.mark.parametrize("n_styles, n_keys, n_params", [(16, 593, 238_293_696), (18, 621, 267_136_704)])
def test_official_key_layout(cls, n_styles, n_keys, n_params):
    with torch.device("meta"):
        encoder = cls(n_styles)
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert shapes == official_encoder_shapes(n_styles)
    assert len(shapes) == n_keys
    assert sum(p.numel() for p in encoder.parameters()) == n_params


def test_narrow_widths_keep_the_official_key_names():
    with torch.device("meta"):
        narrow = GradualStyleEncoder(16, 64, stage_depths=(16, 24, 32, 48))
    assert list(narrow.state_dict()) == list(official_encoder_shapes(16))
    assert tuple(narrow.state_dict()["latlayer1.weight"].shape) == (48, 32, 1, 1)
    for bad in [(8, 16, 32, 64), (16, 16, 32, 64), (16, 32, 64)]:
        with pytest.raises(ValueError, match="4 increasing widths from at least 16"):
            GradualStyleEncoder(4, 8, stage_depths=bad)


@pytest.mark.parametrize("num_layers, n_units", [(50, 24), (100, 49), (152, 50)])
def test_irse_depths(num_layers, n_units):
    units = body_units(num_layers)
    assert len(units) == n_units and num_layers_from_units(n_units) == num_layers
    stage_sizes = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}[num_layers]
    stage_starts = [sum(stage_sizes[:k]) for k in range(4)]
    assert [u for u, (cin, depth, _) in enumerate(units) if cin != depth] == stage_starts[1:]
    assert [u for u, (_, _, stride) in enumerate(units) if stride == 2] == stage_starts
    with torch.device("meta"):
        backbone = IRSEBackbone(num_layers)
    assert backbone.tap_units[-1] == n_units - 1


def test_irse50_taps_the_official_units_and_the_cars_pyramid_sizes():
    backbone = IRSEBackbone(50).eval()
    assert backbone.tap_units == (6, 20, 23)
    with torch.inference_mode():
        c1, c2, c3 = backbone.pyramid(torch.randn(1, 3, 192, 256))
    assert [tuple(c.shape[1:]) for c in (c1, c2, c3)] == [(128, 48, 64), (256, 24, 32), (512, 12, 16)]


def test_subsample_is_a_kernel_one_max_pool():
    x = torch.randn(2, 4, 7, 10)
    assert torch.equal(Subsample(2)(x), nn.MaxPool2d(1, 2)(x))


def test_shortcut_convs_only_where_the_width_changes():
    with torch.device("meta"):
        backbone = IRSEBackbone(50)
    with_conv = [u for u, unit in enumerate(backbone.body) if isinstance(unit.shortcut_layer, nn.Sequential)]
    assert with_conv == [3, 7, 21]


def test_arcface_keys_and_unit_embeddings():
    with torch.device("meta"):
        arcface = ArcFaceIRSE(112, 50)
    keys = arcface.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"input_layer", "body", "output_layer"}
    assert tuple(arcface.state_dict()["output_layer.3.weight"].shape) == (512, 512 * 7 * 7)
    assert "output_layer.4.weight" in keys  # affine BatchNorm1d, as model_ir_se50.pth
    net = ArcFaceIRSE(112, 50).eval()
    with torch.inference_mode():
        embedding = net(torch.randn(2, 3, 112, 112))
    assert embedding.shape == (2, 512)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="112 or 224"):
        ArcFaceIRSE(128)


@pytest.mark.parametrize("spatial, n_convs", [(16, 4), (32, 5), (64, 6)])
def test_map2style_conv_count_and_slope(spatial, n_convs):
    block = GradualStyleBlock(8, 16, spatial)
    convs = [m for m in block.convs if isinstance(m, nn.Conv2d)]
    assert len(convs) == n_convs and all(c.stride == (2, 2) and c.bias is not None for c in convs)
    assert all(m.negative_slope == 0.01 for m in block.convs if isinstance(m, nn.LeakyReLU))
    assert block(torch.randn(3, 8, spatial, spatial)).shape == (3, 16)
    # The cars levels (12x16, 24x32, 48x64) also end at 1x1.
    assert block(torch.randn(1, 8, spatial * 3 // 4, spatial)).shape == (1, 16)
    with pytest.raises(E4EBenchError, match="expected 1x1: the encoder input is larger"):
        block(torch.randn(1, 8, spatial * 4, spatial * 4))


def test_map2style_forward_formula():
    block = GradualStyleBlock(4, 6, 2)
    x = torch.randn(2, 4, 2, 2)
    conv = block.convs[0]
    expected = nn.functional.leaky_relu(conv(x), 0.01).flatten(1) @ (block.linear.weight.T / 6**0.5) + block.linear.bias
    torch.testing.assert_close(block(x), expected)


def test_upsample_add_is_align_corners_bilinear():
    top, lateral = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 6, 8)
    out = upsample_add(top, lateral)
    # align_corners=True keeps the corner pixels of `top` exactly.
    torch.testing.assert_close((out - lateral)[..., [0, -1], :][..., [0, -1]], top[..., [0, -1], :][..., [0, -1]])


def head_inputs(encoder: GradualStyleEncoder, images: torch.Tensor) -> dict[int, tuple[int, ...]]:
    """Shape of the feature map each style head was called on."""
    seen: dict[int, tuple[int, ...]] = {}

    def record(index: int):
        def hook(module, args) -> None:
            seen[index] = tuple(args[0].shape)
        return hook

    hooks = [head.register_forward_pre_hook(record(i)) for i, head in enumerate(encoder.styles)]
    with torch.inference_mode():
        encoder(images)
    for hook in hooks:
        hook.remove()
    return seen


def test_psp_heads_read_coarse_medium_fine_levels():
    encoder = random_encoder("psp", 9, STYLE_DIM)
    seen = head_inputs(encoder, torch.randn(1, 3, 64, 64))
    assert [seen[i][2] for i in range(9)] == [4] * 3 + [8] * 4 + [16] * 2


def test_psp_styles_are_independent_predictions():
    encoder = random_encoder("psp", 8, STYLE_DIM)
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        before = encoder(images)
        encoder.styles[5].linear.bias.add_(1.0)
        after = encoder(images)
    changed = (after - before).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [i == 5 for i in range(8)]


def test_e4e_codes_are_base_plus_psp_offsets():
    images = torch.randn(2, 3, 32, 32)
    psp, e4e = random_encoder("psp", 8, STYLE_DIM), random_encoder("e4e", 8, STYLE_DIM)
    e4e.load_state_dict(psp.state_dict(), strict=True)
    with torch.inference_mode():
        heads, codes = psp(images), e4e(images)
    assert e4e.stage == e4e.last_stage == 7
    torch.testing.assert_close(codes[:, 0], heads[:, 0])
    torch.testing.assert_close(codes[:, 1:], heads[:, :1] + heads[:, 1:])


@pytest.mark.parametrize("stage", [0, 1, 3, 6])
def test_e4e_stage_switches_offsets_beyond_it_off(stage):
    encoder = random_encoder("e4e", 8, STYLE_DIM)
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        full = encoder(images)
        encoder.set_stage(stage)
        staged = encoder(images)
    torch.testing.assert_close(staged[:, : stage + 1], full[:, : stage + 1])
    torch.testing.assert_close(staged[:, stage + 1 :], staged[:, :1].expand(-1, 7 - stage, -1))
    assert not torch.equal(full[:, stage + 1], staged[:, stage + 1])
    # Heads of switched-off offsets are not even run.
    assert sorted(head_inputs(encoder, images)) == list(range(stage + 1))


def test_e4e_stage_range_is_checked():
    encoder = random_encoder("e4e", 4, STYLE_DIM)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=r"\[0, 3\]"):
            encoder.set_stage(bad)


def test_e4e_stage_is_not_in_the_state_dict():
    encoder = random_encoder("e4e", 4, STYLE_DIM)
    encoder.set_stage(1)
    assert set(encoder.state_dict()) == set(random_encoder("psp", 4, STYLE_DIM).state_dict())

