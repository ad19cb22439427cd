"""Speed of e4e/pSp inversion (encoder + generator) per image at the cars configuration, random weights.

512-px config-f generator, 16 codes, 192x256 inputs, full-resolution decode with the stored noise,
crop to 384x512 (what `invert` does per batch). Run with:
    python -m pytest -m slow tests/test_encoders_bench.py --benchmark-enable
`extra_info` holds the batch size and ms per image.
"""
from __future__ import annotations

import pytest
import torch

from e4e_bench.domains import get_domain
from e4e_bench.methods import build_method

CARS = get_domain("cars")


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("method", ["e4e", "psp"])
def test_cars_inversion_speed(benchmark, two_threads, method, batch_size):
    built = build_method(method, domain=CARS, device=torch.device("cpu"), options={"random_weights": True})
    images = torch.rand(batch_size, 3, *CARS.encoder_input) * 2 - 1

    def invert_and_decode() -> torch.Tensor:
        codes = built.invert(images)
        with torch.inference_mode():
            return CARS.crop(built.generator(codes, noise="const"))

    reconstructions = benchmark.pedantic(invert_and_decode, rounds=3, warmup_rounds=1)
    assert reconstructions.shape == (batch_size, 3, 384, 512)
    benchmark.extra_info.update(batch_size=batch_size, threads=torch.get_num_threads())
    if benchmark.stats is not None:  # None under --benchmark-disable (the default addopts)
        benchmark.extra_info["ms_per_image"] = 1000 * benchmark.stats.stats.mean / batch_size
