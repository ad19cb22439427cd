"""A run's settings and its preflight: every method, option, file and metric checked before any work,
with one error that lists each missing thing and how to get it."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e4e_bench.assets import fetch_command, get_asset, missing_assets
from e4e_bench.domains import Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import METHODS, MethodEntry, method_options
from e4e_bench.metrics import METRICS, MetricSpec
from e4e_bench.reporting.run_results import GRID_IMAGES

TOY_IMAGES = 64
# Settings a resumed run may change; `options` are compared per method, resolved, by its fingerprint
# (so that the order they were given in, or naming a default, makes no difference), the sweep's by its own.
UNCOMPARED = ("out", "batch_size", "label", "grid_images", "options", "sweep", "edit_strengths")


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers (`out` and `device` aside: where and on what it runs), and
    how it is reported (`label`, `grid_images`)."""

    methods: tuple[str, ...]
    domain: str
    out: Path
    data: Path | None = None  # None: the toy domain renders its test split
    n_images: int | None = None  # the first N images in file-name order (None: all; toy: 64)
    checkpoints: Mapping[str, Path] = field(default_factory=dict)  # method -> its checkpoint file
    generator: Path | None = None
    metrics: tuple[str, ...] | None = None  # None: every `run` metric whose weights are present
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # method -> the options the user gave
    random_weights: bool = False  # metric networks with random weights (smoke runs only)
    align: bool = False  # faces: FFHQ-align the photos of --data first (into OUT/aligned/)
    label: str | None = None  # the run's name in tables and plots (None: the run folder's name)
    grid_images: int = GRID_IMAGES  # rows of the qualitative grid
    sweep: bool = False  # also score every method along its dial and its edit at several strengths
    edit_strengths: tuple[float, ...] | None = None  # the sweep's edit strengths (None: the domain's)

    def recorded(self) -> dict[str, Any]:
        """The settings as config.json stores them; all but UNCOMPARED must match on resume."""
        data = dataclasses.asdict(self)
        data["methods"] = list(self.methods)
        data["metrics"] = None if self.metrics is None else list(self.metrics)
        return json.loads(json.dumps(data, default=str))


@dataclass
class Plan:
    """What a run will use, resolved and checked before any work."""

    domain: Domain
    metrics: dict[str, MetricSpec]  # run-level name -> the metric computed for it in this domain (available only)
    unavailable: dict[str, str]  # metric -> how to enable it
    files: dict[str, Path]  # role ("e4e checkpoint", "generator", ...) -> file

    def of_kind(self, *kinds: str) -> dict[str, MetricSpec]:
        return {name: spec for name, spec in self.metrics.items() if spec.kind in kinds}


def run_metric_names() -> list[str]:
    return [name for name, spec in METRICS.items() if spec.in_run]


def choose_metrics(requested: Sequence[str] | None, domain: Domain, random_weights: bool,
                   problems: list[str]) -> tuple[dict[str, MetricSpec], dict[str, str]]:
    """The metrics to compute (run-level name -> spec) and those left out with how to enable them.
    Unavailable metrics that were asked for by name are `problems`; by default they are left out."""
    explicit = requested is not None
    names = run_metric_names()
    chosen, unavailable = {}, {}
    for name in requested if explicit else names:
        if name not in names:
            problems.append(f"unknown metric {name!r} (choose from {', '.join(names)})")
            continue
        spec = METRICS[name].in_domain(domain)
        if spec is None:
            unavailable[name] = f"domain {domain.name} has no network for {name}"
            continue
        absent = [] if random_weights else missing_assets(spec.assets)
        if absent:
            unavailable[name] = fetch_command(absent)
            if explicit:
                problems.append(f"metric {name} needs {', '.join(absent)}: {fetch_command(absent)}")
            continue
        chosen[name] = spec
    if domain.default_edit is None and any(spec.on_edits or spec.kind == "method" for spec in chosen.values()):
        problems.append(f"domain {domain.name} has no default edit for LEC and the edited-image metrics")
    return chosen, unavailable


