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
    keys = list(dict.fromkeys(key for s in summaries for m in s.methods.values() for key in m.values))
    means, stds = {}, {}
    for summary in summaries:
        for method, result in summary.methods.items():
            label = _row_label(summary, method, several)
            means[label] = {key: result.values[key].mean if key in result.values else math.nan for key in keys}
            stds[label] = {key: result.values[key].std if key in result.values else math.nan for key in keys}
    return pd.DataFrame.from_dict(means, orient="index", columns=keys), pd.DataFrame.from_dict(stds, orient="index", columns=keys), keys


def titles(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """Summary key -> column title, as the run stored it (the key for summaries that stored none)."""
    return {key: info.title or key for summary in summaries for key, info in summary.metrics.items()}


def _directions(summaries: Sequence[RunSummary]) -> dict[str, bool]:
    return {key: info.higher_is_better for summary in summaries for key, info in summary.metrics.items()}


def _best_rows(means: pd.DataFrame, stds: pd.DataFrame, higher_is_better: dict[str, bool],
               noisy: set[str]) -> dict[str, set[str]]:
    """Per column, the rows holding the best value. A column whose std is its measurement's noise
    (`noisy`, timings) bolds its best only when it beats the runner-up by more than both spreads."""
    best = {}
    for key in means.columns:
        column = means[key].dropna()
        if len(column) < 2:
            continue
        ranked = column.sort_values(ascending=not higher_is_better.get(key, False))
        if key in noisy:
            first, second = ranked.index[:2]
            margin = stds.at[first, key] + stds.at[second, key]
            if not abs(ranked.iloc[0] - ranked.iloc[1]) > (margin if math.isfinite(margin) else math.inf):
                continue
        best[key] = set(column.index[column == ranked.iloc[0]])
    return best


def _cells(summaries: Sequence[RunSummary], bold) -> pd.DataFrame:
    means, stds, keys = table_frame(summaries)
    directions = _directions(summaries)
    noisy = {key for summary in summaries for key, info in summary.metrics.items() if info.std_is_noise}
    best = _best_rows(means, stds, directions, noisy)
    headings = titles(summaries)
    text = pd.DataFrame(index=means.index)
    for key in keys:
        arrow = "↑" if directions.get(key, False) else "↓"
        column = []
        for label in means.index:
            mean, std = means.at[label, key], stds.at[label, key]
            cell = format_number(mean) if not math.isfinite(std) else f"{format_number(mean)} ± {format_number(std)}"
            column.append(bold(cell) if label in best.get(key, ()) else cell)
        text[f"{headings.get(key, key)} {arrow}"] = column
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
    headings = titles(summaries)
    lines += [f"{headings.get(key, key)}: {protocol}" for key, protocol in protocols.items()]
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
