"""`opt_w` and `opt_wplus`: the batched projector behind the `InversionMethod` interface."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from baselines.projector import LatentStatistics, ProjectionResult, ProjectorConfig, Space, latent_statistics, project
from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, WeightSource
from e4e_bench.methods.decoding import decode_with_noise, noise_state
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import Generator
from e4e_bench.networks.lpips_net import build_lpips
from e4e_bench.seeding import seeded_initialisation


@dataclass(frozen=True)
class ProjectionOptions(ProjectorConfig):
    """The projector's settings plus the base of every image's seed and the LPIPS backbone's weights."""

    seed: int = option(0, "base of every image's seed (each image's seed also comes from its pixels)")
    lpips_pretrained: bool = option(True, "LPIPS-VGG with its ImageNet backbone; off: a random backbone (throughput runs)")

    @property
    def config(self) -> ProjectorConfig:
        return ProjectorConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ProjectorConfig)})

    def required_assets(self) -> tuple[str, ...]:
        return ("lpips-vgg",) if self.lpips_weight > 0 and self.lpips_pretrained else ()


@dataclass
class ProjectionMethod:
    """Inverts images by projection, each with a seed drawn from its pixels (see `image_seeds`); the
    optimised noise maps are each image's decoder state."""

    name: str
    generator: Generator
    input_size: tuple[int, int]
    space: Space
    options: ProjectionOptions
    domain: Domain
    lpips: nn.Module | None
    statistics: LatentStatistics
    source: WeightSource
    resizes_inputs: bool = False  # targets must have the domain frame's aspect ratio

    @property
    def recipe_steps(self) -> int:
        return self.options.steps

    def invert(self, images: Tensor) -> Inversion:
        return self._project(images, self.options.config, progress=True)

    def invert_steps(self, images: Tensor, steps: int) -> Inversion:
        return self._project(images, dataclasses.replace(self.options.config, steps=steps), progress=False)

    def invert_along(self, images: Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        """The dial is the step count: the codes and noise after each of `values` steps of one projection."""
        if any(value != int(value) or not 0 <= value <= self.options.steps for value in values):
            raise E4EBenchError(f"{self.name}'s dial values are step counts from 0 to its {self.options.steps} steps; "
                                f"got {', '.join(f'{v:g}' for v in values)}")

        def point(value: float) -> Callable[[ProjectionResult], None]:
            return lambda result: on_point(value, projected(result))

        self._project(images, self.options.config, progress=True, on_steps={int(v): point(v) for v in values})

    def decode(self, inversion: Inversion, codes: Tensor | None = None) -> Tensor:
        return decode_with_noise(self.generator, inversion, codes)

    def _project(self, images: Tensor, config: ProjectorConfig, progress: bool,
                 on_steps: dict[int, Callable[[ProjectionResult], None]] | None = None) -> Inversion:
        return projected(project(
            self.generator, images, space=self.space, config=config, seeds=image_seeds(images, self.options.seed),
            lpips=self.lpips, domain=self.domain, statistics=self.statistics, progress=progress, on_steps=on_steps))


def projected(result: ProjectionResult) -> Inversion:
    return Inversion(result.codes, noise_state(result.noise))



def image_seeds(images: Tensor, seed: int) -> list[int]:
    """One seed per image from its pixels and `seed`, so its result depends neither on its batch,
    nor on its position in the run, nor on which batches a resumed run skips."""
    pixels = images.detach().float().cpu().numpy()
    prefix = seed.to_bytes(8, "little", signed=True)
    return [int.from_bytes(hashlib.sha256(prefix + image.tobytes()).digest()[:8], "little") >> 1 for image in pixels]


def build_opt_w(**keywords) -> ProjectionMethod:
    return build_projection("opt_w", "w", **keywords)


def build_opt_wplus(**keywords) -> ProjectionMethod:
    return build_projection("opt_wplus", "wplus", **keywords)


def build_projection(name: str, space: Space, *, domain: Domain, checkpoint: Path | None, generator: Path | None,
                     device: torch.device, options: ProjectionOptions, random_weights: bool,
                     seed: int) -> ProjectionMethod:
    """`random_weights`: the domain's official config-f generator drawn from `seed` (unless a generator
    file is given) and LPIPS-VGG with a random backbone, so that no file is needed."""
    if random_weights and generator is None:
        with seeded_initialisation(seed):
            decoder = Generator(**domain.generator_kwargs).to(device).eval().requires_grad_(False)
        source = WeightSource(random_seed=seed)
    else:
        path = generator or _domain_generator(domain, name)
        decoder, _ = load_generator(path, device)
        if decoder.size != domain.resolution:
            raise E4EBenchError(f"{path} is a {decoder.size}px generator but domain {domain.name!r} needs "
                                f"{domain.resolution}px; pass the --domain that matches the generator.")
        source = WeightSource(generator=path)
    lpips = None
    if options.lpips_weight > 0:
        lpips = build_lpips("vgg", pretrained=options.lpips_pretrained and not random_weights, device=device)
    return ProjectionMethod(
        name=name, generator=decoder, input_size=domain.frame_size, space=space, options=options, domain=domain,
        lpips=lpips, statistics=latent_statistics(decoder, options.w_avg_samples), source=source)


def _domain_generator(domain: Domain, name: str) -> Path:
    if domain.generator_asset is None:
        raise E4EBenchError(f"{name} needs a generator: pass --generator PATH (domain {domain.name!r} has no default).")
    return asset_path(domain.generator_asset)
