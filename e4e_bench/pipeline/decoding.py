"""Codes to decode, as `generate` and `edit` take them: from a `.npy` with a bare generator (a noise
mode for every code), or an inversion folder whose method decodes each code with its image's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from e4e_bench.checkpoints import load_generator
from e4e_bench.errors import E4EBenchError
from e4e_bench.latents import generator_batches, read_codes
from e4e_bench.networks.generator import Generator
from e4e_bench.pipeline.inversion import decode_batches, inversion_decoder

Batches = Callable[[int, int], torch.Tensor]  # decode(start, stop) -> frames


@dataclass
class CodesToDecode:
    generator: Generator  # the codes' generator (an inversion's: its method's)
    codes: torch.Tensor  # W+ `[N, n_latent, style_dim]`
    batches: Callable[[torch.Tensor], Batches]  # codes of the same rows (e.g. edited) -> their decoder


def codes_to_decode(generator: Path | None, inversion: Path | None, latents: Path | None, device: torch.device,
                    noise: str = "const", seed: int = 0) -> CodesToDecode:
    """`inversion` (latents optional, default its own) or `generator` with `latents`."""
    if inversion is not None:
        if noise != "const":
            raise E4EBenchError("--noise is for a bare --generator; --inversion decodes with each image's own state")
        method, stored = inversion_decoder(inversion, device, latents)
        return CodesToDecode(method.generator, stored.codes, lambda codes: decode_batches(method, stored, codes))
    if latents is None:
        raise E4EBenchError("--latents FILE.npy is required with --generator")
    decoder, _ = load_generator(generator, device)
    codes = decoder.to_wplus(read_codes(latents, decoder))
    return CodesToDecode(decoder, codes, lambda codes: generator_batches(decoder, codes, noise, seed))
