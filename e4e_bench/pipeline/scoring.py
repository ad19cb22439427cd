"""Scoring one inversion of a run's images with the run's metrics: what the runner does for each
method, and the sweep for each of a method's dial values and edit strengths.

While a batch's decoder state is in memory, `BatchWork` decodes its edit and computes the method
metrics (LEC) of each image; once the whole folder is inverted, `Scorer.score` evaluates the
reconstructions and the edits against the inputs, gathers the method metrics, the latent metrics of
the codes and the timing, as values with their protocols and per-image rows.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from e4e_bench.data import save_images
from e4e_bench.domains import Domain
from e4e_bench.editing.directions import parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, InversionMethod
from e4e_bench.methods.contract import TRAJECTORY
from e4e_bench.metrics import METRICS
from e4e_bench.metrics.evaluate import Evaluation, EvaluationSummary, MetricSummary, evaluate_folders
from e4e_bench.metrics.registry import MethodMetric, MetricContext, MetricSpec
from e4e_bench.pipeline.inversion import MIN_TIMED_BATCHES, Inverted
from e4e_bench.pipeline.plan import Plan
from e4e_bench.reporting.results_files import json_safe
from e4e_bench.reporting.run_results import MetricInfo, Value, value_from_json

log = logging.getLogger(__name__)

TIME = "seconds_per_image"
STEPS_DIR = "steps"  # a method's reconstruction after each refinement step, `steps/<t>/<stem>.png`

TIMING_PROTOCOL = ("synchronised wall time of the inversion per image, {batch} images per batch, on {device}: "
                   "median ± median absolute deviation over the {timed} timed batches, the first batch left out as "
                   "warm-up")
TOO_FEW_BATCHES = ("not timed: {timed} batch(es) after the warm-up batch, {needed} needed for a median and its spread; "
                   "use more images or a smaller --batch-size")


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

    def take(self, summary: EvaluationSummary, names: list[str], run_names: dict[str, str], suffix: str = "",
             note: str = "") -> None:
        """Add an evaluation's metrics (per image in the order of `names`), as `<run name><suffix>`."""
        for registered, metric in summary.metrics.items():
            name = run_names.get(registered, registered)
            details = metric.details
            self.values[name + suffix] = Value(metric.value, details.get("std", math.nan),
                                               details.get("n", details.get("n_images", 0)), details.get("n_failed", 0),
                                               details.get("reference", math.nan))
            title = METRICS[registered].heading + suffix.replace("_", "-")
            self.info[name + suffix] = MetricInfo(metric.higher_is_better, metric.protocol + note, title,
                                                  METRICS[registered].unit)
            for image, value in zip(names, details.get("per_image", ())):
                self.per_image.setdefault(image, {})[name + suffix] = value


class BatchWork:
    """What a run does with each batch of a method's inversion while its decoder state is in memory:
    the edited reconstructions `edits/<stem>.png` (the domain's edit at `factor`, decoded with each
    image's own state), for a method that refines its codes step by step and a `steps` folder the
    reconstruction of each step `steps/<t>/<stem>.png` (t from 1), and the per-image values of the
    method metrics (LEC), kept with the batch. `relooker` re-inverts the edited images for the method
    metrics (default: the method itself)."""

    def __init__(self, method: InversionMethod, domain: Domain, edits: Path, metrics: dict[str, MethodMetric],
                 factor: float | None = None, relooker: InversionMethod | None = None, steps: Path | None = None):
        self.method = method
        self.relooker = relooker or method
        self.domain = domain
        self.edits = edits
        self.steps = steps
        self.metrics = metrics
        self.factor = domain.default_edit_factor if factor is None else factor
        self.direction = None if domain.default_edit is None else parse_direction(domain.default_edit, method.generator)

    def __call__(self, stems: list[str], inversion: Inversion) -> dict[str, torch.Tensor]:
        if self.direction is not None:
            with torch.inference_mode():
                codes = self.direction.add(inversion.codes, self.factor)
                frames = self.domain.crop(self.method.decode(inversion, codes))
            save_images(frames, [self.edits / f"{stem}.png" for stem in stems])
        trajectory = inversion.state.get(TRAJECTORY) if self.steps is not None else None
        for step in range(trajectory.shape[1] if trajectory is not None else 0):
            with torch.inference_mode():
                frames = self.domain.crop(self.method.decode(inversion, trajectory[:, step]))
            save_images(frames, [self.steps / str(step + 1) / f"{stem}.png" for stem in stems])
        return {name: metric.per_image(self.relooker, inversion) for name, metric in self.metrics.items()}


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


