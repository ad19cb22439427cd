"""The inversion-method interface and the registry that finds methods by name.

Methods live in `encoders` and `baselines`; the registry names each method's factory (and, for
learned methods, its trainer) as `module:attribute`, imported on first use, so the harness never
depends on their internals and `--help` imports none of them.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, TypeVar, runtime_checkable

import torch

from e4e_bench.checkpoints import load_file
from e4e_bench.data import by_stem, check_aspect, list_images, warn_stretched
from e4e_bench.domains import DOMAINS, Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.registry import Registry


@dataclass(frozen=True)
class MethodEntry:
    factory: str  # "module:function" building the method (see `build_method` for its keywords)
    trainer: str | None = None  # "module:function" training it: (method, domain, options, resume) -> summary
    train_options: str | None = None  # "module:Class": the frozen options dataclass of its trainer


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(name: str, entry: MethodEntry) -> MethodEntry:
    return METHODS.register(name, entry)


register_method("e4e", MethodEntry("encoders.method:build_e4e", "encoders.training.setup:run_training",
                                   "encoders.training.options:TrainOptions"))
register_method("psp", MethodEntry("encoders.method:build_psp", "encoders.training.setup:run_training",
                                   "encoders.training.options:TrainOptions"))
register_method("opt_w", MethodEntry("baselines.method:build_opt_w"))
register_method("opt_wplus", MethodEntry("baselines.method:build_opt_wplus"))


@dataclass(frozen=True)
class WeightSource:
    """Where a built method's weights came from: the files read, or the seed of random weights."""

    checkpoint: Path | None = None  # the e4e/pSp file (encoder and, unless `generator` is set, decoder)
    generator: Path | None = None  # the generator file
    random_seed: int | None = None  # random weights at the domain's official architecture


@runtime_checkable
class InversionMethod(Protocol):
    name: str
    generator: Generator  # the decoder the codes belong to
    input_size: tuple[int, int]  # (H, W) the images are loaded at
    options: Any  # the method's frozen options dataclass: every setting that changes the codes
    source: WeightSource
    # Methods may set `resizes_inputs = False`: images must then already have the aspect ratio of
    # `input_size` (projection compares pixels with the domain's frame; a stretched image is an error).

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> W+ codes [B, n_latent, style_dim], latent_avg included."""
        ...


def resolve(reference: str) -> Any:
    """The attribute a `module:attribute` reference names, importing its module."""
    module_name, attribute = reference.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def build_method(
    name: str,
    *,
    domain: Domain,
    checkpoint: Path | None = None,
    generator: Path | None = None,
    device: torch.device = torch.device("cpu"),
    options: Mapping[str, Any] | None = None,
    random_weights: bool = False,
    seed: int = 0,
) -> InversionMethod:
    """The method `name` for `domain`, from plain values.

    `checkpoint`/`generator` default to the domain's registered files; `options` are the method's
    own (unknown ones are refused); `random_weights` builds the domain's official architecture with
    weights drawn from `seed` and reads no file unless `generator` is given.
    """
    factory = resolve(METHODS.lookup(name).factory)
    method = factory(domain=domain, checkpoint=checkpoint, generator=generator, device=device,
                     options=dict(options or {}), random_weights=random_weights, seed=seed)
    if method.generator.size != domain.resolution:
        raise E4EBenchError(
            f"the {name} generator makes {method.generator.size} px images but domain {domain.name!r} "
            f"needs {domain.resolution} px; pass the generator of that domain or the right --domain"
        )
    return method


Options = TypeVar("Options")


def method_options(options_class: type[Options], method: str, options: Mapping[str, Any]) -> Options:
    """`options_class(**options)`, refusing names it does not have with the method's own list."""
    known = [field.name for field in dataclasses.fields(options_class)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
        takes = ", ".join("--" + key.replace("_", "-") for key in known) or "no options"
        raise E4EBenchError(f"{method} has no option {flags}; it takes {takes}")
    return options_class(**options)


DATASET_DOMAINS = {"ffhq": "faces", "celeba": "faces", "car": "cars", "horse": "horse", "church": "church", "toy": "toy"}


def resolve_domain(name: str | None, checkpoint: Path | None = None) -> Domain:
    """The domain named, else the one an e4e/pSp checkpoint was trained on (its opts['dataset_type'])."""
    if name is not None:
        return get_domain(name)
    if checkpoint is not None:
        dataset = str(load_file(checkpoint).get("opts", {}).get("dataset_type", ""))
        for key, domain in DATASET_DOMAINS.items():
            if key in dataset:
                return get_domain(domain)
    raise E4EBenchError("cannot tell the domain of these images; pass --domain (" + ", ".join(DOMAINS) + ")")


def images_for(method: InversionMethod, folder: Path) -> list[Path]:
    """The sorted image files of `folder`, checked up front: one stem per file, and the aspect ratio the
    method accepts (refused for projection; a warning naming those far from it for e4e and pSp)."""
    paths = list_images(folder)
    by_stem(paths)
    if getattr(method, "resizes_inputs", True):
        warn_stretched(paths, method.input_size)
    else:
        check_aspect(paths, method.input_size)
    return paths


def invert_with_noise(method: InversionMethod, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | str]:
    """Codes and the noise to decode them with: the method's own maps, or the generator's stored ones."""
    if hasattr(method, "invert_with_noise"):
        return method.invert_with_noise(images)
    return method.invert(images), "const"
