"""`run --sweep`: every method scored at each value of its dial, and its edit at several strengths.

A method's registry entry declares its dial (`Dial`: e4e's offset scale, a projection's steps,
PTI's tuning steps, ReStyle's refinement steps); a method without one is a single point. Each batch
of the run's images is inverted once along the dial (`invert_along`: the points of one trajectory,
or one inversion turned to each value); each point is handled as soon as it is reached (its
reconstructions, its edit, its LEC, which re-inverts the edited images with the method at that
dial value), with the clock paused, so that a point's time is the inversion's alone and a tuned
generator is dropped before the next. The default point is the plain run's: its scores are
reused and only its codes and time are gathered. That point is also edited at every strength of
`--edit-strengths` (the domain's own always among them), so that no method is judged at a
strength chosen for another.

Layout under `OUT/sweep/<method>/`: `<value>/{images,edits}/<stem>.png` and `<value>/latents.npy`
(the default point: its codes only), `x<strength>/<stem>.png` (the default point's edits at the
other strengths), `settings.json` (what the sweep was made with), `result.json` when the method
is finished, and `.parts/` (each batch kept while the method runs, for `--resume`).
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
from e4e_bench.domains import Domain
from e4e_bench.devices import synchronize
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.latents import write_codes
from e4e_bench.methods import METHODS, Dial, Inversion, InversionMethod, SweepableMethod, images_for
from e4e_bench.pipeline.inversion import PARTS, Inverted, check_codes
from e4e_bench.pipeline.scoring import TIME, BatchWork, MethodScores, Scorer
from e4e_bench.reporting.results_files import json_safe
from e4e_bench.reporting.run_results import MethodResult, MetricInfo, RunSummary, Value
from e4e_bench.reporting.sweep_results import PointInfo, SweepSummary, point_row, value_text

log = logging.getLogger(__name__)

SWEEP_DIR = "sweep"
RESULT_FILE = "result.json"
SETTINGS_FILE = "settings.json"


class AtDial:
    """`method` with its dial held at `value`: what LEC re-inverts an edited image with."""

    def __init__(self, method: SweepableMethod, value: float):
        self.method = method
        self.value = value
        self.name, self.generator, self.input_size = method.name, method.generator, method.input_size
        self.options, self.source = method.options, method.source

    def invert(self, images: torch.Tensor) -> Inversion:
        points: list[Inversion] = []
        self.method.invert_along(images, (self.value,), lambda _, inversion: points.append(inversion))
        return points[-1]

    def decode(self, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        return self.method.decode(inversion, codes)


@dataclass
class Point:
    """One dial value's (or one edit strength's) inversion as it is gathered batch by batch; `work`
    None: the plain run's point, of which only the codes and the time are gathered."""

    folder: Path
    work: BatchWork | None
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

    def keep(self, stems: list[str], inversion: Inversion, seconds: float) -> tuple:
        """Do this point's work on a batch (written to disk) and return what its part keeps:
        (stems, codes, seconds, the work's per-image values)."""
        results = {} if self.work is None else {k: v.cpu() for k, v in self.work(stems, inversion).items()}
        return stems, inversion.detached().codes, seconds, results


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
        self.strengths = tuple(sorted({*strengths, scorer.domain.default_edit_factor}))
        self.resume = resume
        self.progress = progress

    def method(self, method: InversionMethod, fingerprint: dict[str, str], plain: MethodScores) -> SweptMethod:
        """`method`'s sweep; `plain` is its plain run's scores (with `fingerprint`), its default point's."""
        folder = self.out / method.name
        dial = METHODS[method.name].dial
        if dial is not None and not isinstance(method, SweepableMethod):
            raise E4EBenchError(f"{method.name} declares the dial {dial.name!r} but has no invert_along")
        values, default = dial_values(method, dial)
        self._claim(folder, fingerprint | {"dial": repr(values), "edit_strengths": repr(self.strengths)})
        done = folder / RESULT_FILE
        if done.is_file():
            stored = json.loads(done.read_text())
            log.info("%s: its sweep finished in an earlier session, kept", method.name)
            return SweptMethod(dial, default, {value: MethodScores.from_json(s) for value, s in stored["points"]},
                               {strength: MethodScores.from_json(s) for strength, s in stored["strengths"]})

        def relooker(value: float | None) -> InversionMethod:
            return AtDial(method, value) if dial is not None and dial.moves_codes else method

        at_values = {value: Point(folder / value_text(value), None if value == default else self.scorer.batch_work(
            method, folder / value_text(value) / "edits", relooker=relooker(value))) for value in values}
        at_strengths = {strength: Point(folder / strength_label(strength), self.scorer.batch_work(
            method, folder / strength_label(strength), strength, relooker(default)))
            for strength in self.strengths if strength != self.scorer.domain.default_edit_factor}
        self._invert(method, values, default, at_values, at_strengths, folder)

        files = [p.name for p in images_for(method, self.scorer.inputs)]
        points = {}
        for value, point in at_values.items():
            inverted = point.inverted(files)
            write_codes(inverted.codes, point.folder / "latents.npy")
            if point.work is None:
                scores = MethodScores(dict(plain.values), dict(plain.info), plain.per_image)
            else:
                scores = self.scorer.score(method, inverted, point.folder, point.work)
            scores.values[TIME], scores.info[TIME] = self.scorer.timing(inverted)  # the time to reach this point
            points[value] = scores
        strengths = {}
        for strength in self.strengths:
            if strength in at_strengths:
                strengths[strength] = MethodScores({}, {}, {})
                self.scorer.score_edits(strengths[strength], at_strengths[strength].inverted(files),
                                        at_strengths[strength].work)
            else:  # the domain's own strength: the plain run's edits
                strengths[strength] = plain
        swept = SweptMethod(dial, default, points, strengths)
        write_text(done, json.dumps(json_safe(swept.to_json()), indent=2) + "\n")
        shutil.rmtree(folder / PARTS, ignore_errors=True)
        return swept

    def _claim(self, folder: Path, settings: dict[str, str]) -> None:
        """`folder` holds this sweep's work only: with --resume a sweep made with the same settings is
        continued; anything else there (another run's settings, a run without --resume) is removed."""
        stamp = folder / SETTINGS_FILE
        if self.resume and stamp.is_file() and json.loads(stamp.read_text()) == settings:
            return
        if folder.exists():
            if self.resume:
                log.info("%s: its sweep was made with other settings, started again", folder.name)
            shutil.rmtree(folder)
        write_text(stamp, json.dumps(settings, indent=2) + "\n")

    def _invert(self, method: InversionMethod, values: tuple[float | None, ...], default: float | None,
                at_values: dict[float | None, Point], at_strengths: dict[float, Point], folder: Path) -> None:
        """Every batch along the dial, each finished batch kept in `.parts/` for --resume."""
        paths = images_for(method, self.scorer.inputs)
        batch_size = self.scorer.batch_size
        for index, start in enumerate(tqdm(range(0, len(paths), batch_size), desc=f"sweep {method.name}",
                                           unit="batch", disable=not self.progress)):
            files = [p.name for p in paths[start : start + batch_size]]
            part = folder / PARTS / f"{index:06d}.pt"
            kept = load_file(part) if part.is_file() else None
            if kept is None or kept["files"] != files:
                loaded = load_images(paths[start : start + batch_size], method.input_size)
                if not loaded.paths:
                    continue
                kept = {"files": files, **self._batch(method, values, default, loaded, at_values, at_strengths)}
                save_checkpoint(kept, part)
            for value, batch in kept["values"].items():
                at_values[value].add(*batch)
            for strength, batch in kept["strengths"].items():
                at_strengths[strength].add(*batch)

    def _batch(self, method: InversionMethod, values: tuple[float | None, ...], default: float | None, loaded,
               at_values: dict[float | None, Point], at_strengths: dict[float, Point]) -> dict[str, dict]:
        """One batch along the dial: each point's work done as it is reached, with the clock paused, so
        that its time is the inversion's to that point; returns what the batch's part keeps."""
        images = loaded.images.to(method.generator.device)
        stems = [p.stem for p in loaded.paths]
        kept: dict[str, dict] = {"values": {}, "strengths": {}}
        reached: list[float | None] = []
        paused = 0.0
        synchronize(images.device)
        started = perf_counter()

        def on_point(value: float | None, inversion: Inversion) -> None:
            nonlocal paused
            synchronize(images.device)
            now = perf_counter()
            reached.append(value)
            check_codes(method, inversion, loaded.paths)
            point = at_values[value]
            if point.work is not None:
                with torch.inference_mode():
                    frames = self.scorer.domain.crop(method.decode(inversion))
                save_images(frames, [point.folder / "images" / f"{stem}.png" for stem in stems])
            kept["values"][value] = point.keep(stems, inversion, now - started - paused)
            if value == default:
                for strength, other in at_strengths.items():
                    kept["strengths"][strength] = other.keep(stems, inversion, now - started - paused)
            synchronize(images.device)
            paused += perf_counter() - now

        if dial_free := values == (None,):
            on_point(None, method.invert(images))
        else:
            method.invert_along(images, values, on_point)
        if reached != list(values) and not dial_free:
            raise E4EBenchError(f"{method.name}'s invert_along reached the dial values {reached}, not {list(values)}")
        return kept


