"""Compute a list of image metrics for a real and a fake image set, batched, on one device.

Paired metrics compare files with the same stem (``00012.jpg`` with ``00012.png``); set metrics
(FID, SWD) take each folder whole. When every file is in a pair, one pass feeds both kinds.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from e4e_bench.data import list_images, load_images
from e4e_bench.devices import synchronize
from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics.registry import IMAGE_KINDS, SIDES, MetricContext, MetricSpec



class Evaluation:
    """Built metrics plus what they have seen; feed with ``add_pairs`` / ``add_set``, read ``summary``."""

    def __init__(self, specs: Sequence[MetricSpec], context: MetricContext):
        unsupported = [spec.name for spec in specs if spec.kind not in IMAGE_KINDS]
        if unsupported:
            raise E4EBenchError(f"metrics {', '.join(unsupported)} do not compare images; the `lec` command reports them")
        self.context = context
        self.specs = {spec.name: spec for spec in specs}
        self.seconds = dict.fromkeys(self.specs, 0.0)
        self.metrics = {spec.name: self._timed(spec.name, spec.build, context) for spec in specs}
        self.paired = [name for name, spec in self.specs.items() if spec.kind == "paired"]
        self.sets = [name for name, spec in self.specs.items() if spec.kind == "set"]
        self.names: list[str] = []
        self.scores: dict[str, list[torch.Tensor]] = {name: [] for name in self.paired}

    def _timed(self, name: str, function, *args):
        synchronize(self.context.device)
        start = time.perf_counter()
        result = function(*args)
        synchronize(self.context.device)
        self.seconds[name] += time.perf_counter() - start
        return result

    def wants(self, side: str) -> bool:
        return any(self.metrics[name].wants(side) for name in self.sets)

    def add_pairs(self, names: Sequence[str], real: torch.Tensor, fake: torch.Tensor) -> None:
        """Score aligned pairs with every paired metric; ``real``/``fake`` [B,3,H,W] in [-1,1]."""
        self.names.extend(names)
        for name in self.paired:
            self.scores[name].append(self._timed(name, self.metrics[name], real, fake).float().cpu())

    def add_set(self, side: str, images: torch.Tensor) -> None:
        for name in self.sets:
            if self.metrics[name].wants(side):
                self._timed(name, self.metrics[name].add, side, images)

    def per_image(self) -> dict[str, torch.Tensor]:
        return {name: torch.cat(self.scores[name]) if self.scores[name] else torch.empty(0) for name in self.paired}

    def summary(self) -> dict:
        """``{name: value, ..., "details": {name: {...}}}``: paired values are means over scored images."""
        values, details = {}, {}
        for name, scores in self.per_image().items():
            scored = scores[scores.isfinite()]
            values[name] = float(scored.mean()) if len(scored) else math.nan
            details[name] = {
                "std": float(scored.std(unbiased=False)) if len(scored) else math.nan,
                "n": len(scored),
                "n_failed": len(scores) - len(scored),
            }
            if hasattr(self.metrics[name], "summary_details"):
                details[name].update(self.metrics[name].summary_details())
        for name in self.sets:
            result = self._timed(name, self.metrics[name].result)
            values[name] = result.value
            details[name] = dict(result.details)
        for name, spec in self.specs.items():
            details[name].update(
                protocol=spec.protocol, higher_is_better=spec.higher_is_better, seconds=round(self.seconds[name], 3)
            )
        return {name: values[name] for name in self.specs} | {"details": details}


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


def fingerprint(paths: Sequence[Path], size: tuple[int, int]) -> str:
    """Content hash of a set of files as loaded at ``size`` (file names and bytes)."""
    digest = hashlib.sha256(f"{size[0]}x{size[1]}".encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def pair_by_stem(real: Sequence[Path], fake: Sequence[Path]) -> list[tuple[Path, Path]]:
    real_by_stem = {path.stem: path for path in real}
    missing = [path.name for path in fake if path.stem not in real_by_stem]
    if missing:
        raise E4EBenchError(
            f"{len(missing)} fake images have no real image of the same name (e.g. {', '.join(missing[:3])}); "
            "paired metrics match files by name without extension"
        )
    return [(real_by_stem[path.stem], path) for path in fake]


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
) -> tuple[dict, dict[str, dict[str, float]], dict]:
    """Run ``specs`` on two folders -> (summary, per-image values by fake file name, meta)."""
    real_paths, fake_paths = list_images(real_dir), list_images(fake_dir)
    size = context.domain.eval_size if context.domain is not None else image_size([*real_paths, *fake_paths])
    if context.cache_dir is not None and any(spec.kind == "set" for spec in specs):
        context = replace(context, real_fingerprint=fingerprint(real_paths, size))
    evaluation = Evaluation(specs, context)
    device = context.device
    unreadable: list[str] = []

    def load(paths: Sequence[Path]) -> tuple[list[Path], torch.Tensor]:
        loaded = load_images(paths, size)
        unreadable.extend(str(path) for path, _ in loaded.failed)
        return loaded.paths, loaded.images.to(device)

    with torch.inference_mode():
        fed_sets = False
        if evaluation.paired:
            pairs = pair_by_stem(real_paths, fake_paths)
            fed_sets = len(pairs) == len(real_paths)
            for chunk in batches(pairs, batch_size, "pairs"):
                real_kept, real = load([real for real, _ in chunk])
                fake_kept, fake = load([fake for _, fake in chunk])
                both = {path.stem for path in real_kept} & {path.stem for path in fake_kept}
                real_rows = [row for row, path in enumerate(real_kept) if path.stem in both]
                fake_rows = [row for row, path in enumerate(fake_kept) if path.stem in both]
                evaluation.add_pairs([fake_kept[row].name for row in fake_rows], real[real_rows], fake[fake_rows])
                if fed_sets:
                    evaluation.add_set("real", real)
                    evaluation.add_set("fake", fake)
        if not fed_sets:
            for side, paths in zip(SIDES, (real_paths, fake_paths)):
                if evaluation.wants(side):
                    for chunk in batches(paths, batch_size, side):
                        evaluation.add_set(side, load(chunk)[1])
        summary = evaluation.summary()
    columns = {name: values.tolist() for name, values in evaluation.per_image().items()}
    per_image = {
        image: {name: column[row] for name, column in columns.items()} for row, image in enumerate(evaluation.names)
    }
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
    return summary, per_image, meta