@dataclass
class Scorer:
    """The run's metrics, applied to one inversion of its input images at a time."""

    plan: Plan
    context: MetricContext
    inputs: Path  # the folder of the inverted images
    batch_size: int
    device_words: str  # the device, for the timing's protocol

    @property
    def domain(self) -> Domain:
        return self.plan.domain

    @property
    def run_names(self) -> dict[str, str]:
        return {spec.name: name for name, spec in self.plan.metrics.items()}  # e.g. id_moco -> id

    def batch_work(self, method: InversionMethod, edits: Path, factor: float | None = None,
                   relooker: InversionMethod | None = None, steps: Path | None = None) -> BatchWork:
        """The run's edit and method metrics for each batch (and each refinement step's reconstruction into
        `steps`); with `factor`, the edit at that strength and only the method metrics that measure the
        edit (LEC), built for that strength."""
        specs = self.plan.of_kind("method")
        metrics = ({name: spec.build(self.context) for name, spec in specs.items()} if factor is None else
                   {name: spec.build(self.context, factor=factor) for name, spec in specs.items() if spec.on_edits})
        return BatchWork(method, self.domain, edits, metrics, factor, relooker, steps)

    def edit_keys(self) -> list[str]:
        """The values that depend on the edit's strength: `<name>_edit` of the set metrics scored on the
        edited images, and the method metrics that measure the edit."""
        return [name + "_edit" if spec.kind == "set" else name for name, spec in self.plan.metrics.items()
                if spec.on_edits and spec.kind in ("set", "method")]

    def score(self, method: InversionMethod, inverted: Inverted, folder: Path, work: BatchWork) -> MethodScores:
        """Every metric of the inversion in `folder` (reconstructions in `images/`, edits in `work.edits`)."""
        scores = MethodScores({}, {}, {name: {} for name in inverted.names})
        images = list(self.plan.of_kind("paired", "set").values())
        if images:
            summary, rows, _ = evaluate_folders(images, self.inputs, folder / "images", self.context,
                                                batch_size=self.batch_size)
            scores.take(summary, inverted.names, self.run_names)
            for file_name, row in rows.items():
                scores.per_image[Path(file_name).stem].update({self.run_names.get(k, k): v for k, v in row.items()})
        per_step = [spec for spec in images if spec.per_step]
        for step in sorted((folder / STEPS_DIR).glob("[0-9]*"), key=lambda path: int(path.name)) if per_step else ():
            summary, _, _ = evaluate_folders(per_step, self.inputs, step, self.context, batch_size=self.batch_size)
            scores.take(summary, inverted.names, self.run_names, f"_step{step.name}",
                        f"; the reconstruction after refinement step {step.name}")
        self.score_edits(scores, inverted, work)
        latent = [spec for spec in METRICS.values() if spec.kind == "latent"]  # need only the codes: always scored
        evaluation = Evaluation(latent, self.context)
        evaluation.add_codes(inverted.names, inverted.codes, method.generator)
        scores.take(evaluation.summary(), inverted.names, self.run_names)
        for image, row in evaluation.per_image_table().items():
            scores.per_image[image].update(row)

        scores.values[TIME], scores.info[TIME] = self.timing(inverted)
        return scores

    def timing(self, inverted: Inverted) -> tuple[Value, MetricInfo]:
        """The inversion's seconds per image, with its protocol."""
        median, spread, timed = inverted.timing()
        words = TIMING_PROTOCOL if math.isfinite(median) else TOO_FEW_BATCHES
        protocol = words.format(batch=self.batch_size, device=self.device_words, timed=timed, needed=MIN_TIMED_BATCHES)
        return (Value(median, spread, len(inverted.names)),
                MetricInfo(False, protocol, "s/img", "seconds per image", std_is_noise=True))

    def score_edits(self, scores: MethodScores, inverted: Inverted, work: BatchWork, suffix: str = "") -> None:
        """The set metrics of the edited reconstructions (`<name>_edit<suffix>`) and the method metrics
        (`<name><suffix>`) from the values `work` kept with each batch."""
        on_edits = [spec for spec in self.plan.of_kind("paired", "set").values() if spec.on_edits]
        if on_edits and work.direction is not None:
            summary, _, _ = evaluate_folders(on_edits, self.inputs, work.edits, self.context,
                                             batch_size=self.batch_size)
            scores.take(summary, inverted.names, self.run_names, "_edit" + suffix,
                        f"; fake set: the reconstructions edited by {self.edit_words(work.factor)}")
        for name, metric in work.metrics.items():
            summary = method_metric_summary(self.plan.metrics[name], metric, inverted.batch_results[name],
                                            work.method.name)
            scores.take(summary, inverted.names, self.run_names, suffix)

    def edit_words(self, factor: float) -> str:
        d = self.domain
        return f"{d.default_edit_name} ({d.default_edit}) x {factor:g}, added to the codes"
