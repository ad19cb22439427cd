"""The benchmark: every method inverts one image set, one metrics pipeline scores them all.

A run directory (see `report.py` for its layout) is written stage by stage: the inputs, then per
method its inversion (kept batch by batch), its edited reconstructions and its scores
(`methods/<method>/result.json`), then the summary, tables and plots. `resume=True` reuses what
is finished; what was produced under other settings is refused, never mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from e4e_bench import __version__
from e4e_bench.assets import get_asset
from e4e_bench.data import from_uint8, list_images, save_images
from e4e_bench.distributed import start_process_group
from e4e_bench.domains import Domain, get_domain
from e4e_bench.editing.directions import parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.pipeline.fingerprint import check_fingerprint, file_identity, method_fingerprint
from e4e_bench.pipeline.inversion import Inverted, invert_folder, write_inversion
from e4e_bench.io import write_text
from e4e_bench.latents import read_noise
from e4e_bench.methods import METHODS, InversionMethod, build_method
from e4e_bench.metrics import get_metric
from e4e_bench.metrics.evaluate import Evaluation, EvaluationSummary, evaluate_folders
from e4e_bench.metrics.registry import MetricContext, MetricSpec
from e4e_bench.reporting.report import build_report, method_dir
from e4e_bench.metrics.lec import PROTOCOL_BATCH_SIZE
from e4e_bench.reporting.results_files import json_safe, write_per_image_csv
from e4e_bench.reporting.run_results import CONFIG_FILE, GRID_IMAGES, PER_IMAGE_FILE, MethodResult, MetricInfo, RunSummary, Value, recorded_path, value_from_json

log = logging.getLogger(__name__)

RUN_METRICS = ("l2", "lpips", "msssim", "id", "fid", "swd", "lec")  # what `--metrics` may name
SET_METRICS = ("fid", "swd")  # scored on the reconstructions and again on the edited images
LATENT_METRICS = ("layer_spread", "w_mahalanobis")  # always: they need only the codes
ENCODERS = ("e4e", "psp")
RESULT_FILE = "result.json"
AFRESH = "rerun without --resume, or choose another --out"
TIMING_PROTOCOL = "synchronised wall time of the inversion per image, {batch} images per batch, on {device}; " \
                  "the first batch left out as warm-up"


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers (`out` and `device` aside: where and on what it runs), and
    how it is reported (`label`, `grid_images`)."""

    methods: tuple[str, ...]
    domain: str
    out: Path
    data: Path | None = None  # None: the toy domain renders its test split
    n_images: int | None = None  # the first N images in file-name order (None: all; toy: 64)
    checkpoints: Mapping[str, Path] = field(default_factory=dict)  # method -> e4e/pSp file
    generator: Path | None = None
    metrics: tuple[str, ...] | None = None  # None: every metric whose weights are present
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0
    projector: Mapping[str, Any] = field(default_factory=dict)  # opt_w / opt_wplus options
    random_weights: bool = False  # metric networks with random weights (smoke runs only)
    align: bool = False  # faces: FFHQ-align the photos of --data first (into OUT/aligned/)
    label: str | None = None  # the run's name in tables and plots (None: the run folder's name)
    grid_images: int = GRID_IMAGES  # rows of the qualitative grid

    def recorded(self) -> dict[str, Any]:
        """The settings as config.json stores them; all but UNCOMPARED must match on resume."""
        data = dataclasses.asdict(self)
        data["methods"] = list(self.methods)
        data["metrics"] = None if self.metrics is None else list(self.metrics)
        return json.loads(json.dumps(data, default=str))


TOY_IMAGES = 64
UNCOMPARED = ("out", "batch_size", "label", "grid_images")  # settings a resumed run may change


@dataclass
class Plan:
    """What a run will use, resolved and checked before any work."""

    domain: Domain
    metrics: list[str]  # run-level names (RUN_METRICS), available ones only
    unavailable: dict[str, str]  # metric -> how to enable it
    files: dict[str, Path]  # role ("e4e checkpoint", "generator", ...) -> file


def metric_spec(name: str, domain: Domain) -> MetricSpec | None:
    """The registered metric behind a run-level name (`id` is the domain's identity metric; None: the domain has none)."""
    if name == "id":
        return None if domain.identity_metric is None else get_metric(domain.identity_metric)
    return get_metric(name)


