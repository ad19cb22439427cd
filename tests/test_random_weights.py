"""Every method builds at a domain's official architecture with random weights, reading no file."""

import pytest

from e4e_bench.domains import get_domain
from e4e_bench.methods import build_method

CARS = get_domain("cars")


@pytest.mark.parametrize("name", ["e4e", "psp", "opt_w", "opt_wplus"])
def test_every_method_builds_at_the_cars_architecture_without_files(name, tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))  # an empty cache: any file read would fail
    options = {"w_avg_samples": 100} if name.startswith("opt") else {}
    method = build_method(name, domain=CARS, random_weights=True, seed=3, options=options)
    generator = method.generator
    assert (generator.size, generator.n_latent, generator.style_dim) == (512, 16, 512)
    assert sum(p.numel() for p in generator.parameters()) > 28_000_000  # config-f, channel multiplier 2
    assert method.input_size == (CARS.encoder_input if name in ("e4e", "psp") else CARS.frame_size)
    assert method.source.random_seed == 3 and method.source.checkpoint is None
