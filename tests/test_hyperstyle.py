"""HyperStyle: the per-image weight offsets against generators whose weights are multiplied by hand,
the hypernetwork's official names and shapes, strict loading, the W encoder read off its weights, and
the inversion loop against a reference that accumulates full offsets pass by pass, as the official does."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from e4e_bench.checkpoints import load_generator, read_checkpoint, save_checkpoint
from e4e_bench.cli import main
from e4e_bench.data import list_images, load_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import WeightSource
from e4e_bench.networks.generator import Generator
from encoders.checkpoint import load_inverter
from encoders.hypernetwork import SharedWeightsHyperNetResNet, layer_shapes
from encoders.hyperstyle import HyperStyle
from encoders.hyperstyle_checkpoint import load_hyperstyle, load_w_encoder, save_hyperstyle
from encoders.hyperstyle_method import HYPER_CODES, HyperStyleMethod, HyperStyleOptions
from encoders.w_encoder import WEncoder
from tests.conftest import TINY_CARS, make_tiny_generator, write_images
from tests.official_checkpoints import write_official_checkpoint
from tests.test_latents import decoded_frames, reconstructions
from tests.test_restyle import official_resnet_keys

TINY_HYPERNET = dict(stage_depths=(8, 8, 16, 16), width=16, refinement_inner=8, shared_inner=8)


def images(n: int, seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, *TINY_CARS.encoder_input, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def scaled_down(module: torch.nn.Module, factor: float = 0.05) -> torch.nn.Module:
    """Random heads give offsets far above 1; scale the output layers so the images stay images."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.startswith("shared_weight_hypernet.") or ".output." in name:
                parameter.mul_(factor)
    return module


def tiny_model(generator: Generator, tuned=None, seed: int = 0) -> HyperStyle:
    torch.manual_seed(seed)
    hypernet = scaled_down(SharedWeightsHyperNetResNet(layer_shapes(generator), tuned, **TINY_HYPERNET))
    w_encoder = WEncoder(generator.n_latent, generator.style_dim, stage_depths=(16, 24, 32, 48))
    latent_avg = generator.mean_latent(500, rng=torch.Generator().manual_seed(seed))
    return HyperStyle(hypernet, generator, w_encoder, latent_avg).eval()


