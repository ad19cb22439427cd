"""Benchmarks of the generator forward on the CPU (batch 1, stored noise), at 256 and 512 px.

Run with: python -m pytest -m slow tests/test_generator_bench.py --benchmark-enable
"""

from __future__ import annotations

import pytest
import torch

from e4e_bench.generator import Generator


@pytest.mark.slow
@pytest.mark.parametrize("size", [256, 512])
def test_generator_forward_speed(benchmark, two_threads, size):
    torch.manual_seed(0)
    generator = Generator(size).eval().requires_grad_(False)
    codes = torch.randn(1, generator.n_latent, 512)
    with torch.inference_mode():
        generator(codes)  # warm-up
        image = benchmark.pedantic(generator, args=(codes,), rounds=5, iterations=1)
    assert image.shape == (1, 3, size, size)
