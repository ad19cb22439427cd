"""Results files: strict JSON (NaN and infinities become null) and per-image CSV tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping

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


def write_per_image_csv(path: Path, table: Mapping[str, Mapping[str, float]], first_column: str = "image") -> None:
    """CSV ``image,<metric>...`` (metric columns sorted; a value an image lacks is empty), written atomically."""
    columns = sorted({name for values in table.values() for name in values})
    with atomic_write(path, "w") as stream:
        writer = csv.writer(stream)
        writer.writerow([first_column, *columns])
        writer.writerows([image, *(values.get(name, "") for name in columns)] for image, values in table.items())