@pytest.fixture(scope="module")
def generator() -> Generator:
    """Narrower from 16 px: layers 5, 6, 8 and 9 leave the shared head's shape and get their own heads."""
    torch.manual_seed(0)
    return Generator(32, style_dim=64, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model(generator) -> HyperStyle:
    return tiny_model(generator, tuned=range(len(generator.modulated_layers())))  # toRGBs too: every kind of head


def method(model: HyperStyle, iterations: int = 5) -> HyperStyleMethod:
    return HyperStyleMethod("hyperstyle", model, TINY_CARS, WeightSource(random_seed=0), HyperStyleOptions(iterations))


# -- the offsets ---------------------------------------------------------------------------------


def multiplied_by_hand(generator: Generator, offsets: dict[str, torch.Tensor], image: int) -> Generator:
    """A copy of `generator` whose tuned weights are `weight * (1 + offset)` of image `image`."""
    copied = copy.deepcopy(generator)
    layers = copied.modulated_layers()
    with torch.no_grad():
        for name, offset in offsets.items():
            layers[name].conv.weight.mul_(1 + offset[image])
    return copied


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
@pytest.mark.parametrize("size", [32, 256])  # 256: CPU inference decodes image by image from there
def test_each_image_decodes_as_a_generator_whose_weights_were_multiplied(grad, size):
    generator = make_tiny_generator(size=size)
    if size == 256:
        generator = Generator(256, style_dim=16, n_mlp=1, channels={2**i: 4 for i in range(2, 9)}).eval()
    rng = torch.Generator().manual_seed(0)
    layers = generator.modulated_layers()
    offsets = {name: 0.3 * torch.randn(2, *layer.conv.weight.shape[1:], generator=rng)
               for name, layer in layers.items() if name not in ("convs.1", "to_rgbs.0")}  # two left as they are
    codes = torch.randn(2, generator.n_latent, generator.style_dim, generator=rng)
    with torch.set_grad_enabled(grad):
        frames = generator(codes, offsets=offsets)
    with torch.no_grad():
        expected = torch.cat([multiplied_by_hand(generator, offsets, b)(codes[b : b + 1]) for b in range(2)])
        untouched = generator(codes)
    torch.testing.assert_close(frames.detach(), expected, atol=2e-5, rtol=1e-4)
    assert (frames.detach() - untouched).abs().max() > 0.05


def test_offsets_for_an_unknown_layer_or_of_a_wrong_shape_are_refused(generator):
    codes = torch.zeros(1, generator.n_latent, generator.style_dim)
    with pytest.raises(ValueError, match="no modulated layers named"):
        generator(codes, offsets={"convs.99": torch.zeros(1)})
    with pytest.raises(ValueError, match="weight offsets must be"):
        generator(codes, offsets={"conv1": torch.zeros(1, 3, 3, 3, 3)})


# -- the hypernetwork ----------------------------------------------------------------------------


def official_cars_keys() -> dict[str, tuple[int, ...]]:
    """The official `hypernet.*` at 512 px, written out from `models/hypernetworks/` (a723c73): 23 outputs;
    the default `layers_to_tune` below 23 are the 15 non-toRGB layers; 0, 2, 3, ..., 12 (512->512 3x3) share
    `SharedWeightsHypernet(in 512, out 512, z 512, f 3)` and have a HyperRefinementBlock (a stride-1 conv to
    128, three stride-2 128 convs, a stride-2 conv to 512: `convs.0,2,4,6,8`; `linear`; `hypernet`); 14-21 a
    RefinementBlock with spatial 16 and 3x3 kernels: log2(16) - 1 - 1 = 2 pools, so convs 512->256, 256->256,
    256->512 (`convs.0,2,4`), then `output.0` the average pool and `output.1` a 1x1 conv to in*out values."""
    shared = {"w1": (512, 512 * 9), "b1": (512 * 9,), "w2": (512, 512 * 512), "b2": (512 * 512,)}
    keys = {f"shared_weight_hypernet.{k}": v for k, v in shared.items()}
    hyper_convs = {0: (128, 512, 3, 3), 2: (128, 128, 3, 3), 4: (128, 128, 3, 3), 6: (128, 128, 3, 3), 8: (512, 128, 3, 3)}
    for layer in (0, 2, 3, 5, 6, 8, 9, 11, 12):
        block = f"refinement_blocks.{layer}"
        for index, shape in hyper_convs.items():
            keys |= {f"{block}.convs.{index}.weight": shape, f"{block}.convs.{index}.bias": (shape[0],)}
        keys |= {f"{block}.linear.weight": (512, 512), f"{block}.linear.bias": (512,)}
        keys |= {f"{block}.hypernet.{k}": v for k, v in shared.items()}
    channels = {14: (512, 256), 15: (256, 256), 17: (256, 128), 18: (128, 128), 20: (128, 64), 21: (64, 64)}
    for layer, (c_in, c_out) in channels.items():
        block = f"refinement_blocks.{layer}"
        for index, shape in {0: (256, 512, 3, 3), 2: (256, 256, 3, 3), 4: (512, 256, 3, 3)}.items():
            keys |= {f"{block}.convs.{index}.weight": shape, f"{block}.convs.{index}.bias": (shape[0],)}
        keys |= {f"{block}.output.1.weight": (c_in * c_out, 512, 1, 1), f"{block}.output.1.bias": (c_in * c_out,)}
    return keys


def test_hypernetwork_has_the_official_keys_and_shapes_at_cars_size():
    """The official default `layers_to_tune` names 23 and 24 too; a 512 px generator has 23 layers: ignored."""
    official_default = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]
    with torch.device("meta"):
        hypernet = SharedWeightsHyperNetResNet(layer_shapes(Generator(512)), official_default)
    state = {key: tuple(value.shape) for key, value in hypernet.state_dict().items()}
    heads = {key: shape for key, shape in state.items() if not key.startswith(("conv1.", "bn1.", "relu.", "body."))}
    assert heads == official_cars_keys()
    assert set(state) - set(heads) == official_resnet_keys()
    assert state["conv1.weight"] == (64, 6, 7, 7)


def test_each_head_is_affine_so_the_sum_of_passes_is_one_expansion(model):
    """offsets(c1 + c2 + c3, 3) = offsets(c1) + offsets(c2) + offsets(c3): what the kept state rests on."""
    hypernet = model.hypernet
    codes = [hypernet(torch.cat([images(2, seed), images(2, seed + 10)], dim=1)) for seed in range(3)]
    passes = [hypernet.offsets(c, 1) for c in codes]
    summed = hypernet.offsets(sum(codes), 3)
    for layer, value in summed.items():
        torch.testing.assert_close(value, sum(p[layer] for p in passes), atol=1e-6, rtol=1e-5)


