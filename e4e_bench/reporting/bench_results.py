"""The files `bench` writes: `bench.json` (a list of rows), `bench.csv` and `bench.md`, all from the same rows.

A row is one (method, device, dtype, batch size) measurement; a batch that did not fit in memory
is a row with status "out of memory" and empty numbers. The per-row notes (timing, weights, what
peak memory means on the device, where the peak FLOP/s figure comes from) go under the Markdown
table once each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.reporting.results_files import json_safe

BENCH_FILE = "bench.json"
OK = "ok"
OUT_OF_MEMORY = "out of memory"
# (row key, Markdown title, scale): the table's columns
TABLE_COLUMNS = (
    ("method", "method", None),
    ("device", "device", None),
    ("device_name", "device name", None),
    ("dtype", "dtype", None),
    ("batch_size", "batch", None),
    ("images_per_s", "images/s", 1.0),
    ("latency_ms_median", "median ms/batch", 1.0),
    ("latency_ms_p90", "p90 ms/batch", 1.0),
    ("seconds_per_step", "s/step", 1.0),
    ("peak_memory_bytes", "peak MiB", 1 / 2**20),
    ("gflop_per_image", "GFLOP/image", 1.0),
    ("peak_fraction", "of peak", 1.0),
    ("max_abs_diff_to_fp32", "max |diff| to fp32", 1.0),
    ("status", "status", None),
)
NOTE_KEYS = ("timing", "weights", "peak_memory_kind", "peak_source", "cpu_bf16")


def rounded(value: Any, scale: float | None) -> Any:
    """Three significant digits for reading (the JSON and CSV keep full precision)."""
    if scale is None or value is None or pd.isna(value):
        return value
    return float(f"{value * scale:.3g}")


def bench_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table (columns without any value left out), then each distinct note once."""
    frame = pd.DataFrame([{title: rounded(row.get(key), scale) for key, title, scale in TABLE_COLUMNS} for row in rows])
    frame = frame.dropna(axis="columns", how="all")
    frame = frame.astype(object).where(frame.notna(), None)  # an empty cell, not "nan" (missingval covers None only)
    notes = dict.fromkeys(f"{key.replace('_', ' ')}: {row[key]}" for row in rows for key in NOTE_KEYS if row.get(key))
    return frame.to_markdown(index=False, missingval="") + "\n\n" + "".join(f"- {note}\n" for note in notes)


def write_bench(rows: Sequence[dict[str, Any]], folder: Path, stem: str = "bench") -> list[Path]:
    """`stem`.json (the rows, strict JSON), `stem`.csv (every key a column) and `stem`.md."""
    paths = [folder / f"{stem}.json", folder / f"{stem}.csv", folder / f"{stem}.md"]
    write_text(paths[0], json.dumps(json_safe(list(rows)), indent=2) + "\n")
    write_text(paths[1], pd.DataFrame(list(rows)).to_csv(index=False))
    write_text(paths[2], bench_markdown(rows))
    return paths


def read_bench(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise E4EBenchError(f"{path}: cannot read the bench results ({err})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "method" in row for row in rows):
        raise E4EBenchError(f"{path}: not a bench.json (a list of rows, each with a method)")
    return rows
