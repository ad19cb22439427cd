"""Results files: strict JSON (NaN and infinities become null) and per-image CSV tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from e4e_bench.io import atomic_write


def json_safe(value: Any) -> Any:
    """NaN/inf become None (null) at any depth, so that the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_per_image_csv(path: Path, table: Mapping[Any, Mapping[str, float]], first_columns: Sequence[str] = ("image",)) -> None:
    """CSV ``image,<metric>...``, written atomically: metric columns sorted, a value an image lacks is empty,
    one it could not score is nan. With several `first_columns` the keys are tuples, e.g. (method, image)."""
    columns = sorted({name for values in table.values() for name in values})
    with atomic_write(path, "w") as stream:
        writer = csv.writer(stream)
        writer.writerow([*first_columns, *columns])
        for key, values in table.items():
            keys = key if len(first_columns) > 1 else (key,)
            writer.writerow([*keys, *(values[name] if name in values else "" for name in columns)])
