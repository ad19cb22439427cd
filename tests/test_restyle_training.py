"""`train --method restyle_*` on a tiny generator: each refinement step's own backward, the schedule of
the e4e variant, exact resume, and a checkpoint the loader reads as ReStyle."""
from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torchvision.models import resnet34

from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.distributed import ProcessGroup
from encoders.checkpoint import load_inverter
from encoders.restyle import ReStyleInverter
from encoders.restyle_encoders import ResNetBackboneEncoder
from encoders.training import trainer
from encoders.training.setup import backbone_weights, prepare, resolve_options, run_training
from tests.test_training_loop import (E4E_FULL, assert_same_training_state, read_log, straight_and_resumed, tiny_options,
                                      twice_each)


def test_a_step_adds_the_gradients_of_each_refinement_step(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                           generated_images, monkeypatch):
    overrides = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, lpips_lambda=0.0, flip=False,
                             n_iters_per_batch=3, max_steps=1)
    opts, _ = resolve_options("restyle_psp", "tiny", overrides, None)
    run, train_set, _ = prepare(opts, ProcessGroup(0, 1, torch.device("cpu")), None)
    x = torch.stack([train_set[0], train_set[1]])
    encoder, decoder, latent_avg = copy.deepcopy(run.net.encoder), run.net.decoder, run.net.latent_avg
    noise = torch.Generator().set_state(run.state.rngs["noise"].get_state())
    grads = {}
    monkeypatch.setattr(run.optimizer, "step", lambda: grads.update(
        {name: p.grad.clone() for name, p in run.net.encoder.named_parameters()}))
    trainer.train_step(run, x)

    # The official coach: step 0 reads [x, G(latent_avg)] from latent_avg; each later step reads the
    # previous output and codes, both detached; every step's loss is backpropagated before one update.
    previous = F.adaptive_avg_pool2d(decoder(latent_avg[None], noise="const"), (32, 32)).expand(2, -1, -1, -1)
    codes = latent_avg
    for _ in range(3):
        codes = codes + encoder(torch.cat([x, previous], dim=1))
        recon = F.adaptive_avg_pool2d(decoder(codes, noise="random", rng=noise), (32, 32))
        F.mse_loss(recon, x).backward()
        previous, codes = recon.detach(), codes.detach()
    for name, param in encoder.named_parameters():
        assert (grads[name] - param.grad).norm() <= 1e-4 * param.grad.norm(), name  # float32 summation order


def test_the_e4e_variant_follows_the_schedule_and_saves_a_restyle_checkpoint(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                              generated_images):
    run_training("restyle_e4e", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=4,
                                                     n_iters_per_batch=2, **E4E_FULL))
    train = [r for r in read_log(tmp_path / "out") if r["split"] == "train"]
    assert [r["stage"] for r in train] == [0, 0, 1, 1]
    assert all("discriminator_loss" in r and "adversarial" in r for r in train)
    ckpt = read_checkpoint(tmp_path / "out" / "checkpoints" / "iteration_4.pt")
    assert ckpt["opts"]["encoder_type"] == "ResNetProgressiveBackboneEncoder" and ckpt["opts"]["input_nc"] == 6
    inverter, method = load_inverter(tmp_path / "out" / "checkpoints" / "iteration_4.pt")
    assert method == "restyle_e4e" and isinstance(inverter, ReStyleInverter)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    data = twice_each(generated_images, tmp_path / "eight")
    options = functools.partial(tiny_options, tmp_path, tiny_generator_ckpt, data, n_iters_per_batch=2, **E4E_FULL)
    a, b = straight_and_resumed(tmp_path, "restyle_e4e", options, steps=4)
    assert_same_training_state(a, b)


def test_imagenet_resnet34_starts_the_stem_and_body_with_rgb_filters_on_three_of_six_channels():
    torchvision_weights = resnet34().state_dict()
    weights = backbone_weights("resnet34", dict(torchvision_weights), input_nc=6)
    encoder = ResNetBackboneEncoder(16)
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    assert not unexpected and {k for k in missing if not k.startswith("styles.")} == {"relu.weight"}
    torch.testing.assert_close(encoder.conv1.weight[:, :3], torchvision_weights["conv1.weight"], rtol=0, atol=0)
    assert encoder.conv1.weight[:, 3:].std() > 0.5  # N(0, 1), as the official load_weights draws them
    torch.testing.assert_close(encoder.body[7].downsample[0].weight, torchvision_weights["layer3.0.downsample.0.weight"],
                               rtol=0, atol=0)
