"""ReStyle: official key names, strict loading of tiny official files, and the refinement loop pinned
against a hand-written reference (the first step's average image, pooling, accumulation)."""
from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet34

from e4e_bench.cli import main
from e4e_bench.data import list_images, load_images
from e4e_bench.domains import DOMAINS
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import WeightSource
from e4e_bench.methods.contract import TRAJECTORY
from encoders.checkpoint import inverter_from_checkpoint
from encoders.restyle_encoders import BackboneEncoder, ResNetBackboneEncoder
from encoders.restyle_method import ReStyleMethod, ReStyleOptions
from tests.conftest import TINY_CARS, make_tiny_generator, write_images
from tests.official_checkpoints import official_checkpoint_dict, write_official_checkpoint

PATH = "tiny_restyle.pt"
METHODS = ("restyle_psp", "restyle_e4e")


@pytest.fixture(scope="module")
def generator():
    return make_tiny_generator()


def images(n: int, size: tuple[int, int] = (24, 32), seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def official_resnet_keys() -> set[str]:
    """The official ResNetBackboneEncoder's stem and body keys: torchvision's resnet34 layers flattened
    into `body` (layer1 -> 0-2, layer2 -> 3-6, layer3 -> 7-12, layer4 -> 13-15), plus the PReLU stem."""
    offsets = {1: 0, 2: 3, 3: 7, 4: 13}
    keys = {"relu.weight"}
    for key in resnet34().state_dict():
        match = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", key)
        if match:
            keys.add(f"body.{offsets[int(match[1])] + int(match[2])}.{match[3]}")
        elif not key.startswith("fc."):
            keys.add(key)
    return keys


def head_keys(n_styles: int) -> set[str]:
    """Four stride-2 convs (a nominal 16x16 map) and the EqualLinear of each GradualStyleBlock."""
    convs = {f"styles.{i}.convs.{c}.{p}" for i in range(n_styles) for c in (0, 2, 4, 6) for p in ("weight", "bias")}
    return convs | {f"styles.{i}.linear.{p}" for i in range(n_styles) for p in ("weight", "bias")}


def test_resnet_encoder_has_the_official_keys_and_shapes():
    encoder = ResNetBackboneEncoder(16)
    state = encoder.state_dict()
    assert set(state) == official_resnet_keys() | head_keys(16)
    assert state["conv1.weight"].shape == (64, 6, 7, 7) and state["relu.weight"].shape == (64,)
    assert state["styles.0.convs.0.weight"].shape == (512, 512, 3, 3)
    assert encoder(torch.zeros(1, 6, 192, 256)).shape == (1, 16, 512)  # cars: 12x16 map, heads to 1x1


def test_ir_se_encoder_reads_six_channels_and_has_no_pyramid():
    state = BackboneEncoder(18).state_dict()
    assert state["input_layer.0.weight"].shape == (64, 6, 3, 3)
    assert not any(k.startswith("latlayer") for k in state)
    assert {k for k in state if k.startswith("styles.")} == head_keys(18)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backbone", ["resnet", "ir_se"])
def test_official_files_load_strict_with_every_tensor(method, backbone, generator):
    ckpt = official_checkpoint_dict(method, generator, backbone=backbone)
    inverter, found = inverter_from_checkpoint(ckpt, PATH)
    assert found == method and type(inverter.encoder).__name__ == ckpt["opts"]["encoder_type"]
    for key, value in inverter.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][key]), key
    assert set(inverter.state_dict()) == set(ckpt["state_dict"])


@pytest.mark.parametrize("edit", ["rename", "drop"])
def test_a_wrong_key_is_one_line_naming_the_file(edit, generator):
    ckpt = official_checkpoint_dict("restyle_e4e", generator)
    value = ckpt["state_dict"].pop("encoder.body.3.downsample.0.weight")
    if edit == "rename":
        ckpt["state_dict"]["encoder.body.3.shortcut.0.weight"] = value
    with pytest.raises(E4EBenchError) as err:
        inverter_from_checkpoint(ckpt, PATH)
    message = str(err.value)
    assert PATH in message and "body.3.downsample.0.weight" in message and "\n" not in message


def test_a_restyle_file_asked_for_as_another_method_is_refused(generator):
    with pytest.raises(E4EBenchError, match="use --method restyle_psp"):
        inverter_from_checkpoint(official_checkpoint_dict("restyle_psp", generator), PATH, "restyle_e4e")


def test_a_file_without_latent_avg_starts_from_the_mean_latent_and_says_so(generator, caplog):
    ckpt = official_checkpoint_dict("restyle_psp", generator)
    del ckpt["latent_avg"]
    with caplog.at_level(logging.WARNING):
        inverter, _ = inverter_from_checkpoint(ckpt, PATH)
    assert "stores no latent_avg" in caplog.text and PATH in caplog.text
    expected = generator.mean_latent(10_000, rng=torch.Generator().manual_seed(0))
    torch.testing.assert_close(inverter.latent_avg, expected.expand(generator.n_latent, -1))


def method_on(ckpt: dict, domain, iterations: int = 5) -> ReStyleMethod:
    inverter, name = inverter_from_checkpoint(ckpt, PATH)
    return ReStyleMethod(name, inverter, domain, WeightSource(), ReStyleOptions(iterations))


