"""The runner: every method inverts one image set, one metrics pipeline scores them all.

A run directory (see `reporting/report.py` for its layout) is written stage by stage: the inputs,
then per method its inversion (kept batch by batch), its edited reconstructions and its scores
(`methods/<method>/result.json`), then the summary, tables and plots. `resume=True` reuses what
is finished; what was produced under other settings is refused, never mixed in. The preflight
(`plan.plan_run`) has checked every method, option, file and metric before any of this starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
import logging
import math
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from e4e_bench import __version__
from e4e_bench.data import from_uint8, list_images, readable_images, save_images
from e4e_bench.distributed import start_process_group
from e4e_bench.domains import Domain
from e4e_bench.editing.directions import parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, InversionMethod, build_method
from e4e_bench.methods.contract import TRAJECTORY
from e4e_bench.metrics import METRICS
from e4e_bench.metrics.evaluate import Evaluation, EvaluationSummary, MetricSummary, evaluate_folders
from e4e_bench.metrics.registry import MethodMetric, MetricContext, MetricSpec
from e4e_bench.pipeline.fingerprint import check_fingerprint, file_identity, method_fingerprint
from e4e_bench.pipeline.inversion import MIN_TIMED_BATCHES, Inverted, invert_folder, write_inversion
from e4e_bench.pipeline.plan import TOY_IMAGES, UNCOMPARED, RunSettings, plan_run
from e4e_bench.io import write_text
from e4e_bench.reporting.report import build_report, method_dir
from e4e_bench.reporting.results_files import json_safe, write_per_image_csv
from e4e_bench.reporting.run_results import CONFIG_FILE, PER_IMAGE_FILE, MethodResult, MetricInfo, RunSummary, Value, recorded_path, value_from_json

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
STEPS_DIR = "steps"  # a method's reconstruction after each refinement step, `steps/<t>/<stem>.png`
AFRESH = "rerun without --resume, or choose another --out"
TIMING_PROTOCOL = ("synchronised wall time of the inversion per image, {batch} images per batch, on {device}: "
                   "median ± median absolute deviation over the {timed} timed batches, the first batch left out as "
                   "warm-up")
TOO_FEW_BATCHES = ("not timed: {timed} batch(es) after the warm-up batch, {needed} needed for a median and its spread; "
                   "use more images or a smaller --batch-size")


def prepare_inputs(settings: RunSettings, domain: Domain, out: Path) -> tuple[Path, dict[str, str]]:
    """The folder of images to invert: the toy test split rendered, the (first N) readable images of --data copied,
    or --data itself; and file name -> reason for the unreadable images left out."""
    if settings.data is None:
        from e4e_bench.toy.render import toy_photos

        inputs = out / "inputs"
        count = settings.n_images or TOY_IMAGES
        if len(list(inputs.glob("*.png"))) != count:
            pixels = toy_photos(count, domain.resolution, seed=0, split="test")
            save_images(from_uint8(pixels), [inputs / f"{i:05d}.png" for i in range(count)])
        return inputs, {}
    data = settings.data
    if settings.align:
        from e4e_bench.faces.align import aligned_folder

        data = aligned_folder(settings.data, out / "aligned", domain)
    paths, unreadable = readable_images(list_images(data)[: settings.n_images])
    if settings.n_images is None and not unreadable:
        return data, unreadable
    inputs = out / "inputs"
    for path in paths:
        if not (inputs / path.name).is_file():
            inputs.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, inputs / path.name)
    return inputs, unreadable


def check_run_dir(settings: RunSettings, out: Path, resume: bool) -> None:
    """A run directory holds one run: continuing it needs --resume and the same settings."""
    config = out / CONFIG_FILE
    if not config.is_file():
        if resume and out.is_dir() and any(out.iterdir()):
            raise E4EBenchError(f"{out} holds no run to resume (no {CONFIG_FILE}); choose another --out")
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
            self.inputs, self.unreadable = prepare_inputs(self.settings, self.domain, self.out)
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
            "unreadable_images": self.unreadable,  # left out of the run
            "domain": dataclasses.asdict(self.domain),
            "metrics": list(self.plan.metrics),
            "unavailable_metrics": self.plan.unavailable,
            "edit": {"spec": self.domain.default_edit, "name": self.domain.default_edit_name,
                     "factor": self.domain.default_edit_factor},
            "files": {role: {"path": str(path), "identity": file_identity(path)} for role, path in self.plan.files.items()},
            "environment": self.environment,
        }
        write_text(self.out / CONFIG_FILE, json.dumps(json_safe(config), indent=2, default=str) + "\n")

    def _method(self, name: str) -> MethodScores | None:
        folder = method_dir(self.out, name)
        method = build_method(
            name, domain=self.domain, checkpoint=self.settings.checkpoints.get(name), generator=self.settings.generator,
            device=self.device, options=self.settings.options.get(name), seed=self.settings.seed,
        )
        fingerprint = method_fingerprint(method, self.domain) | {"metrics": ",".join(self.plan.metrics)}
        done = folder / RESULT_FILE
        if self.resume and done.is_file():
            stored = json.loads(done.read_text())
            check_fingerprint(stored["fingerprint"], fingerprint, done, AFRESH)
            log.info("%s: finished in an earlier session, kept", name)
            return MethodScores.from_json(stored["scores"])
        work = BatchWork(method, self.domain, folder / "edits", folder / STEPS_DIR,
                         {name: spec.build(self.context) for name, spec in self.plan.of_kind("method").items()})
        if self.group.distributed and not self._share_inversion(method, folder, work):
            return None
        inverted = invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size,
                                 self.resume or self.group.distributed, progress=self.group.progress, on_batch=work)
        write_inversion(inverted, method, self.domain, folder)
        scores = self._score(method, inverted, folder, work)
        write_text(done, json.dumps({"fingerprint": fingerprint, "scores": scores.to_json()}, indent=2) + "\n")
        return scores

    def _share_inversion(self, method: InversionMethod, folder: Path, work: "BatchWork") -> bool:
        """Every rank inverts its share of the batches into kept parts; True on rank 0, which gathers them."""
        try:
            invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size, resume=True,
                          progress=self.group.progress, shard=(self.group.rank, self.group.world_size), on_batch=work)
            error = None
        except E4EBenchError as err:
            error = str(err)
        errors = [e for e in self.group.all_gather_object(error) if e is not None]
        if errors:
            raise E4EBenchError(errors[0])
        return self.group.is_main

    def _score(self, method: InversionMethod, inverted: Inverted, folder: Path, work: "BatchWork") -> MethodScores:
        values: dict[str, Value] = {}
        info: dict[str, MetricInfo] = {}
        per_image: dict[str, dict[str, float]] = {name: {} for name in inverted.names}
        run_names = {spec.name: name for name, spec in self.plan.metrics.items()}  # e.g. id_moco -> id

        def take(summary: EvaluationSummary, suffix: str = "", note: str = "") -> None:
            for registered, metric in summary.metrics.items():
                name = run_names.get(registered, registered)
                details = metric.details
                values[name + suffix] = Value(metric.value, details.get("std", math.nan),
                                              details.get("n", details.get("n_images", 0)), details.get("n_failed", 0),
                                              details.get("reference", math.nan))
                title = METRICS[registered].heading + suffix.replace("_", "-")
                info[name + suffix] = MetricInfo(metric.higher_is_better, metric.protocol + note, title,
                                                 METRICS[registered].unit)
                for image, value in zip(inverted.names, details.get("per_image", ())):
                    per_image[image][name + suffix] = value

        images = list(self.plan.of_kind("paired", "set").values())
        if images:
            summary, rows, _ = evaluate_folders(images, self.inputs, folder / "images", self.context,
                                                batch_size=self.settings.batch_size)
            take(summary)
            for file_name, row in rows.items():
                per_image[Path(file_name).stem].update({run_names.get(k, k): v for k, v in row.items()})
        per_step = [spec for spec in images if spec.per_step]
        for step_folder in sorted((folder / STEPS_DIR).glob("[0-9]*"), key=lambda path: int(path.name)):
            if per_step:
                summary, _, _ = evaluate_folders(per_step, self.inputs, step_folder, self.context,
                                                 batch_size=self.settings.batch_size)
                take(summary, f"_step{step_folder.name}", f"; the reconstruction after refinement step {step_folder.name}")
        on_edits = [spec for spec in images if spec.on_edits]
        if on_edits and work.direction is not None:
            summary, _, _ = evaluate_folders(on_edits, self.inputs, work.edits, self.context,
                                             batch_size=self.settings.batch_size)
            take(summary, "_edit", f"; fake set: the reconstructions edited by {self._edit_words()}")

        for name, metric in work.metrics.items():
            take(method_metric_summary(self.plan.metrics[name], metric, inverted.batch_results[name], method.name))
        latent = [spec for spec in METRICS.values() if spec.kind == "latent"]  # need only the codes: always scored
        evaluation = Evaluation(latent, self.context)
        evaluation.add_codes(inverted.names, inverted.codes, method.generator)
        take(evaluation.summary())
        for image, row in evaluation.per_image_table().items():
            per_image[image].update(row)

        median, spread, timed = inverted.timing()
        values["seconds_per_image"] = Value(median, spread, len(inverted.names))
        words = TIMING_PROTOCOL if math.isfinite(median) else TOO_FEW_BATCHES
        protocol = words.format(batch=self.settings.batch_size, device=self.environment["device"], timed=timed,
                                needed=MIN_TIMED_BATCHES)
        info["seconds_per_image"] = MetricInfo(False, protocol, "s/img", "seconds per image", std_is_noise=True)
        return MethodScores(values, info, per_image)

    def _edit_words(self) -> str:
        d = self.domain
        return f"{d.default_edit_name} ({d.default_edit}) x {d.default_edit_factor:g}, added to the codes"


class BatchWork:
    """What a run does with each batch of a method's inversion while its decoder state is in memory:
    the edited reconstructions `edits/<stem>.png` (the domain's edit at its factor, decoded with each
    image's own state), for a method that refines its codes step by step the reconstruction of each
    step `steps/<t>/<stem>.png` (t from 1), and the per-image values of the method metrics (LEC),
    kept with the batch."""

    def __init__(self, method: InversionMethod, domain: Domain, edits: Path, steps: Path,
                 metrics: dict[str, MethodMetric]):
        self.method = method
        self.domain = domain
        self.edits = edits
        self.steps = steps
        self.metrics = metrics
        self.direction = None if domain.default_edit is None else parse_direction(domain.default_edit, method.generator)

    def __call__(self, stems: list[str], inversion: Inversion) -> dict[str, torch.Tensor]:
        if self.direction is not None:
            with torch.inference_mode():
                codes = self.direction.add(inversion.codes, self.domain.default_edit_factor)
                frames = self.domain.crop(self.method.decode(inversion, codes))
            save_images(frames, [self.edits / f"{stem}.png" for stem in stems])
        trajectory = inversion.state.get(TRAJECTORY)
        for step in range(trajectory.shape[1] if trajectory is not None else 0):
            with torch.inference_mode():
                frames = self.domain.crop(self.method.decode(inversion, trajectory[:, step]))
            save_images(frames, [self.steps / str(step + 1) / f"{stem}.png" for stem in stems])
        return {name: metric.per_image(self.method, inversion) for name, metric in self.metrics.items()}


def method_metric_summary(spec: MetricSpec, metric: MethodMetric, per_image: torch.Tensor,
                          method: str) -> EvaluationSummary:
    """A method metric over every batch's values; one it cannot compute (too few images, say) is NaN
    with the reason as its protocol, and the run goes on."""
    try:
        result = metric.result(per_image)
    except E4EBenchError as err:
        log.warning("%s: %s not computed (%s)", method, spec.name, err)
        return EvaluationSummary({spec.name: MetricSummary(math.nan, f"{spec.name} not computed: {err}",
                                                           spec.higher_is_better, 0.0)})
    protocol = result.details.get("protocol", spec.protocol)
    return EvaluationSummary({spec.name: MetricSummary(result.value, protocol, spec.higher_is_better, 0.0,
                                                       result.details)})
