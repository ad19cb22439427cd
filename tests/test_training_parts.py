"""Training building blocks: options, schedule, Ranger, latent discriminator and pools, loss terms."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from e4e_bench.errors import E4EBenchError
from encoders.training.latent_discriminator import (
    LatentCodesDiscriminator,
    LatentCodesPool,
    adversarial_loss,
    discriminator_loss,
    r1_penalty,
)
from e4e_bench.faces.crop import face_box as face_crop
from encoders.training.losses import ArcFaceSimilarity, delta_regulariser, similarity_loss, w_norm
from encoders.training.options import TrainOptions, recipe_defaults
from encoders.training.progressive import active_rows, progressive_steps, stage_at
from encoders.training.ranger import Ranger, radam_step_size

REPO = Path(__file__).resolve().parents[1]


# -- options -------------------------------------------------------------------------------------
def test_recipe_for_e4e_cars_is_the_readme_command():
    opts = TrainOptions(**recipe_defaults("e4e", "cars"))
    assert (opts.id_lambda, opts.w_discriminator_lambda, opts.progressive_start) == (0.5, 0.1, 20_000)
    assert (opts.use_w_pool, opts.start_from_latent_avg, opts.max_steps) == (True, True, 200_000)
    assert (opts.lpips_lambda, opts.l2_lambda, opts.delta_norm_lambda, opts.learning_rate) == (0.8, 1.0, 2e-4, 1e-4)
    assert (opts.optim_name, opts.dataset_type, opts.encoder_type) == ("ranger", "cars_encode", "Encoder4Editing")


def test_recipe_for_psp_uses_moco_beyond_faces():
    faces = TrainOptions(**recipe_defaults("psp", "faces"))
    horse = TrainOptions(**recipe_defaults("psp", "horse"))
    assert (faces.id_lambda, faces.moco_lambda) == (0.1, 0.0)
    assert (horse.id_lambda, horse.moco_lambda) == (0.0, 0.5)
    assert faces.encoder_type == "GradualStyleEncoder" and faces.w_discriminator_lambda == 0


def test_opts_dict_round_trip_and_official_keys():
    opts = TrainOptions(**recipe_defaults("e4e", "faces"), input_size=(32, 32)).with_schedule(18)
    opts_dict = opts.to_opts_dict()
    assert opts_dict["progressive_steps"][:3] == [0, 20_000, 22_000] and len(opts_dict["progressive_steps"]) == 18
    for key in ("stylegan_size", "encoder_type", "start_from_latent_avg", "dataset_type", "lpips_lambda"):
        assert key in opts_dict
    assert TrainOptions.from_opts_dict(opts_dict | {"use_wandb": False}) == opts


def default_workers(pin_to_one_core: bool, local_world_size: int | None) -> list[str]:
    pin = "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " if pin_to_one_core else ""
    probe = f"import os; {pin}from encoders.training.options import TrainOptions as T; print(T().workers, T().test_workers)"
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_WORLD_SIZE"} | {"PYTHONPATH": str(REPO)}
    if local_world_size is not None:
        env["LOCAL_WORLD_SIZE"] = str(local_world_size)
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout.split()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_data_loader_workers_default_to_at_most_one_per_core():
    """The official 4 training and 2 evaluation workers would oversubscribe one core (torch warns): 1 each; the
    same for each of the processes torchrun starts, one per core."""
    assert default_workers(pin_to_one_core=True, local_world_size=None) == ["1", "1"]
    assert default_workers(pin_to_one_core=False, local_world_size=len(os.sched_getaffinity(0))) == ["1", "1"]


@pytest.mark.parametrize("bad", [dict(optim_name="sgd"), dict(l2_lambda=-1.0), dict(progressive_steps=(5, 10)),
                                 dict(method="psp", w_discriminator_lambda=0.1), dict(batch_size=0)])
def test_bad_options_are_user_errors(bad):
    with pytest.raises(E4EBenchError):
        TrainOptions(**bad)


# -- progressive schedule --------------------------------------------------------------------------
def test_progressive_steps_end_where_the_reference_says():
    cars = progressive_steps(16, 20_000, 2000)
    faces = progressive_steps(18, 20_000, 2000)
    assert cars[:3] == [0, 20_000, 22_000] and cars[-1] == 48_000 and len(cars) == 16
    assert faces[-1] == 52_000 and len(faces) == 18


def test_stage_switches_on_the_configured_steps():
    steps = [0, 3, 5]
    assert [stage_at(s, steps) for s in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    assert active_rows(2, 16) == [0, 1, 2] and active_rows(20, 4) == [0, 1, 2, 3]


# -- Ranger ----------------------------------------------------------------------------------------
def test_radam_is_unrectified_for_the_first_steps_then_rectified():
    rectified = [radam_step_size(t, 0.95, 0.999, 5)[1] for t in range(1, 10)]
    assert rectified[:5] == [False] * 5 and all(rectified[6:])
    assert radam_step_size(1, 0.95, 0.999, 5)[0] == pytest.approx(1 / 0.05)


def test_ranger_first_step_is_sgd_on_the_centralised_gradient():
    weight = torch.nn.Parameter(torch.zeros(3, 4))
    grad = torch.arange(12.0).reshape(3, 4)
    weight.grad = grad.clone()
    Ranger([weight], lr=0.1).step()
    # step 1: exp_avg = 0.05 g, unrectified size 1/(1-0.95) = 20 -> update = lr * g_centralised
    expected = -0.1 * (grad - grad.mean(dim=1, keepdim=True))
    torch.testing.assert_close(weight.detach(), expected)


def test_ranger_lookahead_pulls_back_halfway_every_k_steps():
    fast = torch.nn.Parameter(torch.zeros(5))
    slow_start = fast.detach().clone()
    opt = Ranger([fast], lr=0.01, k=3)
    for _ in range(2):
        fast.grad = torch.ones(5)
        opt.step()
    fast.grad = torch.ones(5)
    before_sync = fast.detach().clone()
    exp_avg, exp_avg_sq = opt.state[fast]["exp_avg"].clone(), opt.state[fast]["exp_avg_sq"].clone()
    opt.step()
    size, _ = radam_step_size(3, 0.95, 0.999, 5)
    exp_avg = exp_avg * 0.95 + 0.05
    fast_after = before_sync - 0.01 * size * exp_avg
    torch.testing.assert_close(fast.detach(), slow_start + 0.5 * (fast_after - slow_start))


def test_ranger_minimises_a_quadratic():
    x = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = Ranger([x], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        (x.square().sum()).backward()
        opt.step()
    assert x.detach().abs().max() < 0.05


# -- latent discriminator --------------------------------------------------------------------------
def test_discriminator_has_the_official_keys():
    keys = {k: tuple(v.shape) for k, v in LatentCodesDiscriminator(512).state_dict().items()}
    assert keys == {"mlp.0.weight": (512, 512), "mlp.0.bias": (512,), "mlp.2.weight": (512, 512), "mlp.2.bias": (512,),
                    "mlp.4.weight": (512, 512), "mlp.4.bias": (512,), "mlp.6.weight": (1, 512), "mlp.6.bias": (1,)}


def test_losses_and_r1_closed_forms_on_a_linear_discriminator():
    d = LatentCodesDiscriminator(8, n_mlp=1)  # a single Linear(8, 1): gradient w.r.t. input = its weight
    w = torch.randn(5, 8)
    expected_r1 = d.mlp[0].weight.detach().square().sum()
    torch.testing.assert_close(r1_penalty(d, w), expected_r1)
    logits = d(w)
    torch.testing.assert_close(discriminator_loss(logits, logits),
                               (torch.nn.functional.softplus(-logits) + torch.nn.functional.softplus(logits)).mean())
    rows = torch.randn(5, 3, 8)
    torch.testing.assert_close(adversarial_loss(d, rows),
                               torch.stack([torch.nn.functional.softplus(-d(rows[:, i])).mean() for i in range(3)]).mean())


def test_pool_fills_then_swaps_about_half_and_round_trips():
    rng = torch.Generator().manual_seed(0)
    pool = LatentCodesPool(4)
    first = torch.arange(4.0)[:, None].repeat(1, 2)
    torch.testing.assert_close(pool.query(first, rng), first)  # filling: returned as given
    later = 100 + torch.arange(400.0)[:, None].repeat(1, 2)
    out = pool.query(later, rng)
    swapped = (out != later).any(1).float().mean()
    assert 0.35 < swapped < 0.65
    restored = LatentCodesPool(0)
    restored.load_state_dict(pool.state_dict())
    torch.testing.assert_close(torch.stack(restored.codes), torch.stack(pool.codes))


def test_pool_picks_one_row_of_multi_row_codes():
    rng = torch.Generator().manual_seed(0)
    codes = torch.arange(3.0)[None, :, None].repeat(6, 1, 2)  # row r holds the value r
    out = LatentCodesPool(10).query(codes, rng)
    assert out.shape == (6, 2) and set(out[:, 0].tolist()) <= {0.0, 1.0, 2.0}


def test_no_pool_returns_codes_unchanged():
    codes = torch.randn(3, 2, 4)
    assert LatentCodesPool(0).query(codes, torch.Generator()) is codes


# -- loss terms ------------------------------------------------------------------------------------
def test_delta_regulariser_sums_unsquared_norms_of_active_offsets():
    codes = torch.zeros(2, 4, 3)
    codes[:, 1, 0] = 3.0  # |delta_1| = 3
    codes[:, 2, 1] = 4.0  # |delta_2| = 4
    codes[:, 3, 2] = 100.0  # inactive at stage 2
    assert delta_regulariser(codes, 2, 2).item() == pytest.approx(7.0)
    assert delta_regulariser(codes, 0, 2).item() == 0.0


def test_w_norm_is_mean_frobenius_distance_to_the_average():
    avg = torch.ones(2, 3)
    codes = avg + torch.tensor([[[3.0, 0, 0], [0, 4.0, 0]], [[0, 0, 0], [0, 0, 0]]])
    assert w_norm(codes, avg).item() == pytest.approx(2.5)


def test_face_crop_is_the_official_box_at_256():
    images = torch.zeros(1, 3, 256, 256)
    images[..., 35:223, 32:220] = 1
    crop = face_crop(images)
    assert crop.shape[-2:] == (188, 188) and bool((crop == 1).all())


def test_similarity_loss_is_zero_for_identical_and_two_for_opposite():
    features = torch.nn.Flatten()
    x = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    assert similarity_loss(features, x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_loss(features, -x, x).item() == pytest.approx(2.0)


def test_arcface_similarity_feeds_a_112_crop():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return torch.nn.functional.normalize(x.flatten(1), dim=1)

    ArcFaceSimilarity(Probe())(torch.randn(2, 3, 256, 256))
    assert seen == [(2, 3, 112, 112)]
    assert math.isclose(188 / 256 * 32, face_crop(torch.zeros(1, 3, 32, 32)).shape[-1], abs_tol=1)
