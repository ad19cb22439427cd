"""opt_w / opt_wplus behind the method registry, their CLI options, and `invert` end to end."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.method import ProjectionOptions, image_seeds
from baselines.projector import ProjectorConfig
from tests.conftest import TINY_CARS, make_tiny_generator, rosinality_checkpoint
from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.cli import main
from e4e_bench.methods.decoding import state_noise
from e4e_bench.methods.options import add_option_flags, given_options
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import build_method

FAST = {"steps": 4, "lpips_weight": 0.0, "mse_weight": 1.0, "w_avg_samples": 500}


def build(name, generator_ckpt, domain=TINY_CARS, **options):
    return build_method(name, domain=domain, generator=generator_ckpt, device=torch.device("cpu"),
                        options=FAST | options)


@pytest.fixture
def frames(tiny_generator):
    """Two frames of the cars-like tiny domain (rows 4:28 of the 32 px generator)."""
    with torch.no_grad():
        w = tiny_generator.mapping(torch.randn(2, tiny_generator.style_dim, generator=torch.Generator().manual_seed(3)))
        return TINY_CARS.crop(tiny_generator(w))


@pytest.mark.parametrize(("name", "one_row"), [("opt_w", True), ("opt_wplus", False)])
def test_methods_return_wplus_codes_and_per_image_noise(tiny_domain, tiny_generator_ckpt, frames, name, one_row):
    method = build(name, tiny_generator_ckpt)
    assert method.name == name
    assert method.input_size == (24, 32)
    inversion = method.invert(frames)
    codes, noise = inversion.codes, state_noise(inversion.state, method.generator)
    generator = method.generator
    assert codes.shape == (2, generator.n_latent, generator.style_dim)
    assert torch.equal(codes, codes[:, :1].expand_as(codes)) == one_row
    assert [n.shape for n in noise] == [(2, *b.shape[1:]) for b in generator.noise_buffers()]
    torch.testing.assert_close(method.decode(inversion), generator(codes, noise=noise), rtol=0, atol=0)


def test_an_image_gets_the_same_codes_alone_in_another_batch_or_order(tiny_domain, tiny_generator_ckpt, frames):
    together = build("opt_wplus", tiny_generator_ckpt).invert(frames).codes
    swapped = build("opt_wplus", tiny_generator_ckpt).invert(frames.flip(0)).codes
    alone = build("opt_wplus", tiny_generator_ckpt).invert(frames[1:]).codes
    torch.testing.assert_close(swapped.flip(0), together, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, together[1:], rtol=0, atol=1e-5)


def test_image_seeds_depend_on_pixels_and_base_seed_only(frames):
    assert image_seeds(frames, 0) == image_seeds(frames.clone(), 0)
    assert image_seeds(frames, 0)[1] == image_seeds(frames[1:], 0)[0]
    assert len(set(image_seeds(frames, 0) + image_seeds(frames, 1))) == 4


def test_lpips_is_built_only_when_weighted(tiny_domain, tiny_generator_ckpt):
    assert build("opt_w", tiny_generator_ckpt).lpips is None
    assert build("opt_w", tiny_generator_ckpt, lpips_weight=1.0, lpips_pretrained=False).lpips is not None


def test_images_of_the_wrong_size_are_a_clear_error(tiny_domain, tiny_generator_ckpt):
    with pytest.raises(E4EBenchError, match=r"expected \[N, 3, 24, 32\]"):
        build("opt_w", tiny_generator_ckpt).invert(torch.zeros(1, 3, 32, 32))


def test_unknown_option_is_a_clear_error(tiny_domain, tiny_generator_ckpt):
    with pytest.raises(E4EBenchError, match="opt_w has no option.*stepz"):
        build("opt_w", tiny_generator_ckpt, stepz=3)


def test_generator_of_another_resolution_is_a_clear_error(tiny_domain, tmp_path):
    path = tmp_path / "g16.pt"
    save_checkpoint(rosinality_checkpoint(make_tiny_generator(size=16)), path)
    with pytest.raises(E4EBenchError, match="16px generator but domain 'tiny_cars' needs 32px"):
        build("opt_w", path)


def test_a_missing_generator_is_a_clear_error(tiny_domain):
    with pytest.raises(E4EBenchError, match="needs a generator: pass --generator"):
        build("opt_wplus", None)


def parse(argv):
    parser = argparse.ArgumentParser()
    add_option_flags(parser, ProjectionOptions, "opt_w options")
    return given_options(parser.parse_args(argv), ProjectionOptions, "opt_w")


def test_options_class_defaults_are_the_official_projector_settings():
    # NVIDIA's projector.py / rosinality's projector.py: 1000 steps, lr 0.1, ramps 0.05 / 0.25,
    # latent noise 0.05 over 0.75 of the steps, noise regularisation 1e5, LPIPS-VGG only, 10,000 samples.
    assert dataclasses.asdict(ProjectorConfig()) == {
        "steps": 1000, "lr": 0.1, "lr_rampup": 0.05, "lr_rampdown": 0.25, "latent_noise": 0.05,
        "latent_noise_ramp": 0.75, "noise_regularize": 1e5, "lpips_weight": 1.0, "mse_weight": 0.0,
        "optimize_noise": True, "w_avg_samples": 10_000}
    assert parse([]) == {}  # a flag not given leaves the method's (domain) default in force


def test_cli_options_reach_the_projector():
    options = parse(["--steps", "20", "--lr", "0.05", "--lpips-weight", "0", "--mse-weight", "1",
                     "--noise-regularize", "0", "--no-optimize-noise"])
    assert options == {"steps": 20, "lr": 0.05, "lpips_weight": 0.0, "mse_weight": 1.0, "noise_regularize": 0.0,
                       "optimize_noise": False}


@pytest.mark.parametrize(("argv", "words"), [(["--steps", "0"], "--steps must be at least 1"),
                                             (["--lr", "-1"], "--lr must be >= 0"),
                                             (["--mse-weight", "nan"], "--mse-weight must be >= 0"),
                                             (["--steps", "many"], "opt_w option --steps many: expected an integer")])
def test_bad_option_values_are_one_line(tiny_domain, tiny_generator_ckpt, framed_images, tmp_path, capsys, argv, words):
    code = main(["invert", "--method", "opt_w", "--domain", "tiny_cars", "--generator", str(tiny_generator_ckpt),
                 "--images", str(framed_images), "--out", str(tmp_path / "out"), "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def framed_images(generated_images, tmp_path):
    """The generated 32x32 images cropped to tiny_cars' 24x32 frame (rows 4:28)."""
    folder = tmp_path / "framed"
    folder.mkdir()
    for path in sorted(generated_images.iterdir()):
        Image.open(path).crop((0, 4, 32, 28)).save(folder / path.name)
    return folder


