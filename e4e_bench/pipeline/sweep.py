"""`run --sweep`: every method scored at each value of its dial, and its edit at several strengths.

A method's registry entry declares its dial (`Dial`: e4e's offset scale, a projection's steps,
PTI's tuning steps); a method without one is a single point, its plain run. Each batch of the run's
images is inverted once along the dial (`invert_along`: the points of one trajectory, or one
inversion turned to each value), and each point is scored as a method of its own with the run's
metrics at the domain's edit strength: its LEC re-inverts the edited images with the method at
that dial value. The method's default point is also edited at every strength of
`--edit-strengths`, so that no method is judged at a strength chosen for another.

Layout under `OUT/sweep/<method>/`: `<value>/{images,edits}/<stem>.png`, `<value>/latents.npy`,
`x<strength>/<stem>.png` (the default point's edits at the other strengths), `result.json` when
the method is finished, and `.parts/` (each batch kept while the method runs, for `--resume`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import torch
from tqdm import tqdm

from e4e_bench.checkpoints import load_file, save_checkpoint
from e4e_bench.data import load_images, save_images
from e4e_bench.devices import synchronize
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.latents import write_codes
from e4e_bench.methods import METHODS, Dial, Inversion, InversionMethod, SweepableMethod, images_for
from e4e_bench.pipeline.fingerprint import check_fingerprint
from e4e_bench.pipeline.inversion import PARTS, Inverted
from e4e_bench.pipeline.scoring import BatchWork, MethodScores, Scorer
from e4e_bench.reporting.results_files import json_safe
from e4e_bench.reporting.run_results import MethodResult, MetricInfo, RunSummary, Value
from e4e_bench.reporting.sweep_results import PointInfo, SweepSummary, point_row

log = logging.getLogger(__name__)

SWEEP_DIR = "sweep"
RESULT_FILE = "result.json"
AFRESH = "rerun without --resume, or choose another --out"


@dataclass
class AtDial:
    """`method` with its dial held at `value`: what LEC re-inverts an edited image with."""

    method: SweepableMethod
    value: float

    def invert(self, images: torch.Tensor) -> Inversion:
        points: list[Inversion] = []
        self.method.invert_along(images, (self.value,), lambda _, inversion: points.append(inversion))
        return points[-1]

    def __getattr__(self, name: str):  # name, generator, input_size, decode, ...: the method's own
        return getattr(self.method, name)


@dataclass
class Point:
    """One dial value's (or one edit strength's) inversion as it is gathered batch by batch."""

    folder: Path
    work: BatchWork
    names: list[str] = field(default_factory=list)
    codes: list[torch.Tensor] = field(default_factory=list)
    timings: list[tuple[int, float]] = field(default_factory=list)
    results: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def add(self, names: list[str], codes: torch.Tensor, seconds: float, results: dict[str, torch.Tensor]) -> None:
        """One batch's stems, codes, seconds to reach this point, and per-image values of its work."""
        self.names += names
        self.codes.append(codes)
        self.timings.append((len(names), seconds))
        self.results.append(results)

    def inverted(self, files: list[str]) -> Inverted:
        joined = {key: torch.cat([batch[key] for batch in self.results]) for key in self.results[0]}
        return Inverted(self.names, torch.cat(self.codes), None, self.timings, files, joined)


def value_folder(value: float | None) -> str:
    return "plain" if value is None else f"{value:g}"


def strength_label(strength: float) -> str:
    return f"x{strength:g}"


@dataclass(frozen=True)
class SweptMethod:
    """One method's sweep: its scores at each dial value (None: a method without a dial, as it is), and
    its default point's edit scores at each strength."""

    dial: Dial | None
    default: float | None
    points: dict[float | None, MethodScores]
    strengths: dict[float, MethodScores]

    def to_json(self) -> dict:
        return {"points": [[value, scores.to_json()] for value, scores in self.points.items()],
                "strengths": [[strength, scores.to_json()] for strength, scores in self.strengths.items()]}


def dial_values(method: InversionMethod, dial: Dial | None) -> tuple[tuple[float | None, ...], float | None]:
    """(the values to sweep, ascending, the default among them; the default) of a built method."""
    if dial is None:
        return (None,), None
    default = dial.default(method.options)
    return tuple(sorted({*dial.values(method.options), default})), default


