"""Plug-ins: packages installed beside e4e-bench that add methods or metrics through entry points.

A package declares, in its `pyproject.toml`::

    [project.entry-points."e4e_bench.methods"]
    nearest = "my_package.entries:NEAREST"     # a `MethodEntry`

    [project.entry-points."e4e_bench.metrics"]
    sharpness = "my_package.metrics"            # a module whose @register_metric calls register

    [project.entry-points."e4e_bench.assets"]
    weights = "my_package.assets"               # a module whose register_asset calls add its files

A plug-in that fails to load, or whose name is taken, costs one logged line naming its package;
everything else keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger(__name__)

METHOD_GROUP = "e4e_bench.methods"
METRIC_GROUP = "e4e_bench.metrics"
ASSET_GROUP = "e4e_bench.assets"


def package_of(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "an unknown package"


def load_plugins(group: str, accept: Callable[[Any, EntryPoint], None]) -> None:
    """Load every entry point of `group` and pass what it names to `accept`; a failure in either is
    one error line naming the package and the entry point."""
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            accept(point.load(), point)
        except Exception as err:  # noqa: BLE001 - a broken plug-in must not take the built-ins down
            log.error("plug-in %s (%s = %s) is not loaded: %s: %s", package_of(point), point.name, point.value,
                      type(err).__name__, err)
