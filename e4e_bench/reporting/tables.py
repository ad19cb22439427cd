"""Paper-style tables of one or more runs: a row per run and method, its N, mean ± std, the best value in bold.

Markdown, LaTeX (booktabs) and CSV come from one pandas frame; the CSV keeps full precision
(mean and std columns), the others are rounded for reading. Under the table: what the cells are,
how bold is chosen, each run's domain, the metrics scored on fewer images than their row's N, the
W reference of the Mahalanobis distance, and each metric's protocol, a clause that several
protocols share written once for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e4e_bench.io import write_text
from e4e_bench.reporting.run_results import MethodResult, RunSummary

CELLS = "cells: mean ± std over the row's N images; a value without ± is one number for the whole set"
BOLD = ("bold: the best mean of a column among the rows of one domain and N (numbers of other images, or of "
        "more of them, as FID and SWD, are not compared), unless all of them share it; an entry that is 0 with "
        "std 0 (0 by construction, as the W+ spread of W codes) is neither bold nor compared")


def format_number(value: float) -> str:
    """Three significant digits, never scientific notation: 0.0123, 0.456, 52.3, 1234; four decimals
    at most (0.0040), unless a value would then print as 0 (a timing's spread of 1.7e-5 s: 0.000017)."""
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{min(decimals, 4 if abs(value) >= 1e-4 else 6)}f}"


@dataclass(frozen=True)
class Row:
    label: str  # the method, or `run label / method` when runs are merged
    domain: str
    result: MethodResult

    @property
    def n(self) -> int:
        """Images behind the row: the most any of its metrics scored (LEC, for one, scores full batches only)."""
        return max((value.n for value in self.result.values.values()), default=0)


def table_rows(summaries: Sequence[RunSummary]) -> list[Row]:
    several = len(summaries) > 1
    rows = [Row(f"{s.label} / {method}" if several else method, s.domain, result)
            for s in summaries for method, result in s.methods.items()]
    assert len({row.label for row in rows}) == len(rows), "runs of one label would merge their rows"
    return rows