def test_invert_command_refuses_images_of_another_aspect(tiny_domain, tiny_generator_ckpt, generated_images, tmp_path,
                                                          capsys):
    code = main(["invert", "--method", "opt_w", "--domain", "tiny_cars", "--generator", str(tiny_generator_ckpt),
                 "--images", str(generated_images), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--steps", "1", "--lpips-weight", "0", "--mse-weight", "1"])
    assert code == 2
    assert "000.png (32x32)" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["opt_w", "opt_wplus"])
def test_invert_command_writes_codes_reconstructions_and_their_noise_as_state(tiny_domain, tiny_generator_ckpt, framed_images,
                                                                tmp_path, method):
    out = tmp_path / "out"
    code = main(["invert", "--method", method, "--domain", "tiny_cars", "--generator", str(tiny_generator_ckpt),
                 "--images", str(framed_images), "--out", str(out), "--device", "cpu", "--batch-size", "3",
                 "--steps", "3", "--lpips-weight", "0", "--mse-weight", "1"])
    assert code == 0
    assert np.load(out / "latents.npy").shape == (4, 8, 64)
    assert (out / "names.txt").read_text().split() == ["000", "001", "002", "003"]
    assert Image.open(out / "images" / "003.png").size == (32, 24)
    assert sorted(p.name for p in (out / "state").iterdir()) == ["000.pt", "001.pt", "002.pt", "003.pt"]


def test_invert_command_without_lpips_weights_names_the_asset(tiny_domain, tiny_generator_ckpt, framed_images,
                                                              tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    code = main(["invert", "--method", "opt_w", "--domain", "tiny_cars", "--generator", str(tiny_generator_ckpt),
                 "--images", str(framed_images), "--out", str(tmp_path / "out"), "--device", "cpu", "--steps", "1"])
    assert code == 2
    assert "assets fetch lpips-vgg" in capsys.readouterr().err
