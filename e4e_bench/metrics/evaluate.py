"""Compute a list of image metrics for a real and a fake image set, batched, on one device.

Paired metrics compare files with the same stem (``00012.jpg`` with ``00012.png``); files without a
partner are named in a warning and in the meta, and nothing paired, or no pair readable, is an
error. Set metrics (FID, SWD) take each folder whole. When every file is in a pair, one pass feeds
both kinds.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from e4e_bench.data import by_stem, list_images, load_images, some_of, warn_stretched
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.methods import Inversion, InversionMethod
from e4e_bench.metrics.registry import IMAGE_KINDS, KINDS, SIDES, MetricContext, MetricResult, MetricSpec
from e4e_bench.throughput.timing import Stopwatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSummary:
    """One metric's number and what stands behind it."""

    value: float  # mean over scored images (paired, latent) or the metric's own result (set, method)
    protocol: str
    higher_is_better: bool
    seconds: float  # synchronised wall time spent in the metric
    details: dict[str, Any] = field(default_factory=dict)  # std/n/n_failed, or the metric's own details


@dataclass(frozen=True)
class EvaluationSummary:
    metrics: dict[str, MetricSummary]  # in the order the metrics were asked for

    def values(self) -> dict[str, float]:
        return {name: metric.value for name, metric in self.metrics.items()}

    def as_json(self) -> dict[str, Any]:
        """``{name: value, ..., "details": {name: {..., protocol, higher_is_better, seconds}}}``, the CLI's layout."""
        details = {
            name: metric.details
            | {"protocol": metric.protocol, "higher_is_better": metric.higher_is_better, "seconds": metric.seconds}
            for name, metric in self.metrics.items()
        }
        return self.values() | {"details": details}


class Evaluation:
    """Built metrics of every kind plus what they have seen.

    Feed paired metrics with ``add_pairs``, set metrics with ``add_set``, latent metrics with
    ``add_codes`` and method metrics with ``add_method``; read ``summary()`` and ``per_image()``.
    """

    def __init__(
        self,
        specs: Sequence[MetricSpec],
        context: MetricContext,
        options: Mapping[str, Mapping[str, Any]] | None = None,  # metric name -> its factory's keywords
    ):
        self.context = context
        self.specs = {spec.name: spec for spec in specs}
        self.seconds = dict.fromkeys(self.specs, 0.0)
        options = options or {}
        self.metrics = {
            spec.name: self._timed(spec.name, lambda: spec.build(context, **options.get(spec.name, {}))) for spec in specs
        }
        self.of_kind = {kind: [name for name, spec in self.specs.items() if spec.kind == kind] for kind in KINDS}
        self.sets = self.of_kind["set"]
        per_image = self.of_kind["paired"] + self.of_kind["latent"]
        self.scores: dict[str, list[torch.Tensor]] = {name: [] for name in per_image}
        self.images: dict[str, list[str]] = {name: [] for name in per_image}  # the image behind each score
        self.method_scores: dict[str, list[torch.Tensor]] = {name: [] for name in self.of_kind["method"]}
        self.results: dict[str, MetricResult] = {}  # method metrics, once summarised

    def _timed(self, name: str, function, *args):
        with Stopwatch(self.context.device) as watch:
            result = function(*args)
        self.seconds[name] += watch.seconds
        return result

    def _score(self, name: str, images: Sequence[str], *args) -> None:
        self.scores[name].append(self._timed(name, self.metrics[name], *args).float().cpu())
        self.images[name].extend(images)

    def wants(self, side: str) -> bool:
        return any(self.metrics[name].wants(side) for name in self.sets)

    def add_pairs(self, names: Sequence[str], real: torch.Tensor, fake: torch.Tensor) -> None:
        """Score aligned pairs with every paired metric; ``real``/``fake`` [B,3,H,W] in [-1,1]."""
        for name in self.of_kind["paired"]:
            self._score(name, names, real, fake)

    def add_set(self, side: str, images: torch.Tensor) -> None:
        for name in self.sets:
            if self.metrics[name].wants(side):
                self._timed(name, self.metrics[name].add, side, images)

    def add_codes(self, names: Sequence[str], codes: torch.Tensor, generator: Generator) -> None:
        """Score W+ codes ``[N, n_latent, D]`` of ``generator`` with every latent metric."""
        for name in self.of_kind["latent"]:
            self._score(name, names, codes, generator)

    def add_method(self, method: InversionMethod, inversion: Inversion) -> None:
        """Score a batch of the method's own inversion (batches in file order) with every method metric."""
        for name in self.of_kind["method"]:
            self.method_scores[name].append(self._timed(name, self.metrics[name].per_image, method, inversion))

    def per_image(self) -> dict[str, torch.Tensor]:
        """Per-image values of the paired and latent metrics, in the order they were added."""
        return {name: torch.cat(scores) if scores else torch.empty(0) for name, scores in self.scores.items()}

    def per_image_table(self) -> dict[str, dict[str, float]]:
        """``{image: {metric: value}}`` over the paired and latent metrics."""
        table: dict[str, dict[str, float]] = {}
        for name, values in self.per_image().items():
            for image, value in zip(self.images[name], values.tolist(), strict=True):
                table.setdefault(image, {})[name] = value
        return table

    def _summarise(self, name: str) -> tuple[float, dict[str, Any]]:
        if name in self.scores:
            scores = self.per_image()[name]
            scored = scores[scores.isfinite()]
            std = float(scored.std(unbiased=False)) if len(scored) else math.nan
            value = float(scored.mean()) if len(scored) else math.nan
            details = {"std": std, "n": len(scored), "n_failed": len(scores) - len(scored)}
            if hasattr(self.metrics[name], "summary_details"):  # what a paired metric gathered over all batches
                details |= self.metrics[name].summary_details()
            return value, details
        if name in self.method_scores:
            scores = self.method_scores[name]
            self.results[name] = self._timed(name, self.metrics[name].result, torch.cat(scores) if scores else torch.empty(0))
        result = self.results[name] if name in self.results else self._timed(name, self.metrics[name].result)
        return result.value, dict(result.details)

    def protocol(self, spec: MetricSpec) -> str:
        """The metric's protocol; an image metric's also names the size it compared the images at: the
        one `--domain` resized them to, since that changes every image metric (the toy's 24x32 pictures
        are upsampled 3x, for instance), else their own."""
        domain = self.context.domain
        if spec.name in self.results and "protocol" in self.results[spec.name].details:
            return self.results[spec.name].details["protocol"]  # a method metric's own words for what it ran
        if spec.kind not in IMAGE_KINDS:
            return spec.protocol
        if domain is None:
            return f"{spec.protocol}; at the files' own size"
        height, width = domain.eval_size
        return (f"{spec.protocol}; both sets first resized to {height}x{width} (domain {domain.name}'s evaluation "
                "size, PIL bilinear)")

    def summary(self) -> EvaluationSummary:
        metrics = {}
        for name, spec in self.specs.items():
            value, details = self._summarise(name)
            seconds = round(self.seconds[name], 3)
            metrics[name] = MetricSummary(value, self.protocol(spec), spec.higher_is_better, seconds, details)
        return EvaluationSummary(metrics)


