"""The method registry: the built-in methods' entries and those of installed plug-ins, by name.

The built-ins register from their own packages (`BUILTIN_ENTRIES`), exactly as a plug-in does;
both are read on first use, so that importing the harness imports no method.
"""

from __future__ import annotations

import dataclasses
import importlib
from importlib.metadata import EntryPoint
from typing import Any

from e4e_bench.methods.contract import BUILTIN_PACKAGE, MethodEntry
from e4e_bench.errors import E4EBenchError
from e4e_bench.plugins import METHOD_GROUP, load_plugins, package_of
from e4e_bench.registry import Registry

BUILTIN_ENTRIES = ("encoders.entries", "baselines.entries")  # modules whose ENTRIES are registered first


def resolve(reference: Any) -> Any:
    """What a `module:attribute` reference names (importing its module); anything else as it is."""
    if not isinstance(reference, str):
        return reference
    module_name, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise E4EBenchError(f"cannot load {reference!r} ({type(err).__name__}: {err}); is the package that "
                            "registered it installed whole?") from None


def register_method(entry: MethodEntry) -> MethodEntry:
    if not isinstance(entry, MethodEntry):
        raise TypeError(f"expected a MethodEntry, got {type(entry).__name__}")
    return METHODS.register(entry.name, entry)


def _accept_plugin(value: Any, point: EntryPoint) -> None:
    for entry in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(entry, MethodEntry):
            raise TypeError(f"names a {type(entry).__name__}, not a MethodEntry")
        if entry.name in METHODS:
            raise ValueError(f"method {entry.name!r} is already registered by {METHODS[entry.name].package}")
        resolve(entry.options)  # a plug-in whose options cannot be imported is one line now, not a traceback later
        register_method(dataclasses.replace(entry, package=package_of(point)))


def _load() -> None:
    for module in BUILTIN_ENTRIES:
        for entry in importlib.import_module(module).ENTRIES:
            register_method(entry)
    load_plugins(METHOD_GROUP, _accept_plugin)


METHODS: Registry[MethodEntry] = Registry("method", load=_load)


def default_methods() -> tuple[str, ...]:
    """What `run` and `bench` compare unless told: every built-in method (plug-ins are named explicitly)."""
    return tuple(name for name, entry in METHODS.items() if entry.package == BUILTIN_PACKAGE)