def test_the_shared_head_is_the_official_two_matrix_product(model):
    """Element by element: kernel[o, i, p, q] = h_final[r, s] with r*9C + s = o*9C + i*9 + p*3 + q, where
    h_final = (z w2 + b2) as [C, Z], times w1, plus b1 (the official view of [in, out*9] as [out, in, 3, 3])."""
    head = model.hypernet.shared_weight_hypernet
    z = torch.randn(1, head.z_dim)
    hidden = (z[0] @ head.w2 + head.b2).reshape(head.channels, head.z_dim).double()
    h_final = (hidden @ head.w1.double() + head.b1.double()).flatten()
    kernel = head(z)[0]
    C = head.channels
    for o, i, p, q in [(0, 0, 0, 0), (1, 2, 0, 1), (C - 1, 3, 2, 2), (5, C - 1, 1, 0)]:
        assert kernel[o, i, p, q].item() == pytest.approx(h_final[o * 9 * C + i * 9 + p * 3 + q].item(), rel=1e-5,
                                                          abs=1e-6)


def test_own_heads_are_the_official_output_conv_read_as_out_by_in(model):
    """The official forward of an own block: `output(convs(x))` viewed as [B, out, in] (repeated over the 3x3
    kernel), or as [B, 3, in, 1, 1] for a toRGB; ours applies the conv as a matrix to the pooled code."""
    hypernet = model.hypernet
    own = [i for i in hypernet.tuned if i not in hypernet.shared]
    assert own == [1, 4, 5, 6, 7, 8, 9, 10]  # the toRGBs and the layers narrower than the shared head's
    with torch.no_grad():
        features = hypernet.features(torch.cat([images(2), images(2, 4)], dim=1))
        for layer in own:
            block, shape = hypernet.refinement_blocks[layer], hypernet.layers[layer]
            official = block.output(block.convs(features)).reshape(2, shape.out_channels, shape.in_channels, -1, 1)
            ours = block.offsets(block.code(features))
            torch.testing.assert_close(ours, official.expand_as(ours), atol=1e-6, rtol=1e-5)
            assert torch.equal(ours, ours[..., :1, :1].expand_as(ours))


# -- files ---------------------------------------------------------------------------------------


def test_official_layout_round_trips_strictly(tmp_path, model):
    w_path = tmp_path / "w.pt"
    save_checkpoint({"state_dict": {f"encoder.{k}": v for k, v in model.w_encoder.state_dict().items()}
                     | {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()},
                     "opts": {"encoder_type": "WEncoder"}, "latent_avg": model.latent_avg}, w_path)
    path = tmp_path / "hyperstyle.pt"
    save_hyperstyle(model, path, {"dataset_type": "cars_hypernet"}, global_step=7, best_val_loss=None)
    ckpt = read_checkpoint(path)
    assert {key.split(".")[0] for key in ckpt["state_dict"]} == {"hypernet", "decoder"}
    assert ckpt["opts"]["encoder_type"] == "SharedWeightsHyperNetResNet" and ckpt["global_step"] == 7
    assert ckpt["opts"]["layers_to_tune"] == ",".join(map(str, model.hypernet.tuned))
    loaded = load_hyperstyle(path, w_path)
    x = images(2)
    with torch.no_grad():
        codes = model.w_codes(x)
        torch.testing.assert_close(loaded.w_codes(x), codes)
        expected = model.decode(codes, model.iterate(x, codes, 2, TINY_CARS_INPUT)[:, -1], 2)
        torch.testing.assert_close(loaded.decode(codes, loaded.iterate(x, codes, 2, TINY_CARS_INPUT)[:, -1], 2), expected)

    for damage, message in [
        (lambda s: s.pop("hypernet.refinement_blocks.0.linear.bias"), "missing keys hypernet|missing keys refinement"),
        (lambda s: s.__setitem__("hypernet.extra.weight", torch.zeros(1)), "unexpected keys"),
        (lambda s: s.__setitem__("hypernet.shared_weight_hypernet.b1", torch.zeros(3)), "do not fit"),
        (lambda s: s["hypernet.conv1.weight"].fill_(float("nan")), "NaN"),
    ]:
        broken = read_checkpoint(path)
        damage(broken["state_dict"])
        save_checkpoint(broken, tmp_path / "broken.pt")
        with pytest.raises(E4EBenchError, match=f"broken.pt.*({message})"):
            load_hyperstyle(tmp_path / "broken.pt", w_path)
    with pytest.raises(E4EBenchError, match="w.pt is not a HyperStyle checkpoint"):
        load_hyperstyle(w_path, w_path)
    with pytest.raises(E4EBenchError, match="hyperstyle.pt is a HyperStyle checkpoint; use --method hyperstyle"):
        load_inverter(path)
    assert torch.equal(load_generator(path)[0].state_dict()["input.input"], model.decoder.state_dict()["input.input"])


