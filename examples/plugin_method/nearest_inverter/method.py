"""Nearest-sample inversion: decode N mapped samples once, then give each image the W code of the
sample whose picture is closest to it (mean squared pixel distance at a small matching size).

A floor for learned encoders: it is what "inversion" is without any learning or optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, WeightSource
from e4e_bench.methods.decoding import decode_with_noise
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import Generator, sample_w
from e4e_bench.seeding import seeded_initialisation


@dataclass(frozen=True)
class NearestOptions:
    samples: int = option(1024, "mapped samples z ~ N(0, I) to choose from")
    seed: int = option(0, "seed of the samples")
    match_width: int = option(32, "width in pixels at which images and samples are compared (area-averaged)")
    batch: int = option(64, "samples decoded at once while building the bank")

    def __post_init__(self) -> None:
        for name in ("samples", "match_width", "batch"):
            if getattr(self, name) < 1:
                raise E4EBenchError(f"nearest_w option {name} must be at least 1, got {getattr(self, name)}")


@dataclass
class NearestW:
    name: str
    generator: Generator
    input_size: tuple[int, int]
    options: NearestOptions
    source: WeightSource
    bank_codes: torch.Tensor  # [N, style_dim]
    bank_pixels: torch.Tensor  # [N, 3 * h * w] at the matching size

    def invert(self, images: torch.Tensor) -> Inversion:
        pixels = shrink(images.to(self.bank_pixels), self.options.match_width).flatten(1)
        nearest = torch.cdist(pixels, self.bank_pixels).argmin(dim=1)
        return Inversion(self.generator.to_wplus(self.bank_codes[nearest]))

    def decode(self, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        return decode_with_noise(self.generator, inversion, codes)


def shrink(images: torch.Tensor, width: int) -> torch.Tensor:
    height = max(1, round(images.shape[-2] * width / images.shape[-1]))
    return F.adaptive_avg_pool2d(images, (height, width))


def build_nearest_w(*, domain: Domain, checkpoint: Path | None, generator: Path | None, device: torch.device,
                    options: NearestOptions, random_weights: bool, seed: int) -> NearestW:
    if random_weights and generator is None:
        with seeded_initialisation(seed):
            decoder = Generator(**domain.generator_kwargs)
        source = WeightSource(random_seed=seed)
    else:
        path = generator or asset_path(domain.generator_asset)
        decoder, _ = load_generator(path)
        source = WeightSource(generator=path)
    decoder = decoder.to(device).eval().requires_grad_(False)
    with torch.inference_mode():
        codes = sample_w(decoder, options.samples, torch.Generator().manual_seed(options.seed))
        pixels = torch.cat([shrink(domain.crop(decoder(chunk, noise="const")), options.match_width).flatten(1)
                            for chunk in codes.split(options.batch)])
    return NearestW("nearest_w", decoder, domain.frame_size, options, source, codes.clone(), pixels.clone())
