"""Benchmarks (not tests) of what `bench` times, built by the same code, at toy-like and cars sizes.

toy: a 32 px generator with style_dim 64 (tests/conftest.py), the official encoders at its 32x32
input; cars: the official architectures (512 px config-f, 192x256 encoder input). Random weights.
Each call is synchronised; `extra_info` holds the batch, GFLOP per image and images/s. Run with
`python -m pytest tests/benchmarks -m slow --benchmark-enable`.
"""

from __future__ import annotations

import pytest
import torch

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.devices import synchronize
from e4e_bench.domains import get_domain
from e4e_bench.networks.generator import Generator
from e4e_bench.throughput.bench import BenchSettings, Workload, generator_workload, method_workload
from e4e_bench.methods import build_method
from e4e_bench.throughput.timing import count_flops
from tests.conftest import TINY, make_tiny_generator, rosinality_checkpoint

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIZES = ("toy", "cars")
BATCHES = (1, 4)
SETTINGS = BenchSettings(methods=("e4e",), domain="cars", timed_steps=1)  # one projector step per call


@pytest.fixture(scope="module")
def toy_generator_file(tmp_path_factory):
    generator = make_tiny_generator()
    path = tmp_path_factory.mktemp("toy") / "generator.pt"
    save_checkpoint(rosinality_checkpoint(generator, generator.mean_latent(1000)[0]), path)
    return path


def built(name: str, size: str, toy_generator_file, device: str):
    domain, generator = (TINY, toy_generator_file) if size == "toy" else (get_domain("cars"), None)
    return build_method(name, domain=domain, generator=generator, device=torch.device(device), random_weights=True,
                        seed=0)


def time_workload(benchmark, workload: Workload, device: str, batch: int) -> None:
    flops, _ = count_flops(workload.step)

    def synchronised_step():
        workload.step()
        synchronize(torch.device(device))

    benchmark.pedantic(synchronised_step, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(batch_size=batch, gflop_per_image=flops / batch / 1e9, threads=torch.get_num_threads())
    if benchmark.stats is not None:  # None under --benchmark-disable (the default addopts)
        benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", SIZES)
def test_generator_forward(benchmark, two_threads, size, batch, device):
    torch.manual_seed(0)
    generator = make_tiny_generator() if size == "toy" else Generator(get_domain("cars").resolution).eval()
    generator = generator.to(device).requires_grad_(False)
    time_workload(benchmark, generator_workload(generator, batch, SETTINGS), device, batch)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["e4e", "psp"])
def test_encoder_inversion(benchmark, two_threads, toy_generator_file, name, size, batch, device):
    method = built(name, size, toy_generator_file, device)
    time_workload(benchmark, method_workload(method, batch, SETTINGS, torch.device(device)), device, batch)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", SIZES)
def test_one_projector_step(benchmark, two_threads, toy_generator_file, size, batch, device):
    method = built("opt_wplus", size, toy_generator_file, device)
    time_workload(benchmark, method_workload(method, batch, SETTINGS, torch.device(device)), device, batch)
