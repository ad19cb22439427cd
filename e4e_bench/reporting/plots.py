"""The figures of a run, each as PNG and PDF: the distortion-editability trade-off, per-image
distributions and the qualitative grid (input | inversions | edits).

Only matplotlib's object-oriented API is used (a `Figure` with its own canvas), so drawing never
touches pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


# What the per-image values are measured in, for the distribution plot's axes.
MARKERS = "osD^v<>p*h"


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def tradeoff_plot(summaries: Sequence[RunSummary], edits: Sequence[str | None], stem: Path) -> list[Path]:
    """Distortion (LPIPS, else L2) against LEC, e4e's framing: a point per run and method with ±1 std
    bars over images and its N in the legend, the edit under the axes; a colour per method, a marker per run."""
    several = len(summaries) > 1
    points = [(i, method, r) for i, s in enumerate(summaries) for method, r in s.methods.items() if "lec" in r.values]
    distortion = "lpips" if points and all("lpips" in r.values for _, _, r in points) else "l2"
    points = [(i, method, r) for i, method, r in points if distortion in r.values]
    colours = {method: f"C{k}" for k, method in enumerate(dict.fromkeys(method for _, method, _ in points))}
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot()
    for run, method, result in points:
        x, y = result.values[distortion], result.values["lec"]
        n = f"N={y.n}" if x.n == y.n else f"N={x.n}, LEC {y.n}"
        label = f"{summaries[run].label} / {method}" if several else method
        axes.errorbar(x.mean, y.mean, xerr=_finite(x.std), yerr=_finite(y.std), fmt=MARKERS[run % len(MARKERS)],
                      color=colours[method], capsize=3, label=f"{label} ({n})")
    axes.set_xlabel(f"{titles(summaries).get(distortion, distortion)} (distortion) ↓")
    axes.set_ylabel("LEC (editability) ↓")
    axes.set_title("Distortion–editability trade-off")
    if points:
        axes.legend(fontsize="small")
    else:
        axes.text(0.5, 0.5, f"no method has both {distortion} and LEC", ha="center", va="center", transform=axes.transAxes)
    axes.grid(alpha=0.3)
    named = {s.label: edit for s, edit in zip(summaries, edits, strict=True) if edit}
    if len(set(named.values())) > 1:
        edit_words = "; ".join(f"{label} {edit}" for label, edit in named.items())
    else:
        edit_words = next(iter(named.values()), "not recorded")
    axes.annotate(f"error bars: ±1 std over images; LEC edit: {edit_words}", (0, -0.16), xycoords="axes fraction",
                  va="top", fontsize="small")
    return save_figure(figure, stem)


def _finite(std: float) -> float | None:
    return std if math.isfinite(std) else None


def distribution_plot(per_image: pd.DataFrame, summaries: Sequence[RunSummary], stem: Path) -> list[Path]:
    """Box plots of every per-image metric, one box per method, each titled with its better direction
    and its unit on the axis."""
    higher_is_better = {key: info.higher_is_better for s in summaries for key, info in s.metrics.items()}
    headings = titles(summaries)
    units = {key: info.unit for s in summaries for key, info in s.metrics.items()}
    metrics = [key for key in headings if key in per_image.columns]
    methods = list(dict.fromkeys(per_image["method"]))
    panel_width = max(3.2, 0.45 * len(methods) + 1.2)
    figure = Figure(figsize=(panel_width * max(1, len(metrics)), 3.6))
    for index, key in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        data = [per_image.loc[per_image["method"] == m, key].dropna().to_numpy() for m in methods]
        axes.boxplot(data, tick_labels=methods)
        axes.set_title(f"{headings[key]} {_arrow(higher_is_better.get(key, False))}")
        axes.set_ylabel(units.get(key, ""))
        for label in axes.get_xticklabels():
            label.set(rotation=40, ha="right", rotation_mode="anchor")
    figure.tight_layout()
    return save_figure(figure, stem)


def qualitative_grid(columns: Sequence[tuple[str, Sequence[Path]]], rows: Sequence[str], stem: Path,
                     cell_height: int = 96) -> list[Path]:
    """A row per image, named on the left, a column per (title, files): e.g. input | e4e | pSp | e4e + edit."""
    cells = [[_cell(paths[row], cell_height) for _, paths in columns] for row in range(len(rows))]
    width = max(c.shape[1] for row in cells for c in row)
    figure = Figure(figsize=(1.2 * len(columns) * width / cell_height + 0.6, 1.2 * len(rows) + 0.4))
    for row, name in enumerate(rows):
        for col, (title, _) in enumerate(columns):
            axes = figure.add_subplot(len(rows), len(columns), row * len(columns) + col + 1)
            axes.imshow(cells[row][col])
            axes.set_axis_off()
            if row == 0:
                axes.set_title(title, fontsize="small")
            if col == 0:
                axes.text(-0.05, 0.5, name, transform=axes.transAxes, ha="right", va="center", fontsize="small")
    figure.subplots_adjust(wspace=0.03, hspace=0.03)
    return save_figure(figure, stem)


def _cell(path: Path, height: int) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        width = round(image.width * height / image.height)
        return np.asarray(image.resize((width, height), Image.NEAREST if image.height < height else Image.BILINEAR))