def missing_assets(spec: MetricSpec, random_weights: bool) -> list[str]:
    if random_weights:
        return []
    return [asset for asset in spec.assets if not get_asset(asset).path.is_file()]


def fetch_command(assets: Sequence[str]) -> str:
    return f"python -m e4e_bench assets fetch {' '.join(assets)}"


def plan_run(settings: RunSettings) -> Plan:
    """Check everything every method and metric needs; one error lists each missing thing and how to get it."""
    domain = get_domain(settings.domain)
    problems: list[str] = []
    files: dict[str, Path] = {}
    unknown = [name for name in settings.methods if name not in METHODS]
    if unknown:
        problems.append(f"unknown method {', '.join(unknown)} (choose from {', '.join(METHODS)})")
    for name in settings.checkpoints:
        if name not in ENCODERS:
            problems.append(f"--checkpoint {name}=...: only {' and '.join(ENCODERS)} take a checkpoint")
    if settings.data is not None and not settings.data.is_dir():
        problems.append(f"--data {settings.data} is not a folder of images")
    if settings.data is None and domain.name != "toy":
        problems.append(f"--data DIR: domain {domain.name} has no built-in images; pass a folder of its test images")
    for name in settings.methods:
        if name in ENCODERS:
            problems += _check_encoder(name, settings, domain, files)
        elif name in METHODS:
            problems += _check_generator(f"{name} generator", settings, domain, files)
            if projector_options(settings, domain).get("lpips_weight", 1.0) > 0:  # 1.0: the projectors' default
                if not settings.random_weights and not get_asset("lpips-vgg").path.is_file():
                    problems.append(f"{name} needs LPIPS-VGG: {fetch_command(['lpips-vgg'])} "
                                    "(or --lpips-weight 0 --mse-weight 1 for a pixel loss)")
    explicit = settings.metrics is not None
    requested = settings.metrics if explicit else RUN_METRICS
    metrics, unavailable = [], {}
    for name in requested:
        if name not in RUN_METRICS:
            problems.append(f"unknown metric {name!r} (choose from {', '.join(RUN_METRICS)})")
            continue
        spec = metric_spec(name, domain)
        if spec is None:
            unavailable[name] = f"domain {domain.name} has no identity network"
            continue
        absent = missing_assets(spec, settings.random_weights)
        if absent:
            unavailable[name] = fetch_command(absent)
            if explicit:
                problems.append(f"metric {name} needs {', '.join(absent)}: {fetch_command(absent)}")
            continue
        metrics.append(name)
    if domain.default_edit is None and any(m in metrics for m in ("lec", *SET_METRICS)):
        problems.append(f"domain {domain.name} has no default edit for LEC and the edited-image FID/SWD")
    if settings.align:
        from e4e_bench.faces.align import check_face_domain

        try:
            check_face_domain(domain)
        except E4EBenchError as err:
            problems.append(str(err))
    if problems:
        raise E4EBenchError("cannot start the run:\n  - " + "\n  - ".join(problems))
    return Plan(domain, metrics, unavailable, files)


def projector_options(settings: RunSettings, domain: Domain) -> dict[str, Any]:
    """opt_w / opt_wplus options: the domain's own settings, overridden by the run's flags."""
    return dict(domain.projector_defaults) | dict(settings.projector)


def _check_encoder(name: str, settings: RunSettings, domain: Domain, files: dict[str, Path]) -> list[str]:
    if name in settings.checkpoints:
        path = Path(settings.checkpoints[name])
        problems = [] if path.is_file() else [f"--checkpoint {name}={path}: no such file"]
    else:
        asset = domain.encoder_checkpoint_asset(name)
        if asset is None:
            return [f"there is no released {name} for domain {domain.name}: train one with `python -m e4e_bench train "
                    f"--method {name} --domain {domain.name} --data TRAIN_DIR --out runs/{name}_{domain.name}` and pass "
                    f"--checkpoint {name}=runs/{name}_{domain.name}/checkpoints/best_model.pt"]
        path = get_asset(asset).path
        problems = [] if path.is_file() else [f"{name} checkpoint {asset}: {fetch_command([asset])}"]
    files[f"{name} checkpoint"] = path
    if settings.generator is not None:
        problems += _check_generator(f"{name} generator", settings, domain, files)
    return problems