def plan_run(settings: RunSettings) -> Plan:
    """Check everything every method and metric needs; one error lists each missing thing and how to get it."""
    domain = get_domain(settings.domain)
    problems: list[str] = []
    files: dict[str, Path] = {}
    unknown = [name for name in (*settings.methods, *settings.checkpoints) if name not in METHODS]
    if unknown:
        problems.append(f"unknown method {', '.join(dict.fromkeys(unknown))} (choose from {', '.join(METHODS)})")
    if settings.data is not None and not settings.data.is_dir():
        problems.append(f"--data {settings.data} is not a folder of images")
    if settings.data is None and domain.name != "toy":
        problems.append(f"--data DIR: domain {domain.name} has no built-in images; pass a folder of its test images")
    for name in settings.methods:
        if name in METHODS:
            problems += check_method(METHODS[name], settings, domain, files)
    for name in settings.checkpoints:
        if name in METHODS and not METHODS[name].takes_checkpoint:
            takers = [m for m, entry in METHODS.items() if entry.takes_checkpoint]
            problems.append(f"--checkpoint {name}=...: {name} takes no checkpoint (those that do: {', '.join(takers)})")
    metrics, unavailable = choose_metrics(settings.metrics, domain, settings.random_weights, problems)
    if settings.align:
        from e4e_bench.faces.align import check_face_domain

        try:
            check_face_domain(domain)
        except E4EBenchError as err:
            problems.append(str(err))
    if problems:
        raise E4EBenchError("cannot start the run:\n  - " + "\n  - ".join(problems))
    return Plan(domain, metrics, unavailable, files)


def check_method(entry: MethodEntry, settings: RunSettings, domain: Domain, files: dict[str, Path]) -> list[str]:
    """What the method needs: valid options, its checkpoint (if it takes one), a generator, the options' files."""
    name = entry.name
    try:
        options = method_options(entry, domain, settings.options.get(name))
    except E4EBenchError as err:
        return [str(err)]
    problems = []
    if entry.takes_checkpoint:
        problems += _check_checkpoint(entry, settings, domain, files)
    if settings.generator is not None:
        files[f"{name} generator"] = Path(settings.generator)
        if not Path(settings.generator).is_file():
            problems.append(f"--generator {settings.generator}: no such file")
    elif entry.takes_checkpoint:
        pass  # its checkpoint brings the decoder
    elif domain.generator_asset is None:
        problems.append(f"domain {domain.name} has no registered generator; pass --generator PATH")
    else:
        files[f"{name} generator"] = get_asset(domain.generator_asset).path
        problems += [f"generator {asset}: {fetch_command([asset])}" for asset in missing_assets([domain.generator_asset])]
    required = getattr(options, "required_assets", lambda: ())
    # Options whose files depend on the domain (PTI's pivot encoder: its checkpoint) take it as `domain`.
    needed = required(domain=domain) if "domain" in inspect.signature(required).parameters else required()
    absent = [] if settings.random_weights else missing_assets(needed)
    if absent:
        problems.append(f"{name} needs {', '.join(absent)}: {fetch_command(absent)} (or change its options, "
                        f"`python -m e4e_bench invert --method {name} --help` lists them)")
    return problems


def _check_checkpoint(entry: MethodEntry, settings: RunSettings, domain: Domain, files: dict[str, Path]) -> list[str]:
    name = entry.name
    if name in settings.checkpoints:
        path = Path(settings.checkpoints[name])
        files[f"{name} checkpoint"] = path
        return [] if path.is_file() else [f"--checkpoint {name}={path}: no such file"]
    asset = entry.checkpoint_assets.get(domain.name)
    if asset is None:
        how = (f"train one with `python -m e4e_bench train --method {name} --domain {domain.name} --data TRAIN_DIR "
               f"--out runs/{name}_{domain.name}` and pass --checkpoint {name}=runs/{name}_{domain.name}/checkpoints/"
               "best_model.pt") if entry.trainer is not None else f"pass --checkpoint {name}=PATH"
        return [f"there is no released {name} for domain {domain.name}: {how}"]
    files[f"{name} checkpoint"] = get_asset(asset).path
    return [f"{name} checkpoint {asset}: {fetch_command([asset])}" for asset in missing_assets([asset])]