def TINY_CARS_INPUT(frames: torch.Tensor) -> torch.Tensor:
    return TINY_CARS.resize_frames(frames, TINY_CARS.encoder_input)


def test_parts_that_do_not_fit_together_are_refused_when_built(generator, model):
    wider = Generator(32, style_dim=64, n_mlp=2, channels={4: 32, 8: 32, 16: 32, 32: 16})
    with pytest.raises(ValueError, match="other shapes"):
        HyperStyle(model.hypernet, wider, model.w_encoder, model.latent_avg)
    short = WEncoder(generator.n_latent - 2, generator.style_dim, stage_depths=(16, 24, 32, 48))
    with pytest.raises(ValueError, match="gives 6 codes, the generator needs 8"):
        HyperStyle(model.hypernet, generator, short, model.latent_avg)


def test_the_w_encoder_is_read_off_its_weights_not_its_opts(tmp_path, generator):
    """hyperstyle#74/#75: a WEncoder file whatever its opts say, and an e4e file of ours, both serve."""
    encoder = WEncoder(generator.n_latent, generator.style_dim, stage_depths=(16, 24, 32, 48))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    save_checkpoint({"state_dict": state, "opts": {"encoder_type": "Encoder4Editing"}}, tmp_path / "mislabelled.pt")
    assert isinstance(load_w_encoder(tmp_path / "mislabelled.pt", generator.n_latent), WEncoder)
    e4e = write_official_checkpoint(tmp_path / "e4e.pt", "e4e", generator)
    assert type(load_w_encoder(e4e, generator.n_latent)).__name__ == "Encoder4Editing"
    restyle = write_official_checkpoint(tmp_path / "restyle.pt", "restyle_e4e", generator)
    with pytest.raises(E4EBenchError, match="restyle.pt holds a ResNetProgressiveBackboneEncoder encoder"):
        load_w_encoder(restyle, generator.n_latent)
    save_checkpoint({"g_ema": generator.state_dict()}, tmp_path / "g.pt")
    with pytest.raises(E4EBenchError, match="g.pt holds no encoder"):
        load_w_encoder(tmp_path / "g.pt", generator.n_latent)


# -- the method ----------------------------------------------------------------------------------


