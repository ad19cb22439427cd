"""Tables and figures of one or more run directories, from their stored results alone.

A run directory (written by `run`) holds `config.json`, `summary.json`, `per_image.csv` and, per
method, `methods/<method>/{latents.npy, names.txt, images/<stem>.png, edits/<stem>.png}`;
`config.json` names the folder of the input images. A directory may also (or only) hold the
`bench.json` of `bench`: its rows become `tables/bench.{json,csv,md}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from e4e_bench.reporting.bench_results import BENCH_FILE, read_bench, write_bench
from e4e_bench.reporting.plots import distribution_plot, qualitative_grid, tradeoff_plot
from e4e_bench.reporting.run_results import CONFIG_FILE, PER_IMAGE_FILE, SUMMARY_FILE, RunSummary
from e4e_bench.reporting.tables import titles, write_tables

GRID_IMAGES = 6


def method_dir(run_dir: Path, method: str) -> Path:
    return run_dir / "methods" / method


def read_per_image(run_dir: Path, label: str | None = None) -> pd.DataFrame:
    path = run_dir / PER_IMAGE_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["method", "image"])
    frame = pd.read_csv(path)
    if label is not None:
        frame["method"] = label + " / " + frame["method"]
    return frame


def grid_columns(run_dir: Path, summary: RunSummary, n: int = GRID_IMAGES) -> list[tuple[str, list[Path]]]:
    """input | each method's inversion | each method's edit, for the first `n` images every method inverted."""
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    inputs = {p.stem: p for p in Path(config["data"]).iterdir()}
    methods = [m for m, r in summary.methods.items() if r.status == "ok"]
    stems = sorted(inputs)
    for method in methods:
        done = {p.stem for p in (method_dir(run_dir, method) / "images").glob("*.png")}
        stems = [s for s in stems if s in done]
    stems = stems[:n]
    columns = [("input", [inputs[s] for s in stems])]
    columns += [(method, [method_dir(run_dir, method) / "images" / f"{s}.png" for s in stems]) for method in methods]
    edit = config.get("edit", {}).get("name")
    for method in methods:
        edits = [method_dir(run_dir, method) / "edits" / f"{s}.png" for s in stems]
        if edit and all(p.is_file() for p in edits):
            columns.append((f"{method} {edit}", edits))
    return columns


def build_report(run_dirs: Sequence[Path], out: Path, grid_images: int = GRID_IMAGES) -> list[Path]:
    """Tables (md, tex, csv) and plots (trade-off, distributions, qualitative grid) of the runs into `out`,
    and the bench table of those that hold a bench.json."""
    run_dirs = [Path(d) for d in run_dirs]
    benched = [d for d in run_dirs if (d / BENCH_FILE).is_file()]
    bench_paths = write_bench([row for d in benched for row in read_bench(d / BENCH_FILE)], out / "tables") if benched else []
    run_dirs = [d for d in run_dirs if d not in benched or (d / SUMMARY_FILE).is_file()]
    return bench_paths + (run_report(run_dirs, out, grid_images) if run_dirs else [])


def run_report(run_dirs: Sequence[Path], out: Path, grid_images: int) -> list[Path]:
    summaries = [RunSummary.load(d) for d in run_dirs]
    several = len(summaries) > 1
    paths = write_tables(summaries, out / "tables")
    paths += tradeoff_plot(summaries, out / "plots" / "tradeoff")
    per_image = pd.concat([read_per_image(d, s.label if several else None) for d, s in zip(run_dirs, summaries)])
    if len(per_image):
        paths += distribution_plot(per_image, titles(summaries), out / "plots" / "per_image")
    for run_dir, summary in zip(run_dirs, summaries):
        columns = grid_columns(run_dir, summary, grid_images)
        if columns[0][1]:
            name = f"qualitative_{summary.label}" if several else "qualitative"
            paths += qualitative_grid(columns, out / "plots" / name)
    return paths
