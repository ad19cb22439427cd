"""The figures of a sweep: each method's distortion-editability curve with the Pareto front over all
of them (`frontier`), and each method's distortion against its time per image (`quality_vs_time`).

A curve joins a method's dial points in dial order, each labelled with its value; the point of a
plain run (the method's default) is ringed. The Pareto front is the staircase of the points that no
other point beats on both axes (lower distortion and lower LEC).
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from e4e_bench.reporting.plots import save_figure
from e4e_bench.reporting.sweep_results import SweepSummary
from e4e_bench.reporting.tables import titles

EDITABILITY = "lec"
TIME = "seconds_per_image"


def distortion_key(sweep: SweepSummary) -> str:
    """LPIPS where every point has it, else L2 (as the trade-off plot)."""
    values = [result.values for result in sweep.points.methods.values()]
    return "lpips" if values and all("lpips" in v for v in values) else "l2"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (both lower is better), by the first."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def _coordinates(sweep: SweepSummary, rows: list[str], x_key: str, y_key: str) -> list[tuple[str, float, float]]:
    out = []
    for row in rows:
        values = sweep.points.methods[row].values
        if x_key in values and y_key in values and math.isfinite(values[x_key].mean) and math.isfinite(values[y_key].mean):
            out.append((row, values[x_key].mean, values[y_key].mean))
    return out


def _curves(axes, sweep: SweepSummary, x_key: str, y_key: str) -> list[tuple[float, float]]:
    """Draw each method's curve, its values labelled and its default ringed; return every point drawn."""
    drawn = []
    for k, (method, rows) in enumerate(sweep.curves().items()):
        points = _coordinates(sweep, rows, x_key, y_key)
        if not points:
            continue
        colour = f"C{k % 10}"
        dial = sweep.dials[points[0][0]].dial
        axes.plot([x for _, x, _ in points], [y for _, _, y in points], "-o", color=colour, markersize=4,
                  label=f"{method} ({dial})" if dial else method)
        for row, x, y in points:
            info = sweep.dials[row]
            if info.value is not None:
                axes.annotate(f"{info.value:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7,
                              color=colour)
            if info.default:
                axes.plot([x], [y], "o", markersize=11, markerfacecolor="none", markeredgecolor=colour)
        drawn += [(x, y) for _, x, y in points]
    return drawn


def _figure(sweep: SweepSummary, x_key: str, y_key: str, labels: tuple[str, str], title: str, note: str,
            empty: str):
    """A figure of every method's curve from `x_key` to `y_key`; (figure, axes, the points drawn)."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.add_subplot()
    drawn = _curves(axes, sweep, x_key, y_key)
    if not drawn:
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title)
    axes.grid(alpha=0.3, which="both")
    axes.annotate(f"labels: dial values; ringed: a plain run's point; {note}", (0, -0.14), xycoords="axes fraction",
                  va="top", fontsize="small")
    return figure, axes, drawn


def frontier_plot(sweep: SweepSummary, edit: str | None, stem: Path) -> list[Path]:
    distortion = distortion_key(sweep)
    figure, axes, drawn = _figure(
        sweep, distortion, EDITABILITY,
        (f"{titles([sweep.points]).get(distortion, distortion)} (distortion) ↓", "LEC (editability) ↓"),
        "Distortion–editability frontier: each method along its dial", f"LEC edit: {edit or 'not recorded'}",
        f"no point has both {distortion} and LEC")
    if drawn:
        front = pareto_front(drawn)
        axes.step([x for x, _ in front], [y for _, y in front], where="post", color="black", alpha=0.5,
                  linestyle="--", linewidth=1, label="Pareto front")
        axes.legend(fontsize="small")
    return save_figure(figure, stem)


def quality_vs_time_plot(sweep: SweepSummary, stem: Path) -> list[Path]:
    distortion = distortion_key(sweep)
    figure, axes, drawn = _figure(
        sweep, TIME, distortion,
        ("seconds per image to reach the point (log) ↓", f"{titles([sweep.points]).get(distortion, distortion)} (distortion) ↓"),
        "Distortion against time per image", "time: median over the timed batches",
        "no point was timed (fewer than two batches after the warm-up one)")
    if drawn:
        axes.set_xscale("log")
        axes.legend(fontsize="small")
    return save_figure(figure, stem)
