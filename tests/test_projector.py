"""The batched projector: schedules, noise prior, code recovery, batch independence, input checks."""

import copy
import math

import pytest
import torch

from baselines.noise_regularization import noise_regularization, normalize_noise_
from baselines.projector import ProjectorConfig, latent_statistics, project
from baselines.schedules import latent_noise_scale, learning_rate
from baselines.target_lpips import TargetLPIPS
from tests.conftest import make_tiny_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.lpips_net import build_lpips

MSE_ONLY = dict(lpips_weight=0.0, mse_weight=1.0)


@pytest.fixture(scope="module")
def generator():
    return make_tiny_generator(size=16, style_dim=32)


@pytest.fixture(scope="module")
def statistics(generator):
    return latent_statistics(generator, 2000)


@pytest.fixture(scope="module")
def random_lpips():
    return build_lpips("vgg", pretrained=False)


def decode(generator, w):
    with torch.no_grad():
        return generator(w)


def true_codes(generator, statistics, n, seed=5):
    """Mapped samples pulled halfway to the mean, where a short projection converges."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed)).to(statistics.mean)
    with torch.no_grad():
        return statistics.mean + 0.5 * (generator.mapping(z) - statistics.mean)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (25, 0.05), (50, 0.1), (400, 0.1), (750, 0.1), (875, 0.05), (1000, 0.0)],
)
def test_learning_rate_ramps_up_linearly_and_down_along_a_cosine(step, expected):
    assert learning_rate(step / 1000, peak=0.1, rampup=0.05, rampdown=0.25) == pytest.approx(expected, abs=1e-12)


def test_learning_rate_rampdown_is_a_half_cosine():
    t = 0.8  # 0.2 of the 0.25 ramp-down left
    expected = 0.1 * (0.5 - 0.5 * math.cos(math.pi * 0.2 / 0.25))
    assert learning_rate(t, peak=0.1, rampup=0.05, rampdown=0.25) == pytest.approx(expected)


@pytest.mark.parametrize(("t", "expected"), [(0.0, 0.05), (0.375, 0.0125), (0.75, 0.0), (0.9, 0.0)])
def test_latent_noise_decays_quadratically_to_zero_at_the_ramp_end(t, expected):
    assert latent_noise_scale(t, w_std=2.0, strength=0.05, ramp=0.75) == pytest.approx(2.0 * expected)


def test_noise_penalty_of_a_checkerboard_is_two_per_map_and_zero_for_its_coarser_levels():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0
    # Level 16: autocorrelation -1 along x and y; the 2x2 average at level 8 is 0.
    penalty = noise_regularization([checker.expand(2, 1, 16, 16)])
    assert penalty.tolist() == pytest.approx([2.0, 2.0])


def test_noise_penalty_is_per_image_small_for_white_noise_and_large_for_a_constant():
    white = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    constant = torch.ones(1, 1, 64, 64)
    penalty = noise_regularization([torch.cat([white, constant])])
    assert penalty[0] < 1e-3
    assert penalty[1] == pytest.approx(2 * 4)  # x and y at the 64, 32, 16 and 8 levels


def test_normalize_noise_makes_each_image_zero_mean_unit_std():
    noise = torch.randn(3, 1, 8, 8) * torch.tensor([1.0, 5.0, 0.1])[:, None, None, None] + 3.0
    normalize_noise_([noise])
    assert noise.mean(dim=(1, 2, 3)).abs().max() < 1e-5
    assert noise.std(dim=(1, 2, 3)).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


def test_latent_statistics_are_the_mean_and_total_std_of_mapped_samples(generator):
    stats = latent_statistics(generator, 500, seed=3)
    z = torch.randn(500, generator.style_dim, generator=torch.Generator().manual_seed(3))
    w = decode(generator.mapping, z)
    torch.testing.assert_close(stats.mean, w.mean(0))
    assert stats.std == pytest.approx(float(w.var(0, unbiased=False).sum().sqrt()), rel=1e-5)


def test_projection_into_w_recovers_the_generating_codes(generator, statistics):
    w = true_codes(generator, statistics, 2)
    config = ProjectorConfig(steps=250, optimize_noise=False, **MSE_ONLY)
    result = project(generator, decode(generator, w), space="w", config=config, seeds=[0, 1], statistics=statistics)
    start = (w - statistics.mean).norm(dim=1)
    error = (result.codes - w[:, None]).norm(dim=2)
    assert result.codes.shape == (2, generator.n_latent, generator.style_dim)
    assert (error < 0.3 * start[:, None]).all()
    # Without noise optimisation the generator's stored maps are used, and returned for decoding.
    assert all(torch.equal(n, b.expand(2, -1, -1, -1)) for n, b in zip(result.noise, generator.noise_buffers()))


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_lpips_projection_lowers_the_loss_and_keeps_noise_maps_normalised(generator, statistics, random_lpips, space):
    targets = decode(generator, true_codes(generator, statistics, 2))
    config = ProjectorConfig(steps=40, mse_weight=1.0)
    result = project(generator, targets, space=space, config=config, seeds=[0, 1], lpips=random_lpips,
                     statistics=statistics)

    def loss(images):
        return random_lpips(images, targets).flatten() + ((images - targets) ** 2).mean(dim=(1, 2, 3))

    start = loss(decode(generator, statistics.mean.expand(2, -1)))
    for noise, buffer in zip(result.noise, generator.noise_buffers()):
        assert noise.shape == (2, *buffer.shape[1:])
        assert noise.mean(dim=(1, 2, 3)).abs().max() < 1e-4
        assert noise.std(dim=(1, 2, 3)).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    with torch.no_grad():
        reconstruction = generator(result.codes, noise=result.noise)
    assert (loss(reconstruction) < 0.5 * start).all()


@pytest.fixture(scope="module")
def double_setup(random_lpips):
    """float64 copies, so that only a real coupling between batch-mates (not summation order) could show."""
    double_generator = make_tiny_generator(size=16, style_dim=32).double()
    return double_generator, copy.deepcopy(random_lpips).double(), latent_statistics(double_generator, 500)


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_a_batch_equals_the_same_images_projected_alone(double_setup, space):
    generator, lpips, statistics = double_setup
    targets = decode(generator, true_codes(generator, statistics, 2))
    config = ProjectorConfig(steps=8, mse_weight=0.5)
    seeds = [7, 8]
    batch = project(generator, targets, space=space, config=config, seeds=seeds, lpips=lpips, statistics=statistics)
    for i, seed in enumerate(seeds):
        alone = project(generator, targets[i:i + 1], space=space, config=config, seeds=[seed], lpips=lpips,
                        statistics=statistics)
        torch.testing.assert_close(batch.codes[i:i + 1], alone.codes, rtol=0, atol=1e-10)
        for batch_noise, alone_noise in zip(batch.noise, alone.noise):
            torch.testing.assert_close(batch_noise[i:i + 1], alone_noise, rtol=0, atol=1e-10)
        torch.testing.assert_close(batch.loss[i:i + 1], alone.loss, rtol=0, atol=1e-10)


def test_the_seed_decides_the_result(generator, statistics):
    targets = decode(generator, true_codes(generator, statistics, 1))
    config = ProjectorConfig(steps=5, **MSE_ONLY)
    runs = [project(generator, targets, space="wplus", config=config, seeds=[seed], statistics=statistics).codes
            for seed in (1, 1, 2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.allclose(runs[0], runs[2])


# Rows 2:14 of the 16 px test generator hold the content.
STRIP = Domain(name="strip", resolution=16, crop_rows=(2, 14), encoder_input=(12, 16), eval_size=(12, 16),
               identity=None, edits=(), generator_asset=None)


def test_generator_output_is_cropped_to_the_frame_before_comparison(generator, statistics):
    frame = decode(generator, true_codes(generator, statistics, 1))[:, :, 2:14]
    config = ProjectorConfig(steps=3, **MSE_ONLY)
    result = project(generator, frame, space="w", config=config, seeds=[0], domain=STRIP, statistics=statistics)
    assert result.codes.shape == (1, generator.n_latent, generator.style_dim)
    with pytest.raises(E4EBenchError, match=r"expected \[N, 3, 12, 16\]"):
        project(generator, decode(generator, statistics.mean[None]), space="w", config=config, seeds=[0],
                domain=STRIP, statistics=statistics)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 1, 16, 16), (3, 16, 16)])
def test_images_of_the_wrong_size_are_a_clear_error(generator, statistics, shape):
    with pytest.raises(E4EBenchError, match=r"do not match the generator's frame: expected \[N, 3, 16, 16\]"):
        project(generator, torch.zeros(shape), space="w", config=ProjectorConfig(steps=1, **MSE_ONLY), seeds=[0],
                statistics=statistics)


def test_projection_works_under_inference_mode(generator, statistics):
    with torch.inference_mode():
        targets = generator(statistics.mean[None])
        result = project(generator, targets, space="wplus", config=ProjectorConfig(steps=2, **MSE_ONLY), seeds=[0],
                         statistics=statistics)
    assert torch.isfinite(result.codes).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(steps=0), "--steps must be at least 1"),
        (dict(lr=-0.1), "--lr must be >= 0"),
        (dict(lpips_weight=0.0, mse_weight=0.0), "both 0"),
        (dict(lr_rampup=0.0), "lr_rampup must be in"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(E4EBenchError, match=message):
        ProjectorConfig(**settings)


def test_unknown_space_is_an_error(generator, statistics):
    with pytest.raises(E4EBenchError, match="unknown projection space"):
        project(generator, torch.zeros(1, 3, 16, 16), space="z", config=ProjectorConfig(**MSE_ONLY), seeds=[0],
                statistics=statistics)


def test_target_lpips_equals_the_lpips_package_with_gradients(random_lpips):
    rng = torch.Generator().manual_seed(0)
    targets = torch.rand(3, 3, 24, 32, generator=rng) * 2 - 1
    images = (torch.rand(3, 3, 24, 32, generator=rng) * 2 - 1).requires_grad_(True)
    ours = TargetLPIPS(random_lpips, targets)(images)
    reference = random_lpips(images, targets).flatten()
    torch.testing.assert_close(ours, reference)
    ours_grad, = torch.autograd.grad(ours.sum(), images)
    reference_grad, = torch.autograd.grad(reference.sum(), images)
    torch.testing.assert_close(ours_grad, reference_grad)


def test_the_schedule_drives_the_optimiser_so_a_single_step_at_lr_zero_keeps_the_mean(generator, statistics):
    targets = decode(generator, true_codes(generator, statistics, 2))
    one = project(generator, targets, space="wplus", config=ProjectorConfig(steps=1, **MSE_ONLY), seeds=[0, 1],
                  statistics=statistics)
    two = project(generator, targets, space="wplus", config=ProjectorConfig(steps=2, **MSE_ONLY), seeds=[0, 1],
                  statistics=statistics)
    torch.testing.assert_close(one.codes, statistics.mean.expand_as(one.codes), rtol=0, atol=0)
    assert not torch.allclose(two.codes, statistics.mean.expand_as(two.codes))


def test_the_points_along_a_projection_are_its_steps_under_the_full_schedule(generator, statistics):
    """`on_steps` sees the result after k steps of the 6-step recipe (not of a k-step one: its schedule
    ramps over all 6), ends at the last step asked for, and its last point is the plain result."""
    targets = decode(generator, true_codes(generator, statistics, 2))
    config = ProjectorConfig(steps=6, **MSE_ONLY)
    points = {}

    def keep(step):
        return lambda result: points.setdefault(step, result)

    whole = project(generator, targets, space="w", config=config, seeds=[1, 2], statistics=statistics,
                    on_steps={0: keep(0), 3: keep(3), 6: keep(6)})
    torch.testing.assert_close(points[6].codes, whole.codes, rtol=0, atol=0)
    torch.testing.assert_close(points[0].codes, statistics.mean.expand_as(whole.codes), rtol=0, atol=0)
    stopped = project(generator, targets, space="w", config=config, seeds=[1, 2], statistics=statistics,
                      on_steps={3: lambda result: None})
    torch.testing.assert_close(stopped.codes, points[3].codes, rtol=0, atol=0)
    short = project(generator, targets, space="w", config=ProjectorConfig(steps=3, **MSE_ONLY), seeds=[1, 2],
                    statistics=statistics)
    assert not torch.allclose(short.codes, points[3].codes)