def table_frame(summaries: Sequence[RunSummary]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(means, stds, column keys): one row per (run, method), columns in the order the runs scored them
    (the papers' order: distortion, quality, editability, latent proximity, time)."""
    rows = table_rows(summaries)
    keys = list(dict.fromkeys(key for row in rows for key in row.result.values))

    def frame(part: str) -> pd.DataFrame:
        return pd.DataFrame([[getattr(row.result.values[key], part) if key in row.result.values else math.nan
                              for key in keys] for row in rows], index=[row.label for row in rows], columns=keys)

    return frame("mean"), frame("std"), keys


def titles(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """Summary key -> column title, as the run stored it (the key for summaries that stored none)."""
    return {key: info.title or key for summary in summaries for key, info in summary.metrics.items()}


def _directions(summaries: Sequence[RunSummary]) -> dict[str, bool]:
    return {key: info.higher_is_better for summary in summaries for key, info in summary.metrics.items()}


def best_rows(rows: Sequence[Row], means: pd.DataFrame, stds: pd.DataFrame, higher_is_better: dict[str, bool],
              noisy: set[str]) -> dict[str, set[str]]:
    """The labels to bold per column key, by the rule of BOLD; a column whose std is its measurement's
    noise (`noisy`: timings) bolds its best only when it beats the runner-up by more than both spreads."""
    best: dict[str, set[str]] = {}
    for key in means.columns:
        for group in dict.fromkeys((row.domain, row.n) for row in rows):
            column = means.loc[[row.label for row in rows if (row.domain, row.n) == group], key].dropna()
            column = column[(column != 0) | (stds.loc[column.index, key] != 0)]
            if len(column) < 2:
                continue
            ranked = column.sort_values(ascending=not higher_is_better.get(key, False))
            if key in noisy and not within_noise_apart(ranked, stds[key]):
                continue
            winners = set(column.index[column == ranked.iloc[0]])
            if len(winners) < len(column):
                best.setdefault(key, set()).update(winners)
    return best


def within_noise_apart(ranked: pd.Series, stds: pd.Series) -> bool:
    """True when the best of `ranked` beats the second by more than their two spreads (NaN spreads: never)."""
    first, second = ranked.index[:2]
    margin = stds[first] + stds[second]
    return math.isfinite(margin) and abs(ranked.iloc[0] - ranked.iloc[1]) > margin


def _cells(summaries: Sequence[RunSummary], bold) -> pd.DataFrame:
    rows = table_rows(summaries)
    means, stds, keys = table_frame(summaries)
    directions = _directions(summaries)
    noisy = {key for summary in summaries for key, info in summary.metrics.items() if info.std_is_noise}
    settings = {key for summary in summaries for key, info in summary.metrics.items() if info.setting}
    best = best_rows(rows, means[[key for key in keys if key not in settings]], stds, directions, noisy)
    headings = titles(summaries)
    text = pd.DataFrame(index=means.index)
    text["N"] = [str(row.n) if row.n else "–" for row in rows]
    for key in keys:
        arrow = "" if key in settings else " ↑" if directions.get(key, False) else " ↓"
        column = []
        for label in means.index:
            mean, std = means.at[label, key], stds.at[label, key]
            cell = format_number(mean) if not math.isfinite(std) else f"{format_number(mean)} ± {format_number(std)}"
            column.append(bold(cell) if label in best.get(key, ()) else cell)
        text[f"{headings.get(key, key)}{arrow}"] = column
    failed = {row.label: row.result.reason for row in rows if row.result.status != "ok"}
    if failed:
        text["status"] = [f"failed: {failed[label]}" if label in failed else "ok" for label in means.index]
    text.index.name = "method"
    return text


def footnotes(summaries: Sequence[RunSummary]) -> list[str]:
    """What the cells are, the bold rule, each run's domain, short Ns, the W reference, then every protocol."""
    rows = table_rows(summaries)
    if len(summaries) > 1:
        runs = [f"{summary.label}: domain {summary.domain}" for summary in summaries]
    else:
        runs = [f"domain {summaries[0].domain}"]
    headings = titles(summaries)
    return [CELLS, BOLD, *runs, *_fewer_images(rows, headings), *_w_reference(rows, headings),
            *protocol_lines(_protocols(summaries, headings))]


def _fewer_images(rows: Sequence[Row], headings: dict[str, str]) -> list[str]:
    """A line per metric that some row scored on fewer images than its N."""
    lines = []
    for key, title in headings.items():
        short = [f"{row.label} {row.result.values[key].n}" for row in rows
                 if key in row.result.values and 0 < row.result.values[key].n < row.n]
        if short:
            lines.append(f"{title} is over fewer images than the row's N: {', '.join(short)}")
    return lines


def _w_reference(rows: Sequence[Row], headings: dict[str, str]) -> list[str]:
    """What codes drawn from W score in the Mahalanobis column, the yardstick of its values."""
    references = {}
    for row in rows:
        value = row.result.values.get("w_mahalanobis")
        if value is not None and math.isfinite(value.reference):
            references[row.label] = format_number(value.reference)
    if not references:
        return []
    shown = next(iter(references.values())) if len(set(references.values())) == 1 else \
        ", ".join(f"{label} {value}" for label, value in references.items())
    return [f"{headings.get('w_mahalanobis', 'w_mahalanobis')} of held-out samples of W itself (the reference): {shown}"]


def _protocols(summaries: Sequence[RunSummary], headings: dict[str, str]) -> list[tuple[str, str]]:
    """(name, protocol) per metric in column order; a metric measured under several protocols names its runs."""
    keys = list(headings)
    entries = []
    for key in keys:
        by_protocol: dict[str, list[str]] = {}
        for summary in summaries:
            if key in summary.metrics:
                by_protocol.setdefault(summary.metrics[key].protocol, []).append(summary.label)
        title = headings[key]
        for protocol, labels in by_protocol.items():
            entries.append((title if len(by_protocol) == 1 else f"{title} [{', '.join(labels)}]", protocol))
    return entries


def clauses(protocol: str) -> list[str]:
    """A protocol's clauses: its parts between '; ', those inside brackets not counted as separators."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(protocol):
        depth += (char in "([") - (char in ")]")
        if depth == 0 and protocol.startswith("; ", index):
            parts.append(protocol[start:index])
            start = index + 2
    return parts + [protocol[start:]]


def protocol_lines(entries: Sequence[tuple[str, str]]) -> list[str]:
    """`names: clauses` lines: each clause once, under every metric whose protocol has it (the evaluation
    size that every image metric states, for one)."""
    sharing: dict[str, list[str]] = {}
    for name, protocol in entries:
        for clause in clauses(protocol):
            sharing.setdefault(clause, [])
            if name not in sharing[clause]:
                sharing[clause].append(name)
    groups: dict[tuple[str, ...], list[str]] = {}
    for clause, names in sharing.items():
        groups.setdefault(tuple(names), []).append(clause)
    return [f"{', '.join(names)}: {'; '.join(group)}" for names, group in groups.items()]


def markdown_table(summaries: Sequence[RunSummary]) -> str:
    table = _cells(summaries, lambda cell: f"**{cell}**").to_markdown()
    return table + "\n\n" + "\n".join(f"- {line}" for line in footnotes(summaries)) + "\n"


def latex_table(summaries: Sequence[RunSummary]) -> str:
    cells = _cells(summaries, lambda cell: f"\\textbf{{{cell}}}").map(lambda cell: cell.replace("±", "$\\pm$"))
    cells.columns = [c.replace("↑", "$\\uparrow$").replace("↓", "$\\downarrow$") for c in cells.columns]
    # The method as a column of its own: an index name would be a header row of its own.
    body = cells.reset_index().to_latex(index=False, escape=False, column_format="l" + "c" * len(cells.columns))
    body = body.replace("_", "\\_")
    notes = "\n".join(f"% {line}" for line in footnotes(summaries))
    return f"{notes}\n{body}"


def csv_table(summaries: Sequence[RunSummary]) -> str:
    means, stds, keys = table_frame(summaries)
    frame = pd.concat([means.add_suffix("_mean"), stds.add_suffix("_std")], axis=1)
    frame = frame[[f"{key}_{part}" for key in keys for part in ("mean", "std")]]
    frame.insert(0, "n", [row.n for row in table_rows(summaries)])
    frame.index.name = "method"
    return frame.to_csv()


def write_tables(summaries: Sequence[RunSummary], folder: Path, stem: str = "results") -> list[Path]:
    paths = [folder / f"{stem}.md", folder / f"{stem}.tex", folder / f"{stem}.csv"]
    for path, text in zip(paths, (markdown_table(summaries), latex_table(summaries), csv_table(summaries)), strict=True):
        write_text(path, text)
    return paths
