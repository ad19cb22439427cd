"""Building a registered method from plain values, and what it is built for: the domain and the images."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from e4e_bench.checkpoints import load_file
from e4e_bench.data import by_stem, check_aspect, list_images, warn_stretched
from e4e_bench.domains import DOMAINS, Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods.contract import InversionMethod, MethodEntry
from e4e_bench.methods.options import make_options
from e4e_bench.methods.registry import METHODS, resolve


def method_options(entry: MethodEntry, domain: Domain, given: Mapping[str, Any] | None = None) -> Any:
    """The options instance `entry`'s method gets for `domain`: its domain defaults, then `given`."""
    return make_options(entry.name, resolve(entry.options), entry.options_for(domain.name), given or {})


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
    own, over its defaults for the domain (unknown ones are refused); `random_weights` builds the
    domain's official architecture with weights drawn from `seed` and reads no file unless
    `generator` is given.
    """
    entry = METHODS.lookup(name)
    if checkpoint is not None and not entry.takes_checkpoint:
        raise E4EBenchError(f"{name} takes no --checkpoint (it needs only a generator: --generator PATH)")
    method = resolve(entry.factory)(domain=domain, checkpoint=checkpoint, generator=generator, device=device,
                                    options=method_options(entry, domain, options), random_weights=random_weights,
                                    seed=seed)
    if method.generator.size != domain.resolution:
        raise E4EBenchError(
            f"the {name} generator makes {method.generator.size} px images but domain {domain.name!r} "
            f"needs {domain.resolution} px; pass the generator of that domain or the right --domain"
        )
    return method


DATASET_DOMAINS = {"ffhq": "faces", "celeba": "faces", "car": "cars", "horse": "horse", "church": "church", "toy": "toy"}


def resolve_domain(name: str | None, checkpoint: Path | None = None) -> Domain:
    """The domain named, else the one an official-format checkpoint was trained on (its opts['dataset_type'])."""
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
    method accepts (refused for a method that does not resize, a warning naming those far from it otherwise)."""
    paths = list_images(folder)
    by_stem(paths)
    if getattr(method, "resizes_inputs", True):
        warn_stretched(paths, method.input_size)
    else:
        check_aspect(paths, method.input_size)
    return paths
