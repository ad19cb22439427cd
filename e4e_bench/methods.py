"""The inversion-method interface and the registry that finds methods by name.

Methods live in `encoders` and `baselines`; they are imported on first use so that the harness
never depends on their internals (and `--help` stays fast).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from e4e_bench.data import check_aspect, list_images
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.generator import Generator

METHODS: dict[str, str] = {
    "e4e": "encoders.method:build_e4e",
    "psp": "encoders.method:build_psp",
    "opt_w": "baselines.method:build_opt_w",
    "opt_wplus": "baselines.method:build_opt_wplus",
}


@runtime_checkable
class InversionMethod(Protocol):
    name: str
    generator: Generator  # the decoder the codes belong to
    input_size: tuple[int, int]  # (H, W) the images are loaded at
    # Methods may set `resizes_inputs = False`: images must then already have the aspect ratio of
    # `input_size` (projection compares pixels with the domain's frame; a stretched image is an error).

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> W+ codes [B, n_latent, style_dim], latent_avg included."""
        ...


def build_method(
    name: str,
    *,
    domain: Domain,
    checkpoint: Path | None = None,
    generator: Path | None = None,
    device: torch.device = torch.device("cpu"),
    options: dict[str, Any] | None = None,
) -> InversionMethod:
    if name not in METHODS:
        raise E4EBenchError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    module_name, factory_name = METHODS[name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(domain=domain, checkpoint=checkpoint, generator=generator, device=device, options=dict(options or {}))


def images_for(method: InversionMethod, folder: Path) -> list[Path]:
    """The sorted image files of `folder`, checked up front against what the method accepts."""
    paths = list_images(folder)
    if not getattr(method, "resizes_inputs", True):
        check_aspect(paths, method.input_size)
    return paths


def invert_with_noise(method: InversionMethod, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | str]:
    """Codes and the noise to decode them with: the method's own maps, or the generator's stored ones."""
    if hasattr(method, "invert_with_noise"):
        return method.invert_with_noise(images)
    return method.invert(images), "const"