class Sweep:
    """The sweep stage of a run, method by method (see the module's docstring)."""

    def __init__(self, scorer: Scorer, out: Path, strengths: Sequence[float], resume: bool, progress: bool = True):
        self.scorer = scorer
        self.out = out / SWEEP_DIR
        self.strengths = tuple(strengths)
        self.resume = resume
        self.progress = progress

    def method(self, method: InversionMethod, fingerprint: dict[str, str]) -> SweptMethod:
        folder = self.out / method.name
        dial = METHODS[method.name].dial
        if dial is not None and not isinstance(method, SweepableMethod):
            raise E4EBenchError(f"{method.name} declares the dial {dial.name!r} but has no invert_along")
        values, default = dial_values(method, dial)
        fingerprint = fingerprint | {"dial": repr(values), "edit_strengths": repr(self.strengths)}
        done = folder / RESULT_FILE
        if self.resume and done.is_file():
            stored = json.loads(done.read_text())
            check_fingerprint(stored["fingerprint"], fingerprint, done, AFRESH)
            log.info("%s: its sweep finished in an earlier session, kept", method.name)
            return SweptMethod(dial, default, {value: MethodScores.from_json(s) for value, s in stored["points"]},
                               {strength: MethodScores.from_json(s) for strength, s in stored["strengths"]})
        if not self.resume:
            shutil.rmtree(folder, ignore_errors=True)
        relooker = lambda value: AtDial(method, value) if dial is not None and dial.moves_codes else method
        at_values = {value: Point(folder / value_folder(value), self.scorer.batch_work(
            method, folder / value_folder(value) / "edits", relooker=relooker(value))) for value in values}
        others = [s for s in self.strengths if s != self.scorer.domain.default_edit_factor]
        at_strengths = {strength: Point(folder / strength_label(strength), self.scorer.batch_work(
            method, folder / strength_label(strength), strength, relooker(default))) for strength in others}
        self._invert(method, values, default, at_values, at_strengths, folder, fingerprint)

        files = [p.name for p in images_for(method, self.scorer.inputs)]
        points = {}
        for value, point in at_values.items():
            inverted = point.inverted(files)
            write_codes(inverted.codes, point.folder / "latents.npy")
            points[value] = self.scorer.score(method, inverted, point.folder, point.work)
        strengths = {}
        for strength in self.strengths:
            if strength in at_strengths:
                strengths[strength] = MethodScores({}, {}, {})
                self.scorer.score_edits(strengths[strength], at_strengths[strength].inverted(files),
                                        at_strengths[strength].work)
            else:  # the domain's own strength: the default point's edits
                strengths[strength] = points[default]
        swept = SweptMethod(dial, default, points, strengths)
        write_text(done, json.dumps(json_safe({"fingerprint": fingerprint} | swept.to_json()), indent=2) + "\n")
        shutil.rmtree(folder / PARTS, ignore_errors=True)
        return swept

    def _invert(self, method: InversionMethod, values: tuple[float | None, ...], default: float | None,
                at_values: dict[float | None, Point], at_strengths: dict[float, Point], folder: Path,
                fingerprint: dict[str, str]) -> None:
        """Every batch along the dial: each point's reconstructions and edits written, its codes, timing
        and LEC values gathered; each finished batch kept in `.parts/` for --resume."""
        paths = images_for(method, self.scorer.inputs)
        batch_size = self.scorer.batch_size
        for index, start in enumerate(tqdm(range(0, len(paths), batch_size), desc=f"sweep {method.name}",
                                           unit="batch", disable=not self.progress)):
            files = [p.name for p in paths[start : start + batch_size]]
            part = folder / PARTS / f"{index:06d}.pt"
            kept = load_file(part) if self.resume and part.is_file() else None
            if kept is not None and kept["files"] == files:
                check_fingerprint(kept["fingerprint"], fingerprint, part, AFRESH)
            else:
                loaded = load_images(paths[start : start + batch_size], method.input_size)
                if not loaded.paths:
                    continue
                images = loaded.images.to(method.generator.device)
                kept = {"files": files, "fingerprint": fingerprint,
                        **self._batch(method, values, default, images, [p.stem for p in loaded.paths], at_values,
                                      at_strengths)}
                save_checkpoint(kept, part)
            for value, batch in kept["values"].items():
                at_values[value].add(*batch)
            for strength, batch in kept["strengths"].items():
                at_strengths[strength].add(*batch)

    def _batch(self, method: InversionMethod, values: tuple[float | None, ...], default: float | None,
               images: torch.Tensor, stems: list[str], at_values: dict[float | None, Point],
               at_strengths: dict[float, Point]) -> dict[str, dict]:
        """One batch: its inversion at every dial value (timed from the start to each point), then each
        point's reconstructions, edits and LEC values, and the default point's at the other strengths."""
        device = images.device
        reached: list[tuple[float | None, Inversion, float]] = []
        synchronize(device)
        started = perf_counter()

        def on_point(value: float | None, inversion: Inversion) -> None:
            synchronize(device)
            reached.append((value, inversion, perf_counter() - started))

        if values == (None,):
            on_point(None, method.invert(images))
        else:
            method.invert_along(images, values, on_point)
        if [value for value, _, _ in reached] != list(values):
            raise E4EBenchError(f"{method.name}'s invert_along gave the dial values {[v for v, _, _ in reached]}, "
                                f"not {list(values)}")
        kept: dict[str, dict] = {"values": {}, "strengths": {}}
        for value, inversion, seconds in reached:
            with torch.inference_mode():
                frames = self.scorer.domain.crop(method.decode(inversion))
            save_images(frames, [at_values[value].folder / "images" / f"{stem}.png" for stem in stems])
            kept["values"][value] = batch_values(at_values[value], stems, inversion, seconds)
            if value == default:
                for strength, point in at_strengths.items():
                    kept["strengths"][strength] = batch_values(point, stems, inversion, seconds)
        return kept


