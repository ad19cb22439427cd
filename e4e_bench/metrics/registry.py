"""The metric registry: a metric is a name, a kind, a protocol string and a factory.

Register a metric by decorating its factory::

    @register_metric("l2", kind="paired", protocol="MSE of [-1,1] RGB images, per image")
    def build_l2(context: MetricContext) -> PairedMetric: ...

The factory receives a ``MetricContext`` (device, domain, weights policy, seed, cache) and any
metric-specific keyword options, and returns the object that does the work; its calling
convention is fixed by the kind:

- ``paired``: ``metric(real, fake) -> Tensor[B]``, one value per image pair; real and fake are
  ``[B,3,H,W]`` in [-1,1] on ``context.device``; NaN marks an image the metric could not score.
  It may also offer ``summary_details() -> dict``, merged into its details after the last batch.
- ``set``: ``metric.add(side, images)`` with side ``"real"`` or ``"fake"``, ``metric.wants(side)``
  (False when cached statistics make that side unnecessary), ``metric.result() -> MetricResult``.
- ``latent``: works on codes rather than images (``[N, n_latent, style_dim]``).
- ``method``: needs an ``InversionMethod`` (re-encoding, as LEC does).

The protocol string is reported next to every number, so it must name everything that changes
the value (network, weights, sizes, ranges, counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from e4e_bench.assets import asset_path
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError

KINDS = ("paired", "set", "latent", "method")
IMAGE_KINDS = ("paired", "set")  # the kinds that compare two image folders
SIDES = ("real", "fake")  # what a set metric's `add(side, images)` accepts
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class MetricContext:
    device: torch.device = torch.device("cpu")
    domain: Domain | None = None  # None: images are compared at their own size
    pretrained: bool = True  # False: real network classes with random weights (tests, --random-weights)
    seed: int = 0
    cache_dir: Path | None = None  # where set metrics keep reference statistics; None: no cache
    real_fingerprint: str | None = None  # content hash of the real set at its loaded size (cache key)
    weights: Mapping[str, Path] = field(default_factory=dict)  # asset name -> local file, beats the registry

    def weights_file(self, asset: str) -> Path:
        """A metric network's weights: the file given for ``asset``, else the assets registry's copy."""
        return Path(self.weights[asset]) if asset in self.weights else asset_path(asset)


@dataclass(frozen=True)
class MetricResult:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    protocol: str
    factory: Callable[..., Any]
    higher_is_better: bool

    def build(self, context: MetricContext, **options: Any) -> Any:
        return self.factory(context, **options)


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, *, kind: str, protocol: str, higher_is_better: bool = False):
    """Decorator registering a metric factory under ``name``; malformed or duplicate names raise."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"metric name {name!r} must match {NAME_PATTERN.pattern}")
    if kind not in KINDS:
        raise ValueError(f"metric {name!r}: kind {kind!r} is not one of {KINDS}")
    if not protocol.strip():
        raise ValueError(f"metric {name!r} needs a protocol string")
    if name in METRICS:
        raise ValueError(f"metric {name!r} is registered twice")

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        METRICS[name] = MetricSpec(name, kind, protocol, factory, higher_is_better)
        return factory

    return decorate


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise E4EBenchError(f"unknown metric {name!r}; choose from: {', '.join(sorted(METRICS))}") from None


def parse_metric_list(text: str, kinds: tuple[str, ...] = KINDS) -> list[MetricSpec]:
    """``"l2,lpips,fid"`` -> specs in the given order; unknown names or kinds not in ``kinds`` raise."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise E4EBenchError("no metric named; pass e.g. --metrics l2,lpips,msssim")
    if len(set(names)) != len(names):
        raise E4EBenchError(f"a metric is named twice in {text!r}")
    specs = [get_metric(name) for name in names]
    for spec in specs:
        if spec.kind not in kinds:
            usable = sorted(name for name, other in METRICS.items() if other.kind in kinds)
            raise E4EBenchError(
                f"metric {spec.name!r} ({spec.kind}) cannot be computed here; choose from: {', '.join(usable)}"
            )
    return specs
