"""Official e4e/pSp checkpoints: strict loading, the method from opts, latent_avg, truncation, saving."""
from __future__ import annotations

import argparse

import pytest
import torch

from e4e_bench.checkpoints import load_file
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import inverter_from_checkpoint, load_inverter, official_checkpoint, save_inverter
from encoders.e4e_encoder import Encoder4Editing
from encoders.psp_encoder import GradualStyleEncoder
from tests.conftest import make_tiny_generator, rosinality_checkpoint
from tests.official_checkpoints import official_checkpoint_dict, random_encoder, write_official_checkpoint

PATH = "tiny_official.pt"


@pytest.fixture(scope="module")
def generator():
    return make_tiny_generator()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1


def encoder_codes(method: str, images: torch.Tensor, n_styles: int = 8) -> torch.Tensor:
    with torch.inference_mode():
        return random_encoder(method, n_styles, 64)(images)


def load(ckpt: dict, method: str | None = None):
    return inverter_from_checkpoint(ckpt, PATH, method)


@pytest.mark.parametrize("method, cls", [("e4e", Encoder4Editing), ("psp", GradualStyleEncoder)])
def test_official_checkpoint_loads_strict_and_reproduces_the_codes(method, cls, generator, images):
    ckpt = official_checkpoint_dict(method, generator)
    inverter, found = load(ckpt)
    assert found == method and type(inverter.encoder) is cls
    assert not inverter.training and not any(p.requires_grad for p in inverter.parameters())
    assert set(inverter.state_dict()) == set(ckpt["state_dict"])
    for key, value in inverter.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][key]), key
    with torch.inference_mode():
        codes = inverter.codes(images)
    torch.testing.assert_close(codes, encoder_codes(method, images) + ckpt["latent_avg"], rtol=0, atol=0)


def test_method_contradicting_the_file_is_one_line(generator):
    ckpt = official_checkpoint_dict("psp", generator)
    with pytest.raises(E4EBenchError) as err:
        load(ckpt, "e4e")
    message = str(err.value)
    assert "GradualStyleEncoder" in message and "--method psp" in message and PATH in message and "\n" not in message
    assert load(ckpt, "psp")[1] == "psp"


def test_missing_encoder_type_needs_the_method(generator):
    ckpt = official_checkpoint_dict("e4e", generator)
    del ckpt["opts"]["encoder_type"]
    with pytest.raises(E4EBenchError, match="--method e4e, psp, restyle_e4e or restyle_psp"):
        load(ckpt)
    assert isinstance(load(ckpt, "e4e")[0].encoder, Encoder4Editing)


def test_other_official_encoder_types_are_rejected(generator):
    ckpt = official_checkpoint_dict("e4e", generator, encoder_type="SingleStyleCodeEncoder")
    with pytest.raises(E4EBenchError, match="'SingleStyleCodeEncoder' encoder"):
        load(ckpt)


def test_generator_file_as_checkpoint_is_explained(generator):
    with pytest.raises(E4EBenchError, match="generator checkpoint; pass it as --generator"):
        load(rosinality_checkpoint(generator))
    with pytest.raises(E4EBenchError, match="not an encoder checkpoint"):
        load({"state_dict": {"weight": torch.zeros(1)}})


@pytest.mark.parametrize("damage, expected", [
    (lambda sd: sd.pop("encoder.styles.3.linear.bias"), "missing keys styles.3.linear.bias"),
    (lambda sd: sd.update({"encoder.extra.weight": torch.zeros(1)}), "unexpected keys extra.weight"),
    (lambda sd: sd.update({"encoder.latlayer1.bias": torch.zeros(7)}), "size mismatch"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("encoder.body.23.")], "not IR-SE 50, 100 or 152"),
    (lambda sd: sd["encoder.styles.0.linear.weight"].fill_(float("nan")), "NaN"),
])
def test_damaged_encoder_weights_are_one_line_errors(generator, damage, expected):
    ckpt = official_checkpoint_dict("e4e", generator)
    damage(ckpt["state_dict"])
    with pytest.raises(E4EBenchError, match=expected) as err:
        load(ckpt)
    assert "\n" not in str(err.value) and PATH in str(err.value)


@pytest.mark.parametrize("rows", [None, 1, 8, 10])
def test_latent_avg_shapes(generator, images, rows):
    center = torch.randn(64)
    latent_avg = center if rows is None else center.expand(rows, -1).clone()
    inverter, _ = load(official_checkpoint_dict("psp", generator, latent_avg=latent_avg))
    assert inverter.latent_avg.shape == (8, 64)
    with torch.inference_mode():
        torch.testing.assert_close(inverter.codes(images), encoder_codes("psp", images) + center, rtol=0, atol=0)