def sweep_summary(swept: dict[str, SweptMethod], failed: dict[str, str], edit_keys: list[str], domain: Domain,
                  label: str) -> SweepSummary:
    """The sweep's two tables as run summaries: a row per dial point (a failed method's sweep: one row
    with its reason), and a row per method of its edits at each strength with the best of them."""
    points, strengths = RunSummary(domain.name, label), RunSummary(domain.name, label)
    dials = {}
    for method, reason in failed.items():
        points.methods[method] = MethodResult(status="failed", reason=reason)
        dials[method] = PointInfo(method, None, None, False)
    for method, result in swept.items():
        for value, scores in result.points.items():
            row = point_row(method, value)
            points.methods[row] = MethodResult(values=scores.values)
            points.metrics.update(scores.info)
            dials[row] = PointInfo(method, result.dial.name if result.dial else None, value, value == result.default)
        values, info = best_over_strengths(result, edit_keys, domain.default_edit_factor)
        strengths.methods[method] = MethodResult(values=values)
        strengths.metrics.update(info)
    return SweepSummary(points, strengths, dials)


def best_over_strengths(swept: SweptMethod, edit_keys: list[str],
                        default: float) -> tuple[dict[str, Value], dict[str, MetricInfo]]:
    """Per value of `edit_keys` (the edited images' set metrics, LEC): its value at each strength
    (`<m>@x<s>`, the domain's `default` marked), the best of them (`<m>_best`) and the strength that
    achieved it (`<m>_best_strength`)."""
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
                swept.strengths[strength].info[key],
                title=f"{metric.title} ×{strength:g}" + (" (default)" if strength == default else ""))
        finite = {s: v for s, v in by_strength.items() if math.isfinite(v.mean)}
        if finite:
            pick = max if metric.higher_is_better else min
            strength = pick(finite, key=lambda s: finite[s].mean)
            values[f"{key}_best"] = finite[strength]
            words = (f"the best of {key} over the strengths {', '.join(f'{s:g}' for s in by_strength)}; "
                     "edited-image scores and LEC tend to grow with the strength, so read it with its strength")
            info[f"{key}_best"] = dataclasses.replace(metric, title=f"{metric.title} best", protocol=words)
            values[f"{key}_best_strength"] = Value(strength)
            info[f"{key}_best_strength"] = MetricInfo(False, f"the edit strength of {key}_best",
                                                      f"{metric.title} best at ×", "edit strength", setting=True)
    return values, info