def reference_loop(ckpt: dict, x: torch.Tensor, iterations: int, top: int, bottom: int, pool: int):
    """The official run_on_batch written out: step 0 reads [x, G(latent_avg)], later steps
    [x, previous output], each output cropped to rows top:bottom and average-pooled by `pool`; the
    codes add up from latent_avg."""
    inverter, _ = inverter_from_checkpoint(ckpt, PATH)
    encoder, decoder, latent_avg = inverter.encoder, inverter.decoder, ckpt["latent_avg"]

    def to_input(frames):
        return F.avg_pool2d(frames[:, :, top:bottom], pool)

    with torch.no_grad():
        average = to_input(decoder(latent_avg[None], noise="const"))
        previous, codes, steps = torch.cat([average] * len(x)), latent_avg, []
        for _ in range(iterations):
            codes = codes + encoder(torch.cat([x, previous], dim=1))
            steps.append(codes)
            previous = to_input(decoder(codes, noise="const"))
    return average, torch.stack(steps, dim=1)


@pytest.mark.parametrize("method", METHODS)
def test_the_loop_matches_a_hand_written_reference(method):
    # The cars geometry on a 64 px generator: content rows 8:56, pooled 2x2 to the 24x32 input.
    big = make_tiny_generator(size=64)
    ckpt = official_checkpoint_dict(method, big)
    domain = dataclasses.replace(TINY_CARS, resolution=64, crop_rows=(8, 56))
    x = images(3)
    restyle = method_on(ckpt, domain)
    inversion = restyle.invert(x)
    average, steps = reference_loop(ckpt, x, 5, 8, 56, 2)
    torch.testing.assert_close(restyle.average_image, average, rtol=0, atol=1e-6)
    torch.testing.assert_close(inversion.state[TRAJECTORY], steps, rtol=0, atol=1e-5)
    torch.testing.assert_close(inversion.codes, steps[:, -1], rtol=0, atol=0)


def test_the_steps_refine_and_one_step_is_a_single_pass(generator):
    ckpt = official_checkpoint_dict("restyle_psp", generator)
    x = images(2)
    one = method_on(ckpt, TINY_CARS, iterations=1).invert(x)
    five = method_on(ckpt, TINY_CARS).invert(x)
    assert one.state[TRAJECTORY].shape == (2, 1, 8, 64) and five.state[TRAJECTORY].shape == (2, 5, 8, 64)
    torch.testing.assert_close(five.state[TRAJECTORY][:, :1], one.state[TRAJECTORY], rtol=0, atol=0)
    assert not torch.allclose(five.codes, one.codes)


def test_the_sweep_points_are_the_steps_of_one_loop(generator):
    """Dial value t is the plain inversion with `iterations=t`, all taken from one loop of 5 steps."""
    ckpt = official_checkpoint_dict("restyle_e4e", generator)
    x = images(2)
    points = {}
    method_on(ckpt, TINY_CARS).invert_along(x, (1, 3, 5), lambda value, inversion: points.setdefault(value, inversion))
    assert list(points) == [1, 3, 5]
    for steps in (1, 3, 5):
        plain = method_on(ckpt, TINY_CARS, iterations=steps).invert(x)
        torch.testing.assert_close(points[steps].codes, plain.codes, rtol=0, atol=0)
        torch.testing.assert_close(points[steps].state[TRAJECTORY], plain.state[TRAJECTORY], rtol=0, atol=0)


def test_a_batch_inverts_as_its_images_do_alone(generator):
    restyle = method_on(official_checkpoint_dict("restyle_e4e", generator), TINY_CARS)
    x = images(3)
    together = restyle.invert(x).codes
    alone = torch.cat([restyle.invert(x[i:i + 1]).codes for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_the_average_image_is_decoded_once(generator, monkeypatch):
    restyle = method_on(official_checkpoint_dict("restyle_psp", generator), TINY_CARS, iterations=3)
    calls = []
    real = restyle.inverter.decoder.forward
    monkeypatch.setattr(restyle.inverter.decoder, "forward", lambda codes, **kw: calls.append(len(codes)) or real(codes, **kw))
    restyle.invert(images(4))
    assert calls == [4, 4]  # steps 0 and 1 are decoded for the next step; the last step's codes are not


def test_iterations_must_be_positive():
    with pytest.raises(E4EBenchError, match="--iterations must be at least 1"):
        ReStyleOptions(0)


@pytest.mark.parametrize("method", METHODS)
def test_invert_command_writes_the_last_step_codes(method, tmp_path, tiny_domain):
    checkpoint = write_official_checkpoint(tmp_path / f"{method}.pt", method, make_tiny_generator())
    x = images(3)
    write_images(tmp_path / "images", x)
    assert main(["invert", "--method", method, "--checkpoint", str(checkpoint), "--domain", TINY_CARS.name,
                 "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--iterations", "3",
                 "--device", "cpu"]) == 0
    written = torch.from_numpy(np.load(tmp_path / "out" / "latents.npy"))
    pixels = load_images(list_images(tmp_path / "images"), TINY_CARS.encoder_input).images
    expected = method_on(official_checkpoint_dict(method, make_tiny_generator()), DOMAINS[TINY_CARS.name], 3)
    torch.testing.assert_close(written, expected.invert(pixels).codes, rtol=0, atol=1e-5)
    assert len(list((tmp_path / "out" / "images").iterdir())) == 3