def image_size(paths: Sequence[Path]) -> tuple[int, int]:
    """The one (H, W) shared by every file; reads headers only."""
    sizes = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.setdefault(image.size[::-1], path)
        except OSError:
            continue  # unreadable files are reported and skipped when loaded
    if len(sizes) > 1:
        (first, first_path), (second, second_path) = list(sizes.items())[:2]
        raise E4EBenchError(
            f"images differ in size ({first_path}: {first[0]}x{first[1]}, {second_path}: {second[0]}x{second[1]}); "
            "pass --domain to bring them to its evaluation size"
        )
    if not sizes:
        raise E4EBenchError(f"none of the {len(paths)} images can be read, e.g. {paths[0]}")
    return next(iter(sizes))


def content_hash(paths: Sequence[Path], size: tuple[int, int]) -> str:
    """Content hash of a set of files as loaded at ``size`` (file names and bytes)."""
    digest = hashlib.sha256(f"{size[0]}x{size[1]}".encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Pairing:
    """Real and fake files matched by name without extension, and those left without a partner."""

    pairs: list[tuple[Path, Path]]  # (real, fake), in fake file order
    unpaired_real: list[Path]
    unpaired_fake: list[Path]

    def complete(self) -> bool:
        return not self.unpaired_real and not self.unpaired_fake


def pair_by_stem(real: Sequence[Path], fake: Sequence[Path]) -> Pairing:
    """Pairs of files with one stem; unpaired files on either side are named in a warning, and none paired is an error."""
    real_by_stem, fake_by_stem = by_stem(real), by_stem(fake)
    pairing = Pairing(
        pairs=[(real_by_stem[stem], path) for stem, path in fake_by_stem.items() if stem in real_by_stem],
        unpaired_real=[path for stem, path in real_by_stem.items() if stem not in fake_by_stem],
        unpaired_fake=[path for stem, path in fake_by_stem.items() if stem not in real_by_stem],
    )
    if not pairing.pairs:
        raise E4EBenchError(
            f"none of the {len(fake)} fake images in {fake[0].parent} has a real image of the same name in "
            f"{real[0].parent} (e.g. {some_of([p.name for p in fake], 3)}); paired metrics match files by name without extension"
        )
    for side, unpaired, total, other in (("real", pairing.unpaired_real, real, "fake"),
                                         ("fake", pairing.unpaired_fake, fake, "real")):
        if unpaired:
            log.warning("%d of %d %s images in %s have no %s image of the same name and are not scored by the paired "
                        "metrics: %s", len(unpaired), len(total), side, total[0].parent, other,
                        some_of([p.name for p in unpaired]))
    return pairing


def batches(items: Sequence, batch_size: int, description: str) -> Iterator[Sequence]:
    for start in tqdm(range(0, len(items), batch_size), desc=description, unit="batch", leave=False):
        yield items[start : start + batch_size]


def evaluate_folders(
    specs: Sequence[MetricSpec],
    real_dir: Path,
    fake_dir: Path,
    context: MetricContext,
    *,
    batch_size: int = 16,
) -> tuple[EvaluationSummary, dict[str, dict[str, float]], dict]:
    """Run image metrics ``specs`` on two folders -> (summary, per-image values by fake file name, meta)."""
    unsupported = [spec.name for spec in specs if spec.kind not in IMAGE_KINDS]
    if unsupported:
        raise E4EBenchError(f"metrics {', '.join(unsupported)} do not compare images; the `lec` command reports them")
    real_paths, fake_paths = list_images(real_dir), list_images(fake_dir)
    if context.domain is not None:
        size = context.domain.eval_size
        warn_stretched(real_paths, size)
        warn_stretched(fake_paths, size)
    else:
        size = image_size([*real_paths, *fake_paths])
    if context.cache_dir is not None and any(spec.kind == "set" for spec in specs):
        context = replace(context, real_fingerprint=content_hash(real_paths, size))
    pairing = pair_by_stem(real_paths, fake_paths) if any(spec.kind == "paired" for spec in specs) else None
    evaluation = Evaluation(specs, context)
    device = context.device
    unreadable: list[str] = []

    def load(paths: Sequence[Path]) -> tuple[list[Path], torch.Tensor]:
        loaded = load_images(paths, size)
        unreadable.extend(str(path) for path, _ in loaded.failed)
        return loaded.paths, loaded.images.to(device)

    scored_pairs = 0
    with torch.inference_mode():
        fed_sets = pairing is not None and pairing.complete()
        if pairing is not None:
            for chunk in batches(pairing.pairs, batch_size, "pairs"):
                real_kept, real = load([real for real, _ in chunk])
                fake_kept, fake = load([fake for _, fake in chunk])
                both = {path.stem for path in real_kept} & {path.stem for path in fake_kept}
                real_rows = [row for row, path in enumerate(real_kept) if path.stem in both]
                fake_rows = [row for row, path in enumerate(fake_kept) if path.stem in both]
                evaluation.add_pairs([fake_kept[row].name for row in fake_rows], real[real_rows], fake[fake_rows])
                scored_pairs += len(fake_rows)
                if fed_sets:
                    evaluation.add_set("real", real)
                    evaluation.add_set("fake", fake)
        if pairing is not None and not scored_pairs:
            raise E4EBenchError(f"none of the {len(pairing.pairs)} pairs of images could be read (unreadable: "
                                f"{some_of(unreadable)})")
        if not fed_sets:
            for side, paths in zip(SIDES, (real_paths, fake_paths)):
                if evaluation.wants(side):
                    for chunk in batches(paths, batch_size, side):
                        evaluation.add_set(side, load(chunk)[1])
        summary = evaluation.summary()
    per_image = evaluation.per_image_table()
    meta = {
        "real": str(real_dir),
        "fake": str(fake_dir),
        "n_real": len(real_paths),
        "n_fake": len(fake_paths),
        "size": list(size),
        "domain": context.domain.name if context.domain is not None else None,
        "device": str(device),
        "pretrained": context.pretrained,
        "seed": context.seed,
        "unreadable": unreadable,
    }
    if pairing is not None:
        meta |= {"n_pairs": len(pairing.pairs), "unpaired_real": [p.name for p in pairing.unpaired_real],
                 "unpaired_fake": [p.name for p in pairing.unpaired_fake]}
    return summary, per_image, meta
