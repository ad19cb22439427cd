"""Projection throughput (images/second) at batch 1 and batch 8: what batching the projector buys.

Both cases are in the slow set (they measure, they do not check results): a tiny generator, and a
256 px config-f generator with the full LPIPS-VGG loss, for a few steps. Numbers:
`python -m pytest tests/benchmarks/test_projector_benchmark.py -m slow --benchmark-enable`.
"""

import pytest
import torch

from baselines.projector import ProjectorConfig, latent_statistics, project
from tests.conftest import make_tiny_generator
from e4e_bench.networks.generator import Generator
from e4e_bench.networks.lpips_net import build_lpips

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def synchronized(device):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


@pytest.fixture(scope="module")
def random_lpips():
    return build_lpips("vgg", pretrained=False)


def measure(benchmark, generator, lpips, batch, steps, device, rounds):
    generator, lpips = generator.to(device), lpips.to(device)
    statistics = latent_statistics(generator, 1000)
    targets = torch.rand(batch, 3, generator.size, generator.size, generator=torch.Generator().manual_seed(0))
    targets = (targets * 2 - 1).to(device)
    config = ProjectorConfig(steps=steps)
    sync = synchronized(device)

    def run():
        result = project(generator, targets, space="wplus", config=config, seeds=range(batch), lpips=lpips,
                         statistics=statistics)
        sync()
        return result

    result = benchmark.pedantic(run, rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    benchmark.extra_info.update(batch=batch, steps=steps, device=device, size=generator.size)
    if benchmark.stats is not None:
        step_seconds = benchmark.stats.stats.mean / steps
        benchmark.extra_info["image_steps_per_second"] = batch / step_seconds
        # Steps cost the same throughout, so this extrapolates to the official 1000-step recipe.
        benchmark.extra_info["images_per_second_at_1000_steps"] = batch / (1000 * step_seconds)
    assert result.codes.shape == (batch, generator.n_latent, generator.style_dim)
    assert torch.isfinite(result.codes).all()


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 8])
def test_projection_throughput_tiny_generator(benchmark, random_lpips, batch, device):
    measure(benchmark, make_tiny_generator(size=32, style_dim=64), random_lpips, batch, steps=5, device=device, rounds=3)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 8])
def test_projection_throughput_256px_config_f(benchmark, two_threads, random_lpips, batch, device):
    torch.manual_seed(0)
    measure(benchmark, Generator(256).eval().requires_grad_(False), random_lpips, batch, steps=3, device=device, rounds=2)
