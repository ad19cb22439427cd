"""The metric registry: a metric is a name, a kind, a protocol string and a factory.

Register a metric by decorating its factory::

    @register_metric("l2", kind="paired", protocol="MSE of [-1,1] RGB images, per image")
    def build_l2(context: MetricContext) -> PairedMetric: ...

The factory receives a ``MetricContext`` (device, domain, weights policy, seed, cache) and any
metric-specific keyword options, and returns the object that does the work; what it is called
with is fixed by the kind, one ``Protocol`` each below: ``PairedMetric``, ``SetMetric``,
``LatentMetric`` and ``MethodMetric``. ``evaluate.Evaluation`` drives all four.

The protocol string is reported next to every number, so it must name everything that changes
the value (network, weights, sizes, ranges, counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import torch

from e4e_bench.assets import asset_path, missing_assets
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.registry import Registry

if TYPE_CHECKING:
    from e4e_bench.networks.generator import Generator
    from e4e_bench.methods import Inversion, InversionMethod

KINDS = ("paired", "set", "latent", "method")
IMAGE_KINDS = ("paired", "set")  # the kinds that compare two image folders
SIDES = ("real", "fake")  # what a set metric's `add(side, images)` accepts


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

    def missing_weights(self, spec: MetricSpec) -> list[str]:
        """The assets `spec`'s networks need that are neither given here nor cached (none for random weights)."""
        if not self.pretrained:
            return []
        return [asset for asset in missing_assets(spec.assets) if asset not in self.weights]


@dataclass(frozen=True)
class MetricResult:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


class PairedMetric(Protocol):
    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One value per image pair `[B]`; `real`, `fake` `[B, 3, H, W]` in [-1, 1] on the context's
        device. NaN marks a pair the metric could not score (counted, never dropped). A paired metric
        may also offer `summary_details() -> dict`, merged into its details after the last batch."""
        ...


class SetMetric(Protocol):
    def wants(self, side: str) -> bool:
        """False when `side` ("real" or "fake") is not needed, e.g. real statistics are cached."""
        ...

    def add(self, side: str, images: torch.Tensor) -> None:
        """Take a batch `[B, 3, H, W]` in [-1, 1] of one side."""
        ...

    def result(self) -> MetricResult: ...


class LatentMetric(Protocol):
    def __call__(self, codes: torch.Tensor, generator: Generator) -> torch.Tensor:
        """One value per image `[N]` from W+ codes `[N, n_latent, style_dim]` of `generator`."""
        ...


class MethodMetric(Protocol):
    """A value needing the method itself (re-encoding, as LEC), computed from the caller's own
    inversion rather than a new one, batch by batch while each batch's decoder state is in memory."""

    def per_image(self, method: InversionMethod, inversion: Inversion) -> torch.Tensor:
        """One value per image `[B]` of a batch of the method's inversion."""
        ...

    def result(self, per_image: torch.Tensor) -> MetricResult:
        """The metric over every batch's values, in file order; the values it scored go in
        `details["per_image"]`, their count in `details["n_images"]`."""
        ...


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    protocol: str
    factory: Callable[..., Any]
    higher_is_better: bool
    assets: tuple[str, ...] = ()  # pretrained files the metric's network needs (none under random weights)
    title: str = ""  # the column title in tables (default: the name)
    unit: str = ""  # what one value is, for axes: "MSE of [-1, 1] RGB", "cosine similarity", ...
    in_run: bool = False  # `run` scores it unless `--metrics` says otherwise (latent metrics: always)
    # set metrics: `run` also scores the edited reconstructions (column `<name>_edit`); method metrics: it
    # measures the run's edit (LEC), built with `factor=` to measure it at another strength
    on_edits: bool = False
    stands_for: Callable[[Domain], str | None] | None = None  # in `run`: the metric this name is in a domain
    # paired metrics: `run` also scores each step of a method that refines step by step (column `<name>_step<t>`)
    per_step: bool = False

    def build(self, context: MetricContext, **options: Any) -> Any:
        return self.factory(context, **options)

    @property
    def heading(self) -> str:
        return self.title or self.name

    def in_domain(self, domain: Domain) -> "MetricSpec | None":
        """What `run` computes for this name in `domain` (None: nothing there, e.g. no identity network)."""
        if self.stands_for is None:
            return self
        target = self.stands_for(domain)
        return None if target is None else get_metric(target)


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(name: str, *, kind: str, protocol: str, higher_is_better: bool = False,
                    assets: tuple[str, ...] = (), title: str = "", unit: str = "", in_run: bool = False,
                    on_edits: bool = False,
                    stands_for: Callable[[Domain], str | None] | None = None, per_step: bool = False):
    """Decorator registering a metric factory under ``name``; malformed or duplicate names raise."""
    METRICS.check_new_name(name)
    if kind not in KINDS:
        raise ValueError(f"metric {name!r}: kind {kind!r} is not one of {KINDS}")
    if not protocol.strip():
        raise ValueError(f"metric {name!r} needs a protocol string")
    if on_edits and kind not in ("set", "method"):
        raise ValueError(f"metric {name!r}: only set and method metrics are scored on edits")
    if per_step and kind != "paired":
        raise ValueError(f"metric {name!r}: only paired metrics are scored on each refinement step")

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        METRICS.register(name, MetricSpec(name, kind, protocol, factory, higher_is_better, assets, title, unit, in_run,
                                          on_edits, stands_for, per_step))
        return factory

    return decorate


def get_metric(name: str) -> MetricSpec:
    return METRICS.lookup(name)


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
