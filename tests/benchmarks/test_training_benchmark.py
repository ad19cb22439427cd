"""Benchmark (not a test): training steps per second at the cars configuration, batch 2.

e4e's cars recipe on full-size networks with random weights: 512 px config-f generator, IR-SE50
encoder at 192x256 with all 15 offsets active, LPIPS-Alex, MoCo ResNet-50 similarity (x0.5), the
latent discriminator with w-pool and R1, Ranger. Run with `python -m pytest -m slow --benchmark-enable
tests/benchmarks/test_training_benchmark.py`.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import rosinality_checkpoint, write_images
from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.networks.generator import Generator
from e4e_bench.distributed import ProcessGroup
from encoders.training.options import TrainOptions, recipe_defaults
from encoders.training.setup import prepare
from encoders.training.trainer import train_step


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_benchmark_e4e_cars_training_steps(benchmark, tmp_path, device, two_threads):
    torch.manual_seed(0)
    generator = Generator(512)
    save_checkpoint(rosinality_checkpoint(generator, generator.mean_latent(1000)[0]), tmp_path / "car.pt")
    write_images(tmp_path / "data", torch.rand(4, 3, 192, 256) * 2 - 1)
    opts = TrainOptions(**recipe_defaults("e4e", "cars") | dict(
        exp_dir=str(tmp_path / "out"), data=str(tmp_path / "data"), stylegan_weights=str(tmp_path / "car.pt"),
        batch_size=2, random_weights=True, encoder_init="random", progressive_start=0, progressive_step_every=0,
        device=device))
    run, train_set, _ = prepare(opts, ProcessGroup(0, 1, torch.device(device)), None)
    images = torch.stack([train_set[0], train_set[1]]).to(device)
    train_step(run, images)  # warm-up: optimiser state, allocator

    def step():
        train_step(run, images)
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=3, iterations=1)
    benchmark.extra_info["steps_per_second"] = 1 / benchmark.stats.stats.mean
    benchmark.extra_info["config"] = "e4e cars recipe, batch 2, all 15 offsets, random weights"
    assert run.stage(run.state.global_step) == 15