def _check_generator(role: str, settings: RunSettings, domain: Domain, files: dict[str, Path]) -> list[str]:
    if settings.generator is not None:
        files[role] = Path(settings.generator)
        return [] if Path(settings.generator).is_file() else [f"--generator {settings.generator}: no such file"]
    if domain.generator_asset is None:
        return [f"domain {domain.name} has no registered generator; pass --generator PATH"]
    files[role] = get_asset(domain.generator_asset).path
    return [] if files[role].is_file() else [f"generator {domain.generator_asset}: {fetch_command([domain.generator_asset])}"]


def prepare_inputs(settings: RunSettings, domain: Domain, out: Path) -> Path:
    """The folder of images to invert: the toy test split rendered, the first N of --data copied, or --data itself."""
    if settings.data is None:
        from e4e_bench.toy.render import toy_photos

        inputs = out / "inputs"
        count = settings.n_images or TOY_IMAGES
        if len(list(inputs.glob("*.png"))) != count:
            pixels = toy_photos(count, domain.resolution, seed=0, split="test")
            save_images(from_uint8(pixels), [inputs / f"{i:05d}.png" for i in range(count)])
        return inputs
    data = settings.data
    if settings.align:
        from e4e_bench.faces.align import aligned_folder

        data = aligned_folder(settings.data, out / "aligned", domain)
    if settings.n_images is None:
        return data
    inputs = out / "inputs"
    for path in list_images(data)[: settings.n_images]:
        if not (inputs / path.name).is_file():
            inputs.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, inputs / path.name)
    return inputs


def check_run_dir(settings: RunSettings, out: Path, resume: bool) -> None:
    """A run directory holds one run: continuing it needs --resume and the same settings."""
    config = out / CONFIG_FILE
    if not config.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise E4EBenchError(f"{out} is not empty and holds no run; choose another --out")
        return
    if not resume:
        raise E4EBenchError(f"{out} holds an earlier run; pass --resume to continue it, or choose another --out")
    stored = {k: str(v) for k, v in json.loads(config.read_text())["settings"].items() if k not in UNCOMPARED}
    current = {k: str(v) for k, v in settings.recorded().items() if k not in UNCOMPARED}
    check_fingerprint(stored, current, out, AFRESH)


def environment(device: torch.device) -> dict[str, str]:
    import numpy

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"e4e_bench": __version__, "git_commit": commit, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "device": f"{device} ({name})"}


@dataclass
class MethodScores:
    """One method's finished stage: its values, the metrics' descriptions and per-image rows."""

    values: dict[str, Value]
    info: dict[str, MetricInfo]
    per_image: dict[str, dict[str, float]]

    def to_json(self) -> dict:
        return json_safe({"values": {k: dataclasses.asdict(v) for k, v in self.values.items()},
                          "info": {k: dataclasses.asdict(v) for k, v in self.info.items()},
                          "per_image": self.per_image})

    @classmethod
    def from_json(cls, data: dict) -> "MethodScores":
        return cls({k: value_from_json(v) for k, v in data["values"].items()},
                   {k: MetricInfo(**v) for k, v in data["info"].items()},
                   {image: {k: math.nan if v is None else v for k, v in row.items()} for image, row in data["per_image"].items()})


