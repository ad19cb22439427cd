"""`train --method e4e --encoder-type WEncoder`: HyperStyle's W encoder with e4e's recipe, resumed exactly,
saved in the e4e layout that both the encoder loader and HyperStyle's W-encoder loader read."""
from __future__ import annotations

import functools

import pytest
import torch

from e4e_bench.data import list_images, load_images
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import load_inverter
from encoders.hyperstyle_checkpoint import load_w_encoder
from encoders.training.options import TrainOptions, recipe_defaults
from encoders.training.setup import run_training
from encoders.w_encoder import WEncoder
from tests.test_training_loop import (E4E_FULL, assert_same_training_state, read_log, straight_and_resumed, tiny_options,
                                      twice_each)

W_ENCODER = dict(encoder_type="WEncoder", **E4E_FULL)  # e4e's whole recipe: discriminator, pools, stages


def test_w_encoder_resumes_exactly_and_its_regularisers_see_one_code(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                    generated_images):
    data = twice_each(generated_images, tmp_path / "twice")
    options = functools.partial(tiny_options, tmp_path, tiny_generator_ckpt, data, **W_ENCODER)
    a, b = straight_and_resumed(tmp_path, "e4e", options, steps=4)
    assert_same_training_state(a, b)
    assert a["opts"]["encoder_type"] == "WEncoder"
    train = [r for r in read_log(tmp_path / "straight") if r["split"] == "train"]
    assert [r["stage"] for r in train] == [0, 0, 1, 1] and all(r["delta_reg"] == 0.0 for r in train)
    assert all("adversarial" in r and "discriminator_loss" in r for r in train)
    assert all(torch.isfinite(value).all() for value in a["state_dict"].values())


def test_the_file_loads_as_an_e4e_encoder_and_as_hyperstyles_w_encoder(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                      generated_images):
    run_training("e4e", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1,
                                             lpips_lambda=0.0, encoder_type="WEncoder"))
    path = tmp_path / "out" / "checkpoints" / "iteration_1.pt"
    inverter, method = load_inverter(path)
    w_encoder = load_w_encoder(path, inverter.n_latent)
    assert method == "e4e" and isinstance(inverter.encoder, WEncoder) and isinstance(w_encoder, WEncoder)
    images = load_images(list_images(generated_images), (32, 32)).images
    with torch.inference_mode():
        codes = w_encoder(images)
        torch.testing.assert_close(inverter.encoder(images), codes, rtol=0, atol=0)
    assert torch.equal(codes, codes[:, :1].expand_as(codes))  # one code for every layer


def test_encoder_type_must_be_one_of_the_methods():
    assert TrainOptions(**recipe_defaults("e4e", "faces", "WEncoder")).encoder_init == "ir_se50"
    with pytest.raises(E4EBenchError, match="not an encoder of e4e; its encoders: Encoder4Editing, WEncoder"):
        TrainOptions(**recipe_defaults("e4e", "faces", "GradualStyleEncoder"))
    with pytest.raises(E4EBenchError, match="not an encoder of psp"):
        TrainOptions(**recipe_defaults("psp", "faces", "NoSuchEncoder"))
