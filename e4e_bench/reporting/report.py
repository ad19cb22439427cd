"""Tables and figures of one or more run directories, from their stored results alone.

A run directory (written by `run`) holds `config.json`, `summary.json`, `per_image.csv` and, per
method, `methods/<method>/{latents.npy, names.txt, images/<stem>.png, edits/<stem>.png}`;
`config.json` names the folder of the input images (see run_results.py) and the edit. A directory
may also (or only) hold the `bench.json` of `bench`: its rows become `tables/bench.{json,csv,md}`;
the `sweep.json` of `run --sweep` becomes `tables/{sweep,strengths}.*` and `plots/{frontier,quality_vs_time}.*`.
Merged runs keep a row per run and method, so their labels must differ.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e4e_bench.data import IMAGE_SUFFIXES
from e4e_bench.errors import E4EBenchError
from e4e_bench.reporting.bench_results import BENCH_FILE, read_bench, write_bench
from e4e_bench.reporting.frontier import frontier_plot, quality_vs_time_plot
from e4e_bench.reporting.plots import distribution_plot, qualitative_grid, tradeoff_plot
from e4e_bench.reporting.run_results import CONFIG_FILE, GRID_IMAGES, PER_IMAGE_FILE, SUMMARY_FILE, RunSummary, inputs_folder
from e4e_bench.reporting.sweep_results import SweepSummary
from e4e_bench.reporting.tables import write_tables

log = logging.getLogger(__name__)


def method_dir(run_dir: Path, method: str) -> Path:
    return run_dir / "methods" / method


@dataclass(frozen=True)
class StoredRun:
    """A run directory as the report reads it."""

    folder: Path
    summary: RunSummary
    config: dict  # config.json; empty when the directory has none

    @classmethod
    def load(cls, folder: Path) -> "StoredRun":
        config = folder / CONFIG_FILE
        return cls(folder, RunSummary.load(folder), json.loads(config.read_text()) if config.is_file() else {})

    @property
    def edit(self) -> str | None:
        """The run's edit and its strength in words ("size ×2"); None without one."""
        edit = self.config.get("edit") or {}
        return f"{edit['name']} ×{edit['factor']:g}" if edit.get("name") else None

    def inputs(self) -> dict[str, Path] | None:
        """The inverted images by stem; None, with a warning naming the folder, when it is gone."""
        if "data" not in self.config:
            return None
        folder = inputs_folder(self.folder, self.config)
        if not folder.is_dir():
            log.warning("%s: its input images %s (config.json \"data\") are missing; the qualitative grid has no input "
                        "column", self.folder, folder)
            return None
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def read_per_image(run_dir: Path, label: str | None = None) -> pd.DataFrame:
    path = run_dir / PER_IMAGE_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["method", "image"])
    frame = pd.read_csv(path)
    if label is not None:
        frame["method"] = label + " / " + frame["method"]
    return frame


def grid_columns(run: StoredRun, n: int = GRID_IMAGES) -> tuple[list[str], list[tuple[str, list[Path]]]]:
    """(image stems, columns): input | each method's inversion | each method's edit, for the first `n`
    images every method inverted."""
    methods = [m for m, r in run.summary.methods.items() if r.status == "ok"]
    inputs = run.inputs()
    stems = set(inputs) if inputs is not None else None
    for method in methods:
        done = {p.stem for p in (method_dir(run.folder, method) / "images").glob("*.png")}
        stems = done if stems is None else stems & done
    stems = sorted(stems or ())[:n]
    columns = [("input", [inputs[s] for s in stems])] if inputs is not None else []
    columns += [(method, [method_dir(run.folder, method) / "images" / f"{s}.png" for s in stems]) for method in methods]
    for method in methods:
        edits = [method_dir(run.folder, method) / "edits" / f"{s}.png" for s in stems]
        if run.edit and all(p.is_file() for p in edits):
            columns.append((f"{method} + {run.edit}", edits))
    return stems, columns


def build_report(run_dirs: Sequence[Path], out: Path, grid_images: int = GRID_IMAGES) -> list[Path]:
    """Tables (md, tex, csv) and plots (trade-off, distributions, qualitative grid) of the runs into `out`,
    and the bench table of those that hold a bench.json."""
    run_dirs = [Path(d) for d in run_dirs]
    benched = [d for d in run_dirs if (d / BENCH_FILE).is_file()]
    bench_paths = write_bench([row for d in benched for row in read_bench(d / BENCH_FILE)], out / "tables") if benched else []
    run_dirs = [d for d in run_dirs if d not in benched or (d / SUMMARY_FILE).is_file()]
    return bench_paths + (run_report(run_dirs, out, grid_images) if run_dirs else [])


def check_distinct_labels(runs: Sequence[StoredRun]) -> None:
    """Rows are keyed by run label and method: two runs of one label would overwrite each other's."""
    folders: dict[str, list[str]] = {}
    for run in runs:
        folders.setdefault(run.summary.label, []).append(str(run.folder))
    shared = [f"{label!r} ({', '.join(names)})" for label, names in folders.items() if len(names) > 1]
    if shared:
        raise E4EBenchError(f"runs share a label, so their rows cannot be told apart: {'; '.join(shared)}; give each its "
                            "own with `run --label NAME` (with --resume and the run's settings its finished work is kept)")


def run_report(run_dirs: Sequence[Path], out: Path, grid_images: int) -> list[Path]:
    runs = [StoredRun.load(d) for d in run_dirs]
    check_distinct_labels(runs)
    summaries = [run.summary for run in runs]
    several = len(runs) > 1
    paths = write_tables(summaries, out / "tables")
    paths += tradeoff_plot(summaries, [run.edit for run in runs], out / "plots" / "tradeoff")
    per_image = pd.concat([read_per_image(run.folder, run.summary.label if several else None) for run in runs])
    if len(per_image):
        paths += distribution_plot(per_image, summaries, out / "plots" / "per_image")
    for run in runs:
        stems, columns = grid_columns(run, grid_images)
        if stems and columns:
            name = f"qualitative_{run.summary.label}" if several else "qualitative"
            paths += qualitative_grid(columns, stems, out / "plots" / name)
        sweep = SweepSummary.load(run.folder)
        if sweep is not None:
            suffix = f"_{run.summary.label}" if several else ""
            paths += write_tables([sweep.points], out / "tables", stem="sweep" + suffix)
            paths += write_tables([sweep.strengths], out / "tables", stem="strengths" + suffix)
            paths += frontier_plot(sweep, run.edit, out / "plots" / f"frontier{suffix}")
            paths += quality_vs_time_plot(sweep, out / "plots" / f"quality_vs_time{suffix}")
    return paths
