"""The toy GAN trainer at a tiny scale: exact resume, SIGINT keeps the work, the export loads strictly."""

from __future__ import annotations

import pytest
import torch

from e4e_bench.checkpoints import load_generator, read_checkpoint
from e4e_bench.errors import E4EBenchError
from e4e_bench.toy.discriminator import Discriminator
from e4e_bench.toy.gan_training import SNAPSHOT, GANOptions, GANRun, export_generator, train_gan
from e4e_bench.toy.render import UNIFORMS, scenes_from_uniforms

# Imitation for steps 0-1, adversarial from step 2 on.
TINY = GANOptions(size=8, channels=8, style_dim=32, n_mlp=1, batch=4, r1_every=2, imitation_kimg=0.008)


def kimg(steps: int) -> float:
    return steps * TINY.batch / 1000


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = train_gan(TINY, tmp_path / "a", kimg(4))
    train_gan(TINY, tmp_path / "b", kimg(2))
    resumed = train_gan(TINY, tmp_path / "b", kimg(4), resume=True)
    assert resumed.step == straight.step == 4
    for a, b in zip(straight.state()["ema"].values(), resumed.state()["ema"].values(), strict=True):
        assert torch.equal(a, b)


def test_interrupt_saves_a_snapshot_that_resumes(tmp_path, monkeypatch):
    real_step = GANRun.train_step

    def interrupted_at_step_2(run):
        if run.step == 2:
            raise KeyboardInterrupt
        return real_step(run)

    monkeypatch.setattr(GANRun, "train_step", interrupted_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        train_gan(TINY, tmp_path, kimg(1000), snapshot_every=1000)
    assert read_checkpoint(tmp_path / SNAPSHOT)["step"] == 2


def test_existing_snapshot_needs_resume_and_the_same_options(tmp_path):
    train_gan(TINY, tmp_path, kimg(1))
    with pytest.raises(E4EBenchError, match="--resume"):
        train_gan(TINY, tmp_path, kimg(2))
    with pytest.raises(E4EBenchError, match="batch"):
        train_gan(GANOptions(**{**TINY.__dict__, "batch": 2}), tmp_path, kimg(2), resume=True)


def test_export_is_the_ema_generator_in_rosinality_format(tmp_path):
    run = train_gan(TINY, tmp_path, kimg(2))
    export_generator(run, tmp_path / "g.pt", n_mean=100)
    generator, latent_avg = load_generator(tmp_path / "g.pt")
    w = torch.randn(3, TINY.style_dim)
    with torch.no_grad():
        assert torch.equal(generator(w), run.ema(w))
    assert latent_avg.shape == (TINY.style_dim,)


def test_discriminator_sees_the_spread_of_its_minibatch():
    """Minibatch stddev: identical images in a group give a std feature of sqrt(1e-8) = 1e-4."""
    torch.manual_seed(0)
    d = Discriminator(8, {4: 8, 8: 8})
    same = torch.randn(1, 3, 8, 8).expand(4, -1, -1, -1)
    features = d.convs(same)
    assert torch.allclose(d._minibatch_stddev(features), torch.full((4, 1, 4, 4), 1e-4))
    assert d(same).shape == (4, 1)


def test_phases_imitation_then_adversarial_with_lazy_r1():
    run = GANRun(TINY)
    stats = [run.train_step() for _ in range(5)]
    assert [set(s) for s in stats[:2]] == [{"imitation_loss"}] * 2
    assert ["r1" in s for s in stats[2:]] == [True, False, True]
    assert all({"d_loss", "g_loss"} <= set(s) for s in stats[2:])


def test_imitation_targets_are_the_renderer_at_ndtr_of_z():
    """The imitation target of z is the scene of uniforms Phi(z[:24]): z = 0 is the scene of all-0.5 uniforms."""
    uniforms = torch.special.ndtr(torch.zeros(1, UNIFORMS, dtype=torch.float64)).numpy()
    assert (uniforms == 0.5).all()
    scene = scenes_from_uniforms(uniforms)
    assert scene.length[0] == pytest.approx(0.675) and scene.facing[0] == 1.0 and scene.centre[0] == 0.5
