"""Inversion methods as the harness sees them: the contract (`MethodEntry`, `InversionMethod`,
`Inversion`), the registry of built-ins and plug-ins, their options, and building one by name."""

from e4e_bench.methods.build import build_method, images_for, method_options, resolve_domain
from e4e_bench.methods.contract import (CodesFirstMethod, Dial, Inversion, InversionMethod, IterativeMethod,
                                        MethodEntry, SweepableMethod, WeightSource)
from e4e_bench.methods.registry import METHODS, register_method, resolve

__all__ = [
    "METHODS",
    "CodesFirstMethod",
    "Dial",
    "Inversion",
    "InversionMethod",
    "IterativeMethod",
    "MethodEntry",
    "SweepableMethod",
    "WeightSource",
    "build_method",
    "images_for",
    "method_options",
    "register_method",
    "resolve",
    "resolve_domain",
]
