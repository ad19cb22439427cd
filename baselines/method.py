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
from e4e_bench.generator import Generator
from e4e_bench.lpips_net import build_lpips

# Options besides the ProjectorConfig fields: the base seed, LPIPS backbone weights, the progress bar.
EXTRA_OPTIONS = {"seed": 0, "lpips_pretrained": True, "progress": True}


@dataclass
class ProjectionMethod:
    """Inverts images by projection, each with a seed drawn from its pixels (see `image_seeds`)."""

    name: str
    generator: Generator
    input_size: tuple[int, int]
    space: Space
    config: ProjectorConfig
    crop_rows: tuple[int, int] | None
    lpips: nn.Module | None
    statistics: LatentStatistics
    seed: int = 0
    progress: bool = True
    resizes_inputs: bool = False  # targets must have the domain frame's aspect ratio

    def invert(self, images: Tensor) -> Tensor:
        return self.invert_with_noise(images)[0]

    def invert_with_noise(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """W+ codes `[B, n_latent, style_dim]` and the optimised noise maps to decode them with."""
        result = project(
            self.generator, images, space=self.space, config=self.config, seeds=image_seeds(images, self.seed),
            lpips=self.lpips, crop_rows=self.crop_rows, statistics=self.statistics, progress=self.progress)
        return result.codes, result.noise


def image_seeds(images: Tensor, seed: int) -> list[int]:
    """One seed per image from its pixels and `seed`, so its result depends neither on its batch,
    nor on its position in the run, nor on which batches a resumed run skips."""
    pixels = images.detach().float().cpu().numpy()
    prefix = seed.to_bytes(8, "little", signed=True)
    return [int.from_bytes(hashlib.sha256(prefix + image.tobytes()).digest()[:8], "little") >> 1 for image in pixels]


def build_opt_w(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
                device: torch.device, options: Mapping[str, Any] | None = None) -> ProjectionMethod:
    return _build("opt_w", "w", domain, checkpoint, generator, device, options or {})


def build_opt_wplus(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
                    device: torch.device, options: Mapping[str, Any] | None = None) -> ProjectionMethod:
    return _build("opt_wplus", "wplus", domain, checkpoint, generator, device, options or {})


def _build(name: str, space: Space, domain: Domain, checkpoint: Path | None, generator_path: Path | None,
           device: torch.device, options: Mapping[str, Any]) -> ProjectionMethod:
    config_fields = {f.name for f in dataclasses.fields(ProjectorConfig)}
    unknown = set(options) - config_fields - set(EXTRA_OPTIONS)
    if unknown:
        raise E4EBenchError(f"{name} has no option(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(config_fields | set(EXTRA_OPTIONS)))}.")
    extra = {key: options.get(key, default) for key, default in EXTRA_OPTIONS.items()}
    config = ProjectorConfig(**{key: value for key, value in options.items() if key in config_fields})

    path = generator_path or checkpoint or _domain_generator(domain, name)
    generator, _ = load_generator(path, device)
    if generator.size != domain.resolution:
        raise E4EBenchError(f"{path} is a {generator.size}px generator but domain {domain.name!r} needs "
                            f"{domain.resolution}px; pass the --domain that matches the generator.")
    lpips = build_lpips("vgg", pretrained=extra["lpips_pretrained"], device=device) if config.lpips_weight > 0 else None
    return ProjectionMethod(
        name=name, generator=generator, input_size=domain.frame_size, space=space, config=config,
        crop_rows=domain.crop_rows, lpips=lpips, statistics=latent_statistics(generator, config.w_avg_samples),
        seed=int(extra["seed"]), progress=bool(extra["progress"]))


def _domain_generator(domain: Domain, name: str) -> Path:
    if domain.generator_asset is None:
        raise E4EBenchError(f"{name} needs a generator: pass --generator PATH (domain {domain.name!r} has no default).")
    return asset_path(domain.generator_asset)
