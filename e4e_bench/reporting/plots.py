"""The figures of a run, each as PNG and PDF: the distortion-editability trade-off, per-image
distributions and the qualitative grid (input | inversions | edits).

Only matplotlib's object-oriented API is used (a `Figure` with its own canvas), so drawing never
touches pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from e4e_bench.io import atomic_write
from e4e_bench.reporting.run_results import RunSummary
from e4e_bench.reporting.tables import titles

FORMATS = ("png", "pdf")


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(f".{fmt}") for fmt in FORMATS]
    for path, fmt in zip(paths, FORMATS, strict=True):
        with atomic_write(path) as stream:
            figure.savefig(stream, format=fmt, dpi=150, bbox_inches="tight")
    return paths


def tradeoff_plot(summaries: Sequence[RunSummary], stem: Path) -> list[Path]:
    """Distortion (LPIPS, else L2) against LEC, one point per method with ±1 std bars: e4e's framing."""
    points = [(s, method, r) for s in summaries for method, r in s.methods.items() if "lec" in r.values]
    distortion = "lpips" if points and all("lpips" in r.values for _, _, r in points) else "l2"
    points = [(s, method, r) for s, method, r in points if distortion in r.values]
    headings = titles(summaries)
    figure = Figure(figsize=(4.5, 3.5))
    axes = figure.add_subplot()
    for summary, method, result in points:
        x, y = result.values[distortion], result.values["lec"]
        label = f"{summary.label} / {method}" if len(summaries) > 1 else method
        axes.errorbar(x.mean, y.mean, xerr=_finite(x.std), yerr=_finite(y.std), fmt="o", capsize=3, label=label)
    axes.set_xlabel(f"{headings.get(distortion, distortion)} (distortion) ↓")
    axes.set_ylabel("LEC (editability) ↓")
    axes.set_title("Distortion–editability trade-off")
    if points:
        axes.legend(fontsize="small")
    else:
        axes.text(0.5, 0.5, f"no method has both {distortion} and LEC", ha="center", va="center", transform=axes.transAxes)
    axes.grid(alpha=0.3)
    return save_figure(figure, stem)


def _finite(std: float) -> float | None:
    return std if math.isfinite(std) else None


def distribution_plot(per_image: pd.DataFrame, headings: Mapping[str, str], stem: Path) -> list[Path]:
    """Box plots of every per-image metric, one box per method; `headings`: metric key -> title, in table order."""
    metrics = [key for key in headings if key in per_image.columns]
    methods = list(dict.fromkeys(per_image["method"]))
    figure = Figure(figsize=(3.2 * max(1, len(metrics)), 3.2))
    for index, key in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        data = [per_image.loc[per_image["method"] == m, key].dropna().to_numpy() for m in methods]
        axes.boxplot(data, tick_labels=methods)
        axes.set_title(headings[key])
        axes.tick_params(axis="x", labelrotation=30)
    return save_figure(figure, stem)


def qualitative_grid(columns: Sequence[tuple[str, Sequence[Path]]], stem: Path, cell_height: int = 96) -> list[Path]:
    """A row per image, a column per (title, files): e.g. input | e4e | pSp | e4e edit | pSp edit."""
    rows = min(len(paths) for _, paths in columns)
    cells = [[_cell(paths[row], cell_height) for _, paths in columns] for row in range(rows)]
    width = max(c.shape[1] for row in cells for c in row)
    figure = Figure(figsize=(1.2 * len(columns) * width / cell_height, 1.2 * rows + 0.4))
    for row in range(rows):
        for col, (title, _) in enumerate(columns):
            axes = figure.add_subplot(rows, len(columns), row * len(columns) + col + 1)
            axes.imshow(cells[row][col])
            axes.set_axis_off()
            if row == 0:
                axes.set_title(title, fontsize="small")
    figure.subplots_adjust(wspace=0.03, hspace=0.03)
    return save_figure(figure, stem)


def _cell(path: Path, height: int) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        width = round(image.width * height / image.height)
        return np.asarray(image.resize((width, height), Image.NEAREST if image.height < height else Image.BILINEAR))
