"""`e4e` and `psp` through the method registry and the `invert` command, from official-layout files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.cli import main
from e4e_bench.data import list_images, load_images
from e4e_bench.domains import get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.methods import InversionMethod, build_method
from encoders.ir_se import STAGE_DEPTHS
from tests.conftest import TINY_CARS, make_tiny_generator, rosinality_checkpoint, write_images
from tests.official_checkpoints import random_encoder, write_official_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders")
    generator = make_tiny_generator()
    return {method: write_official_checkpoint(folder / f"{method}.pt", method, generator) for method in ("e4e", "psp")}


@pytest.fixture
def image_folder(tmp_path):
    images = torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    write_images(tmp_path / "images", images, names=["b.png", "a.png", "c.png"])
    return tmp_path / "images"


@pytest.mark.parametrize("method", ["e4e", "psp"])
def test_registry_builds_the_method(checkpoints, tiny_domain, method):
    built = build_method(method, domain=tiny_domain, checkpoint=checkpoints[method], device=CPU)
    assert isinstance(built, InversionMethod)
    assert built.name == method and isinstance(built.generator, Generator) and built.input_size == (32, 32)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    codes = built.invert(images).codes
    assert codes.shape == (3, 8, 64) and not codes.requires_grad and codes.is_inference()
    with torch.inference_mode():
        expected = random_encoder(method, 8, 64)(images) + built.inverter.latent_avg
    torch.testing.assert_close(codes, expected, rtol=0, atol=0)
    one_by_one = torch.cat([built.invert(image[None]).codes for image in images])
    torch.testing.assert_close(codes, one_by_one, rtol=1e-5, atol=1e-5)
    with pytest.raises(E4EBenchError, match=r"takes images of 32x32 \(H x W\), got 24x32"):
        built.invert(torch.zeros(1, 3, 24, 32))


def test_no_checkpoint_and_no_pretrained_file_for_the_domain(tiny_domain):
    with pytest.raises(E4EBenchError, match="no pretrained psp checkpoint for domain 'tiny'; pass --checkpoint"):
        build_method("psp", domain=tiny_domain, device=CPU)


def test_checkpoint_of_another_resolution_is_rejected(checkpoints, tiny_domain):
    with pytest.raises(E4EBenchError, match="decodes 32 px images but domain 'cars' needs 512 px"):
        build_method("e4e", domain=get_domain("cars"), checkpoint=checkpoints["e4e"], device=CPU)


def test_generator_override(tmp_path, checkpoints, tiny_domain):
    other = make_tiny_generator(seed=7)
    save_checkpoint(rosinality_checkpoint(other), tmp_path / "other.pt")
    built = build_method("e4e", domain=tiny_domain, checkpoint=checkpoints["e4e"], generator=tmp_path / "other.pt",
                         device=CPU)
    assert torch.equal(built.generator.conv1.conv.weight, other.conv1.conv.weight)
    save_checkpoint(rosinality_checkpoint(make_tiny_generator(style_dim=32)), tmp_path / "narrow.pt")
    with pytest.raises(E4EBenchError, match="does not fit the encoder"):
        build_method("e4e", domain=tiny_domain, checkpoint=checkpoints["e4e"], generator=tmp_path / "narrow.pt",
                     device=CPU)


@pytest.mark.parametrize("method", ["e4e", "psp"])
def test_invert_command_end_to_end(tmp_path, checkpoints, tiny_domain, image_folder, method):
    out = tmp_path / "out"
    code = main(["invert", "--method", method, "--checkpoint", str(checkpoints[method]), "--domain", TINY_CARS.name,
                 "--images", str(image_folder), "--out", str(out), "--batch-size", "2", "--device", "cpu"])
    assert code == 0
    latents = np.load(out / "latents.npy")
    assert latents.dtype == np.float32 and latents.shape == (3, 8, 64)
    assert (out / "names.txt").read_text().split() == ["a", "b", "c"]
    built = build_method(method, domain=TINY_CARS, checkpoint=checkpoints[method], device=CPU)
    loaded = load_images(list_images(image_folder), TINY_CARS.encoder_input)
    np.testing.assert_allclose(latents, built.invert(loaded.images).codes.numpy(), rtol=1e-5, atol=1e-5)
    for stem in "abc":
        assert Image.open(out / "images" / f"{stem}.png").size == (32, 24)  # cropped rows 4:28 of 32


def test_invert_command_method_mismatch_is_one_line(tmp_path, checkpoints, tiny_domain, image_folder, capsys):
    code = main(["invert", "--method", "e4e", "--checkpoint", str(checkpoints["psp"]), "--domain", "tiny",
                 "--images", str(image_folder), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "use --method psp" in err


def test_encoders_refuse_projector_options(checkpoints, tiny_domain):
    with pytest.raises(E4EBenchError, match="e4e has no option --steps; it takes no options"):
        build_method("e4e", domain=tiny_domain, checkpoint=checkpoints["e4e"], device=CPU, options={"steps": 5})


def test_random_weights_need_no_checkpoint_and_leave_the_global_stream_alone(tiny_domain, tiny_generator_ckpt):
    def build():
        return build_method("psp", domain=tiny_domain, generator=tiny_generator_ckpt, device=CPU, random_weights=True)

    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    first, second = build(), build()
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)  # no reseeding, no draws from it
    assert first.inverter.encoder.stage_depths == STAGE_DEPTHS
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    codes = first.invert(images).codes
    assert codes.shape == (2, 8, 64)
    torch.testing.assert_close(codes, second.invert(images).codes, rtol=0, atol=0)  # seeded