class Benchmark:
    """One run: `Benchmark(settings, resume).run()` writes the run directory and returns its summary.

    Under torchrun the ranks share each method's inversion batch by batch; rank 0 gathers the
    kept batches, scores them and alone writes the results (the other ranks return None).
    """

    def __init__(self, settings: RunSettings, resume: bool = False):
        self.settings = settings
        self.resume = resume
        self.plan = plan_run(settings)
        self.domain = self.plan.domain
        self.out = Path(settings.out)
        check_run_dir(settings, self.out, resume)
        self.group = start_process_group(settings.device)
        self.device = self.group.device
        self.environment = environment(self.device)
        self.context = MetricContext(device=self.device, domain=self.domain, pretrained=not settings.random_weights,
                                     seed=settings.seed)

    def run(self) -> RunSummary | None:
        try:
            return self._run()
        finally:
            self.group.close()

    def _run(self) -> RunSummary | None:
        main = self.group.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.inputs = prepare_inputs(self.settings, self.domain, self.out)
            self._write_config()
        self.inputs = self.group.all_gather_object(self.inputs if main else None)[0]  # rank 0's folder
        summary = RunSummary(domain=self.domain.name, label=self.settings.label or self.out.resolve().name)
        per_image: dict[tuple[str, str], dict[str, float]] = {}
        for name in self.settings.methods:
            try:
                scores = self._method(name)
            except E4EBenchError as err:
                log.error("%s failed: %s", name, err)
                summary.methods[name] = MethodResult(status="failed", reason=str(err))
                scores = None
            self.group.barrier()
            if scores is not None:
                summary.methods[name] = MethodResult(values=scores.values)
                summary.metrics.update(scores.info)
                per_image.update({(name, image): row for image, row in scores.per_image.items()})
        if not main:
            return None
        summary.save(self.out)
        write_per_image_csv(self.out / PER_IMAGE_FILE, per_image, first_columns=("method", "image"))
        build_report([self.out], self.out, self.settings.grid_images)
        return summary

    def _write_config(self) -> None:
        config = {
            "settings": self.settings.recorded(),
            "data": recorded_path(self.inputs, self.out),
            "domain": dataclasses.asdict(self.domain),
            "metrics": self.plan.metrics,
            "unavailable_metrics": self.plan.unavailable,
            "edit": {"spec": self.domain.default_edit, "name": self.domain.default_edit_name,
                     "factor": self.domain.default_edit_factor},
            "files": {role: {"path": str(path), "identity": file_identity(path)} for role, path in self.plan.files.items()},
            "environment": self.environment,
        }
        write_text(self.out / CONFIG_FILE, json.dumps(json_safe(config), indent=2, default=str) + "\n")

    def _method_options(self, name: str) -> dict[str, Any]:
        if name in ENCODERS:
            return {}
        return projector_options(self.settings, self.domain)

    def _method(self, name: str) -> MethodScores | None:
        folder = method_dir(self.out, name)
        method = build_method(
            name, domain=self.domain, checkpoint=self.settings.checkpoints.get(name), generator=self.settings.generator,
            device=self.device, options=self._method_options(name), seed=self.settings.seed,
        )
        fingerprint = method_fingerprint(method, self.domain) | {"metrics": ",".join(self.plan.metrics)}
        done = folder / RESULT_FILE
        if self.resume and done.is_file():
            stored = json.loads(done.read_text())
            check_fingerprint(stored["fingerprint"], fingerprint, done, AFRESH)
            log.info("%s: finished in an earlier session, kept", name)
            return MethodScores.from_json(stored["scores"])
        if self.group.distributed and not self._share_inversion(method, folder):
            return None
        inverted = invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size,
                                 self.resume or self.group.distributed, progress=self.group.progress)
        write_inversion(inverted, folder)
        edited = self._edit(method, inverted, folder)
        scores = self._score(method, inverted, folder, edited)
        write_text(done, json.dumps({"fingerprint": fingerprint, "scores": scores.to_json()}, indent=2) + "\n")
        return scores

    def _share_inversion(self, method: InversionMethod, folder: Path) -> bool:
        """Every rank inverts its share of the batches into kept parts; True on rank 0, which gathers them."""
        try:
            invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size, resume=True,
                          progress=self.group.progress, shard=(self.group.rank, self.group.world_size))
            error = None
        except E4EBenchError as err:
            error = str(err)
        errors = [e for e in self.group.all_gather_object(error) if e is not None]
        if errors:
            raise E4EBenchError(errors[0])
        return self.group.is_main

    def _noise(self, folder: Path, names: list[str], generator) -> list[torch.Tensor] | str:
        """A projection's optimised noise maps for `names`; the generator's stored noise for the encoders."""
        if not (folder / "noise").is_dir():
            return "const"
        return [maps.to(self.device) for maps in read_noise(folder / "noise", names, generator)]

    def _edit(self, method: InversionMethod, inverted: Inverted, folder: Path) -> Path | None:
        """The edited reconstructions `edits/<stem>.png`: the domain's edit added at its factor, same noise."""
        if self.domain.default_edit is None:
            return None
        direction = parse_direction(self.domain.default_edit, method.generator)
        edits = folder / "edits"
        batch = self.settings.batch_size
        with torch.inference_mode():
            for start in range(0, len(inverted.names), batch):
                names = inverted.names[start : start + batch]
                codes = direction.add(inverted.codes[start : start + batch].to(self.device), self.domain.default_edit_factor)
                frames = method.generator(codes, noise=self._noise(folder, names, method.generator))
                save_images(self.domain.crop(frames), [edits / f"{name}.png" for name in names])
        return edits

    def _score(self, method: InversionMethod, inverted: Inverted, folder: Path, edits: Path | None) -> MethodScores:
        specs = {name: metric_spec(name, self.domain) for name in self.plan.metrics}
        image_specs = [spec for name, spec in specs.items() if spec.kind in ("paired", "set")]
        values: dict[str, Value] = {}
        info: dict[str, MetricInfo] = {}
        per_image: dict[str, dict[str, float]] = {name: {} for name in inverted.names}

        def take(summary: EvaluationSummary, suffix: str = "", note: str = "") -> None:
            for registered, metric in summary.metrics.items():
                key = _run_name(registered, self.domain) + suffix
                details = metric.details
                values[key] = Value(metric.value, details.get("std", math.nan), details.get("n", details.get("n_images", 0)),
                                    details.get("n_failed", 0), details.get("reference", math.nan))
                info[key] = MetricInfo(metric.higher_is_better, metric.protocol + note)

        if image_specs:
            summary, rows, _ = evaluate_folders(image_specs, self.inputs, folder / "images", self.context,
                                                batch_size=self.settings.batch_size)
            take(summary)
            for file_name, row in rows.items():
                per_image[Path(file_name).stem].update({_run_name(k, self.domain): v for k, v in row.items()})
        edit_specs = [spec for name, spec in specs.items() if name in SET_METRICS]
        if edit_specs and edits is not None:
            summary, _, _ = evaluate_folders(edit_specs, self.inputs, edits, self.context, batch_size=self.settings.batch_size)
            take(summary, "_edit", f"; fake set: the reconstructions edited by {self._edit_words()}")

        evaluation = Evaluation([get_metric(name) for name in LATENT_METRICS], self.context)
        evaluation.add_codes(inverted.names, inverted.codes, method.generator)
        take(evaluation.summary())
        for image, row in evaluation.per_image_table().items():
            per_image[image].update(row)
        if "lec" in specs:
            values["lec"], info["lec"], lec_rows = self._lec(method, inverted)
            for image, value in lec_rows.items():
                per_image[image]["lec"] = value

        values["seconds_per_image"] = Value(inverted.seconds_per_image(), n=len(inverted.names))
        info["seconds_per_image"] = MetricInfo(False, TIMING_PROTOCOL.format(batch=self.settings.batch_size,
                                                                             device=self.environment["device"]))
        return MethodScores(values, info, per_image)

    def _edit_words(self) -> str:
        d = self.domain
        return f"{d.default_edit_name} ({d.default_edit}) x {d.default_edit_factor:g}, added to the codes"

    def _lec(self, method: InversionMethod, inverted: Inverted) -> tuple[Value, MetricInfo, dict[str, float]]:
        spec = get_metric("lec")
        metric = spec.build(self.context, direction=self.domain.default_edit, factor=self.domain.default_edit_factor,
                            batch_size=PROTOCOL_BATCH_SIZE)
        try:
            result = metric.evaluate(method, inverted.codes)
        except E4EBenchError as err:
            log.warning("%s: LEC not computed (%s)", method.name, err)
            return Value(math.nan), MetricInfo(False, f"LEC not computed: {err}"), {}
        per_image = result.per_image
        value = Value(result.lec, float(per_image.std(unbiased=False)), len(per_image))
        rows = dict(zip(inverted.names, per_image.tolist()))
        return value, MetricInfo(spec.higher_is_better, f"{result.protocol}; edit {self.domain.default_edit_name}"), rows


def _run_name(registered: str, domain: Domain) -> str:
    """The run's name for a registered metric: the domain's identity metric is `id`."""
    return "id" if registered == domain.identity_metric else registered
