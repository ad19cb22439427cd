"""`opt_w` and `opt_wplus`: the batched projector behind the `InversionMethod` interface."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from baselines.projector import LatentStatistics, ProjectorConfig, Space, latent_statistics, project
from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.networks.lpips_net import build_lpips
from e4e_bench.methods import WeightSource, method_options
from e4e_bench.seeding import seeded_initialisation


@dataclass(frozen=True)
class ProjectionOptions(ProjectorConfig):
    """The projector's settings plus the base of every image's seed and the LPIPS backbone's weights."""

    seed: int = 0
    lpips_pretrained: bool = True  # False: LPIPS-VGG with a random backbone (tests, throughput runs)

    @property
    def config(self) -> ProjectorConfig:
        return ProjectorConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ProjectorConfig)})


@dataclass
class ProjectionMethod:
    """Inverts images by projection, each with a seed drawn from its pixels (see `image_seeds`)."""

    name: str
    generator: Generator
    input_size: tuple[int, int]
    space: Space
    options: ProjectionOptions
    domain: Domain
    lpips: nn.Module | None
    statistics: LatentStatistics
    source: WeightSource
    progress: bool = True
    resizes_inputs: bool = False  # targets must have the domain frame's aspect ratio

    def invert(self, images: Tensor) -> Tensor:
        return self.invert_with_noise(images)[0]

    def invert_with_noise(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """W+ codes `[B, n_latent, style_dim]` and the optimised noise maps to decode them with."""
        result = project(
            self.generator, images, space=self.space, config=self.options.config,
            seeds=image_seeds(images, self.options.seed), lpips=self.lpips, domain=self.domain,
            statistics=self.statistics, progress=self.progress)
        return result.codes, result.noise


def image_seeds(images: Tensor, seed: int) -> list[int]:
    """One seed per image from its pixels and `seed`, so its result depends neither on its batch,
    nor on its position in the run, nor on which batches a resumed run skips."""
    pixels = images.detach().float().cpu().numpy()
    prefix = seed.to_bytes(8, "little", signed=True)
    return [int.from_bytes(hashlib.sha256(prefix + image.tobytes()).digest()[:8], "little") >> 1 for image in pixels]


def build_opt_w(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
                device: torch.device, options: Mapping[str, Any] | None = None,
                random_weights: bool = False, seed: int = 0) -> ProjectionMethod:
    return _build("opt_w", "w", domain, checkpoint, generator, device, options or {}, random_weights, seed)


def build_opt_wplus(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
                    device: torch.device, options: Mapping[str, Any] | None = None,
                    random_weights: bool = False, seed: int = 0) -> ProjectionMethod:
    return _build("opt_wplus", "wplus", domain, checkpoint, generator, device, options or {}, random_weights, seed)


def _build(name: str, space: Space, domain: Domain, checkpoint: Path | None, generator_path: Path | None,
           device: torch.device, options: Mapping[str, Any], random_weights: bool, seed: int) -> ProjectionMethod:
    """`random_weights`: the domain's official config-f generator drawn from `seed` (unless a generator
    file is given) and LPIPS-VGG with a random backbone, so that no file is needed."""
    chosen = method_options(ProjectionOptions, name, options)
    if random_weights and generator_path is None:
        with seeded_initialisation(seed):
            generator = Generator(domain.resolution).to(device).eval().requires_grad_(False)
        source = WeightSource(random_seed=seed)
    else:
        path = generator_path or checkpoint or _domain_generator(domain, name)
        generator, _ = load_generator(path, device)
        if generator.size != domain.resolution:
            raise E4EBenchError(f"{path} is a {generator.size}px generator but domain {domain.name!r} needs "
                                f"{domain.resolution}px; pass the --domain that matches the generator.")
        source = WeightSource(generator=path)
    lpips = None
    if chosen.lpips_weight > 0:
        lpips = build_lpips("vgg", pretrained=chosen.lpips_pretrained and not random_weights, device=device)
    return ProjectionMethod(
        name=name, generator=generator, input_size=domain.frame_size, space=space, options=chosen, domain=domain,
        lpips=lpips, statistics=latent_statistics(generator, chosen.w_avg_samples), source=source)


def _domain_generator(domain: Domain, name: str) -> Path:
    if domain.generator_asset is None:
        raise E4EBenchError(f"{name} needs a generator: pass --generator PATH (domain {domain.name!r} has no default).")
    return asset_path(domain.generator_asset)
