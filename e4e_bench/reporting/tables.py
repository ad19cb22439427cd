"""Paper-style tables of one or more runs: a row per method, mean ± std, the best value in bold.

Markdown, LaTeX (booktabs) and CSV come from one pandas frame; the CSV keeps full precision
(mean and std columns), the others are rounded for reading. N and each metric's protocol go
under the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from e4e_bench.io import write_text
from e4e_bench.reporting.run_results import RunSummary

# (summary key, column title) in the papers' order; a column shows when some method has it.
COLUMNS = (
    ("l2", "L2"),
    ("lpips", "LPIPS"),
    ("lpips_vgg", "LPIPS-VGG"),
    ("msssim", "MS-SSIM"),
    ("id", "ID"),
    ("fid", "FID"),
    ("swd", "SWD"),
    ("fid_edit", "FID-edit"),
    ("swd_edit", "SWD-edit"),
    ("lec", "LEC"),
    ("layer_spread", "W+ spread"),
    ("w_mahalanobis", "Mahal. to W"),
    ("seconds_per_image", "s/img"),
)


def format_number(value: float) -> str:
    """Three significant digits, never scientific notation: 0.0123, 0.456, 52.3, 1234."""
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    decimals = max(0, min(4, 2 - math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def _row_label(summary: RunSummary, method: str, several: bool) -> str:
    return f"{summary.label} / {method}" if several else method


def table_frame(summaries: Sequence[RunSummary]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(means, stds, column keys): one row per (run, method), columns in the papers' order."""
    several = len(summaries) > 1
    keys = [key for key, _ in COLUMNS if any(key in m.values for s in summaries for m in s.methods.values())]
    means, stds = {}, {}
    for summary in summaries:
        for method, result in summary.methods.items():
            label = _row_label(summary, method, several)
            means[label] = {key: result.values[key].mean if key in result.values else math.nan for key in keys}
            stds[label] = {key: result.values[key].std if key in result.values else math.nan for key in keys}
    return pd.DataFrame.from_dict(means, orient="index", columns=keys), pd.DataFrame.from_dict(stds, orient="index", columns=keys), keys


def _directions(summaries: Sequence[RunSummary]) -> dict[str, bool]:
    return {key: info.higher_is_better for summary in summaries for key, info in summary.metrics.items()}


def _best_rows(means: pd.DataFrame, higher_is_better: dict[str, bool]) -> dict[str, set[str]]:
    best = {}
    for key in means.columns:
        column = means[key].dropna()
        if len(column) > 1:
            target = column.max() if higher_is_better.get(key, False) else column.min()
            best[key] = set(column.index[column == target])
    return best


def _cells(summaries: Sequence[RunSummary], bold) -> pd.DataFrame:
    means, stds, keys = table_frame(summaries)
    directions = _directions(summaries)
    best = _best_rows(means, directions)
    titles = {key: title for key, title in COLUMNS}
    text = pd.DataFrame(index=means.index)
    for key in keys:
        arrow = "↑" if directions.get(key, False) else "↓"
        column = []
        for label in means.index:
            mean, std = means.at[label, key], stds.at[label, key]
            cell = format_number(mean) if not math.isfinite(std) else f"{format_number(mean)} ± {format_number(std)}"
            column.append(bold(cell) if label in best.get(key, ()) else cell)
        text[f"{titles[key]} {arrow}"] = column
    failed = {
        _row_label(s, method, len(summaries) > 1): result.reason
        for s in summaries for method, result in s.methods.items() if result.status != "ok"
    }
    if failed:
        text["status"] = [f"failed: {failed[label]}" if label in failed else "ok" for label in means.index]
    text.index.name = "method"
    return text


def footnotes(summaries: Sequence[RunSummary]) -> list[str]:
    """N per run and metric, then every metric's protocol."""
    lines = []
    for summary in summaries:
        counts = sorted({v.n for m in summary.methods.values() for v in m.values.values() if v.n})
        lines.append(f"{summary.label}: domain {summary.domain}, N = {', '.join(map(str, counts)) or '0'} images")
    protocols = {key: info.protocol for s in summaries for key, info in s.metrics.items()}
    titles = dict(COLUMNS)
    lines += [f"{titles.get(key, key)}: {protocol}" for key, protocol in protocols.items()]
    return lines


def markdown_table(summaries: Sequence[RunSummary]) -> str:
    table = _cells(summaries, lambda cell: f"**{cell}**").to_markdown()
    return table + "\n\n" + "\n".join(f"- {line}" for line in footnotes(summaries)) + "\n"


def latex_table(summaries: Sequence[RunSummary]) -> str:
    cells = _cells(summaries, lambda cell: f"\\textbf{{{cell}}}").map(lambda cell: cell.replace("±", "$\\pm$"))
    cells.columns = [c.replace("↑", "$\\uparrow$").replace("↓", "$\\downarrow$") for c in cells.columns]
    body = cells.to_latex(escape=False, column_format="l" + "c" * len(cells.columns))
    body = body.replace("_", "\\_")
    notes = "\n".join(f"% {line}" for line in footnotes(summaries))
    return f"{notes}\n{body}"


def csv_table(summaries: Sequence[RunSummary]) -> str:
    means, stds, keys = table_frame(summaries)
    frame = pd.concat([means.add_suffix("_mean"), stds.add_suffix("_std")], axis=1)
    frame = frame[[f"{key}_{part}" for key in keys for part in ("mean", "std")]]
    frame.index.name = "method"
    return frame.to_csv()


def write_tables(summaries: Sequence[RunSummary], folder: Path, stem: str = "results") -> list[Path]:
    paths = [folder / f"{stem}.md", folder / f"{stem}.tex", folder / f"{stem}.csv"]
    for path, text in zip(paths, (markdown_table(summaries), latex_table(summaries), csv_table(summaries)), strict=True):
        write_text(path, text)
    return paths