def test_per_row_latent_avg_is_added_row_by_row(generator, images):
    latent_avg = torch.randn(8, 64)
    inverter, _ = load(official_checkpoint_dict("e4e", generator, latent_avg=latent_avg))
    with torch.inference_mode():
        torch.testing.assert_close(inverter.codes(images), encoder_codes("e4e", images) + latent_avg, rtol=0, atol=0)


def test_too_few_latent_avg_rows_are_rejected(generator):
    with pytest.raises(E4EBenchError, match=r"latent_avg must be \[D\], \[1, D\] or \[n >= 8, D\]"):
        load(official_checkpoint_dict("e4e", generator, latent_avg=torch.randn(3, 64)))


def test_no_latent_avg_when_opts_say_so(generator, images):
    inverter, _ = load(official_checkpoint_dict("psp", generator, start_from_latent_avg=False))
    assert inverter.latent_avg is None
    with torch.inference_mode():
        torch.testing.assert_close(inverter.codes(images), encoder_codes("psp", images), rtol=0, atol=0)


def test_missing_latent_avg_falls_back_to_a_seeded_mean_latent(generator):
    ckpt = official_checkpoint_dict("psp", generator)
    del ckpt["latent_avg"]
    first, second = load(ckpt)[0].latent_avg, load(ckpt)[0].latent_avg
    assert torch.equal(first, second)
    assert torch.equal(first[0], first[-1])
    assert (first[0] - generator.mean_latent(10_000)[0]).norm() < 0.2 * first[0].norm()


def test_extra_codes_are_cut_to_the_generator_rows(generator, images):
    latent_avg = torch.randn(10, 64)
    inverter, _ = load(official_checkpoint_dict("psp", generator, n_styles=10, latent_avg=latent_avg))
    with torch.inference_mode():
        codes = inverter.codes(images)
    assert codes.shape == (2, 8, 64)
    torch.testing.assert_close(codes, encoder_codes("psp", images, 10)[:, :8] + latent_avg[:8], rtol=0, atol=0)


def test_too_few_codes_for_the_generator_is_an_error(generator):
    with pytest.raises(E4EBenchError, match="predicts 6 codes, the generator needs 8"):
        load(official_checkpoint_dict("psp", generator, n_styles=6, latent_avg=torch.randn(64)))


def test_opts_as_namespace(generator):
    ckpt = official_checkpoint_dict("e4e", generator)
    ckpt["opts"] = argparse.Namespace(**ckpt["opts"])
    assert load(ckpt)[1] == "e4e"


@pytest.mark.parametrize("method", ["e4e", "psp"])
def test_file_round_trip_in_the_official_layout(tmp_path, generator, images, method):
    source = write_official_checkpoint(tmp_path / "official.pt", method, generator)
    inverter, found = load_inverter(source)
    save_inverter(inverter, tmp_path / "ours.pt", opts={"dataset_type": "cars_encode"})
    saved = load_file(tmp_path / "ours.pt")  # weights_only
    assert set(saved) == {"state_dict", "opts", "latent_avg"}
    assert saved["opts"]["encoder_type"] == official_checkpoint_dict(method, generator)["opts"]["encoder_type"]
    assert saved["opts"]["stylegan_size"] == 32 and saved["opts"]["dataset_type"] == "cars_encode"
    assert {k.split(".")[0] for k in saved["state_dict"]} == {"encoder", "decoder"}
    reloaded, again = load_inverter(tmp_path / "ours.pt")
    assert again == method
    with torch.inference_mode():
        torch.testing.assert_close(reloaded.codes(images), inverter.codes(images), rtol=0, atol=0)


def test_official_checkpoint_keeps_caller_opts_but_sets_the_loader_fields(generator):
    inverter, _ = load(official_checkpoint_dict("psp", generator, start_from_latent_avg=False))
    opts = official_checkpoint(inverter, {"encoder_type": "Encoder4Editing", "lr": 1e-4})["opts"]
    assert opts == {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "lr": 1e-4, "stylegan_size": 32, "output_size": 32,
                    "start_from_latent_avg": False}



def test_inverter_forward_decodes_its_codes(generator, images):
    inverter, _ = load(official_checkpoint_dict("e4e", generator))
    with torch.inference_mode():
        frames, codes = inverter(images)
        torch.testing.assert_close(codes, inverter.codes(images), rtol=0, atol=0)
        torch.testing.assert_close(frames, generator(codes, noise="const"), rtol=0, atol=0)
    assert frames.shape == (2, 3, 32, 32)
