"""Decoding with a shared generator and per-image noise maps: the decode of every method whose only
per-image state is noise (encoders keep none and decode with the generator's stored maps)."""

from __future__ import annotations

import torch

from e4e_bench.methods.contract import Inversion
from e4e_bench.networks.generator import Generator, NoiseSpec

NOISE_KEY = "noise.{}"  # state key of the generator's k-th noise input, `[B, 1, r, r]`


def noise_state(noise: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    return {NOISE_KEY.format(k): maps for k, maps in enumerate(noise)}


def state_noise(state: dict[str, torch.Tensor], generator: Generator) -> NoiseSpec:
    """The per-image noise maps in `state`, or the generator's stored ones when it holds none."""
    count = len(generator.noise_buffers())
    if NOISE_KEY.format(0) not in state:
        return "const"
    return [state[NOISE_KEY.format(k)] for k in range(count)]


def decode_with_noise(generator: Generator, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
    """`generator(codes)` with each image's own noise maps (the stored ones if it has none)."""
    codes = inversion.codes if codes is None else codes
    return generator(codes, noise=state_noise(inversion.state, generator))
