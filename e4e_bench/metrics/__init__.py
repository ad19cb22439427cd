"""Evaluation metrics. Importing this package registers every metric in ``registry.METRICS``: the
built-in modules below, then those of installed plug-ins (entry-point group ``e4e_bench.metrics``)."""

import importlib

from e4e_bench.plugins import METRIC_GROUP, load_plugins

from e4e_bench.metrics.registry import (
    KINDS,
    METRICS,
    MetricContext,
    MetricResult,
    MetricSpec,
    get_metric,
    parse_metric_list,
    register_metric,
)

# Modules whose @register_metric decorators fill the registry; append a module to add its metrics.
METRIC_MODULES = ("distortion", "msssim", "identity", "identity_dlib", "fid", "swd", "lec", "latent_proximity")

for _module in METRIC_MODULES:
    importlib.import_module(f"e4e_bench.metrics.{_module}")
load_plugins(METRIC_GROUP, lambda module, point: None)  # importing a plug-in's module registers its metrics

__all__ = [
    "KINDS",
    "METRICS",
    "METRIC_MODULES",
    "MetricContext",
    "MetricResult",
    "MetricSpec",
    "get_metric",
    "parse_metric_list",
    "register_metric",
]