def batch_values(point: Point, stems: list[str], inversion: Inversion, seconds: float) -> tuple:
    """What a point keeps of a batch: (stems, codes, seconds, its work's per-image values)."""
    return stems, inversion.detached().codes, seconds, {k: v.cpu() for k, v in point.work(stems, inversion).items()}


def sweep_summary(swept: dict[str, SweptMethod], edit_keys: list[str], domain: str, label: str) -> SweepSummary:
    """The sweep's two tables as run summaries: a row per dial point, and a row per method of its
    edits at each strength with the best of them."""
    points, strengths = RunSummary(domain, label), RunSummary(domain, label)
    dials = {}
    for method, result in swept.items():
        for value, scores in result.points.items():
            row = point_row(method, value)
            points.methods[row] = MethodResult(values=scores.values)
            points.metrics.update(scores.info)
            dials[row] = PointInfo(method, result.dial.name if result.dial else None, value, value == result.default)
        values, info = best_over_strengths(result, edit_keys)
        strengths.methods[method] = MethodResult(values=values)
        strengths.metrics.update(info)
    return SweepSummary(points, strengths, dials)


def best_over_strengths(swept: SweptMethod, edit_keys: list[str]) -> tuple[dict[str, Value], dict[str, MetricInfo]]:
    """Per value of `edit_keys` (the edited images' set metrics, LEC): its value at each strength
    (`<m>@x<s>`), the best of them (`<m>_best`) and the strength that achieved it (`<m>_best_strength`)."""
    values: dict[str, Value] = {}
    info: dict[str, MetricInfo] = {}
    for key in edit_keys:
        metric = next((scores.info[key] for scores in swept.strengths.values() if key in scores.info), None)
        if metric is None:
            continue
        by_strength = {s: scores.values[key] for s, scores in sorted(swept.strengths.items()) if key in scores.values}
        for strength, value in by_strength.items():
            values[f"{key}@{strength_label(strength)}"] = value
            info[f"{key}@{strength_label(strength)}"] = dataclasses.replace(
                swept.strengths[strength].info[key], title=f"{metric.title} ×{strength:g}")
        finite = {s: v for s, v in by_strength.items() if math.isfinite(v.mean)}
        if finite:
            pick = max if metric.higher_is_better else min
            strength = pick(finite, key=lambda s: finite[s].mean)
            values[f"{key}_best"] = finite[strength]
            info[f"{key}_best"] = dataclasses.replace(metric, title=f"{metric.title} best",
                                                      protocol=f"the best of {key} over the strengths")
            values[f"{key}_best_strength"] = Value(strength)
            info[f"{key}_best_strength"] = MetricInfo(False, f"the edit strength of {key}_best",
                                                      f"{metric.title} best at ×", "edit strength", setting=True)
    return values, info