def reference_inversion(model: HyperStyle, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """The official `run_inversion`: full offsets summed pass by pass (not codes), the reconstruction cropped
    to rows 4:28 and area-pooled to 24x32 between passes; the final frames."""
    with torch.no_grad():
        codes = model.w_encoder(x) + model.latent_avg
        names = list(model.decoder.modulated_layers())
        previous = torch.nn.functional.adaptive_avg_pool2d(model.decoder(codes)[:, :, 4:28], (24, 32))
        total = None
        for _ in range(iterations):
            deltas = model.hypernet.offsets(model.hypernet(torch.cat([x, previous], dim=1)), 1)
            total = deltas if total is None else {k: total[k] + deltas[k] for k in deltas}
            frames = model.decoder(codes, offsets={names[k]: v for k, v in total.items()})
            previous = torch.nn.functional.adaptive_avg_pool2d(frames[:, :, 4:28], (24, 32))
    return frames


def test_inversion_matches_the_official_loop_and_a_batch_matches_each_image_alone(model):
    x = images(3)
    hyperstyle = method(model, iterations=3)
    inversion = hyperstyle.invert(x)
    frames = hyperstyle.decode(inversion)
    torch.testing.assert_close(frames, reference_inversion(model, x, 3), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(inversion.codes, model.w_encoder(x) + model.latent_avg)
    alone = hyperstyle.decode(hyperstyle.invert(x[1:2]))
    torch.testing.assert_close(frames[1:2], alone, atol=1e-5, rtol=1e-4)
    assert inversion.state[HYPER_CODES].shape == (3, len(model.hypernet.tuned), TINY_HYPERNET["width"])


def test_an_edit_decodes_with_the_images_offsets(model):
    """Strength 0 is the reconstruction exactly; the same codes without the offsets are not."""
    hyperstyle = method(model)
    inversion = hyperstyle.invert(images(2))
    reconstruction = hyperstyle.decode(inversion)
    assert torch.equal(hyperstyle.decode(inversion, inversion.codes.clone()), reconstruction)
    with torch.no_grad():
        without = model.decoder(inversion.codes)
    assert (without - reconstruction).abs().max() > 0.01
    moved = hyperstyle.decode(inversion, inversion.codes + 0.5)
    assert (moved - reconstruction).abs().max() > 0.01


def test_the_dial_is_the_pass_count_from_one_loop(model):
    x = images(2)
    points = {}
    method(model, iterations=3).invert_along(x, [0, 1, 3], lambda value, inversion: points.setdefault(value, inversion))
    assert points[0].state == {}
    with torch.no_grad():
        torch.testing.assert_close(method(model).decode(points[0]), model.decoder(points[0].codes))
    for passes in (1, 3):
        alone = method(model, iterations=passes).invert(x)
        torch.testing.assert_close(points[passes].state[HYPER_CODES], alone.state[HYPER_CODES])
        assert torch.equal(points[passes].codes, points[0].codes)


def invert_command(tmp_path, model: HyperStyle, n_images: int) -> list[str]:
    """The files of `model` and `n_images` images under `tmp_path`, and the `invert` arguments that read them."""
    w_path = tmp_path / "w.pt"
    save_checkpoint({"state_dict": {f"encoder.{k}": v for k, v in model.w_encoder.state_dict().items()},
                     "opts": {"encoder_type": "WEncoder"}}, w_path)
    save_hyperstyle(model, tmp_path / "hyperstyle.pt")
    save_checkpoint({"g_ema": model.decoder.state_dict()}, tmp_path / "g.pt")
    write_images(tmp_path / "images", images(n_images))
    return ["invert", "--method", "hyperstyle", "--checkpoint", str(tmp_path / "hyperstyle.pt"), "--w-encoder",
            str(w_path), "--domain", TINY_CARS.name, "--images", str(tmp_path / "images")]


def test_invert_command_writes_the_w_codes_and_the_offset_reconstructions(tmp_path, tiny_domain, model):
    assert main([*invert_command(tmp_path, model, 3), "--out", str(tmp_path / "out")]) == 0
    loaded = load_images(list_images(tmp_path / "images"), TINY_CARS.encoder_input).images
    written = torch.from_numpy(np.load(tmp_path / "out" / "latents.npy"))
    torch.testing.assert_close(written, model.w_codes(loaded))
    assert len(list_images(tmp_path / "out" / "images")) == 3
    # generate and edit (strength 0) decode the kept state again: the offsets, not only the codes
    expected = reconstructions(tmp_path / "out")
    assert main(["generate", "--inversion", str(tmp_path / "out"), "--out", str(tmp_path / "gen")]) == 0
    assert np.abs(decoded_frames(tmp_path / "gen", 3) - expected).max() == 0
    assert main(["edit", "--inversion", str(tmp_path / "out"), "--direction", "sefa:0", "--strength", "0",
                 "--out", str(tmp_path / "edit")]) == 0
    assert np.abs(decoded_frames(tmp_path / "edit", 3) - expected).max() == 0
    assert main(["generate", "--generator", str(tmp_path / "g.pt"), "--latents", str(tmp_path / "out" / "latents.npy"),
                 "--out", str(tmp_path / "bare")]) == 0
    assert np.abs(decoded_frames(tmp_path / "bare", 3) - expected).max() > 0


def test_an_interrupted_inversion_resumes_to_the_same_state_and_images(tmp_path, tiny_domain, model, monkeypatch):
    command = [*invert_command(tmp_path, model, 4), "--batch-size", "2"]
    assert main([*command, "--out", str(tmp_path / "whole")]) == 0
    real, calls = HyperStyleMethod.invert, []

    def interrupted(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(HyperStyleMethod, "invert", interrupted)
    assert main([*command, "--out", str(tmp_path / "cut")]) != 0
    monkeypatch.setattr(HyperStyleMethod, "invert", real)
    assert main([*command, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert np.array_equal(np.load(tmp_path / "cut" / "latents.npy"), np.load(tmp_path / "whole" / "latents.npy"))
    assert np.array_equal(reconstructions(tmp_path / "cut"), reconstructions(tmp_path / "whole"))
    for name in (tmp_path / "whole" / "names.txt").read_text().split():
        kept, whole = (read_checkpoint(tmp_path / run / "state" / f"{name}.pt")["state"] for run in ("cut", "whole"))
        assert kept.keys() == whole.keys() and all(torch.equal(kept[k], whole[k]) for k in kept)

