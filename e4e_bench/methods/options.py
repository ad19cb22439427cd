"""A method's options, from its frozen options dataclass: command-line flags, `M.NAME=VALUE`
assignments, and the instance a factory receives (domain defaults, then the user's values).

Each field's type annotation says how its text is read (int, float, str, bool, Path, Optional
or Literal of those) and `metadata["help"]` is its help; the default is written once, in the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from e4e_bench.errors import E4EBenchError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def option(default: Any, help: str) -> Any:
    """A field of an options dataclass: its default and the help of its flag."""
    return dataclasses.field(default=default, metadata={"help": help})


def flag_name(option: str) -> str:
    return "--" + option.replace("_", "-")


def option_types(options_class: type) -> dict[str, Any]:
    """Field name -> resolved type annotation."""
    hints = typing.get_type_hints(options_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_class)}


def _plain(kind: Any) -> Any:
    """`X | None` -> X."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


def read_value(kind: Any, text: str) -> Any:
    """`text` as a value of the annotation `kind`; ValueError with what was expected."""
    kind = _plain(kind)
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if text == str(choice):
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}")
    if kind is bool:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError("expected true or false")
    if kind in (int, float, str, Path):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
    raise TypeError(f"no text form for options of type {kind}")


def add_option_flags(parser: argparse.ArgumentParser, options_class: type, title: str,
                     description: str | None = None, method: str = "") -> None:
    """One `--name` flag per field of `options_class`, in an argument group called `title`; a flag
    that is not given is absent from the parsed namespace, so the method's own default holds. An
    option named like one of the command's own flags is refused, naming the method."""
    taken = {action.dest for action in parser._actions} | {"func", "command"}
    group = parser.add_argument_group(title, description)
    for option in dataclasses.fields(options_class):
        if option.name in taken:
            raise E4EBenchError(f"method {method or options_class.__name__} has an option {option.name!r}, a name "
                                f"the command's own flags use; rename the option")
        kind = _plain(option_types(options_class)[option.name])
        help_text = f"{option.metadata.get('help', '')} (default {option_default(option)})".strip()
        kwargs: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = option.name.upper()  # read by `given_options`, so a bad value names the method
        group.add_argument(flag_name(option.name), **kwargs)


def option_default(option: dataclasses.Field) -> Any:
    if option.default is not dataclasses.MISSING:
        return option.default
    return option.default_factory() if option.default_factory is not dataclasses.MISSING else "required"


def given_options(args: argparse.Namespace, options_class: type, method: str) -> dict[str, Any]:
    """The fields of `options_class` given as flags (see `add_option_flags`), read as their types."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(options_class) if hasattr(args, f.name)}
    return {name: value if isinstance(value, bool) else read_option(method, options_class, name, value, flag=True)
            for name, value in given.items()}


def parse_assignments(texts: Sequence[str], methods: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """`["opt_w.steps=500", "steps=20"]` -> per method its options: `M.NAME=VALUE` sets NAME of M;
    `NAME=VALUE` sets NAME of every method in `methods` (name -> options class) that has it."""
    chosen: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for text in texts:
        target, sep, value = text.partition("=")
        if not sep or not target:
            raise E4EBenchError(f"--option {text}: expected METHOD.NAME=VALUE or NAME=VALUE")
        method, dot, name = target.rpartition(".")
        if dot and method not in methods:
            raise E4EBenchError(f"--option {text}: {method!r} is not one of the methods named ({', '.join(methods)})")
        targets = [method] if dot else [m for m, cls in methods.items() if name in option_types(cls)]
        if not targets:
            raise E4EBenchError(f"--option {text}: none of {', '.join(methods)} has an option {name!r}")
        for target_method in targets:
            chosen[target_method][name] = read_option(target_method, methods[target_method], name, value)
    return chosen


def read_option(method: str, options_class: type, name: str, text: str, flag: bool = False) -> Any:
    """The value of option `name` of `method` from `text`; a one-line error naming both otherwise."""
    types = option_types(options_class)
    if name not in types:
        raise E4EBenchError(f"{method} has no option {name!r}; it takes {', '.join(types) or 'no options'}")
    try:
        return read_value(types[name], text)
    except ValueError as err:
        given = f"{flag_name(name)} {text}" if flag else f"{name}={text}"
        raise E4EBenchError(f"{method} option {given}: {err}") from None


def make_options(method: str, options_class: type, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> Any:
    """`options_class(**(defaults | given))`, refusing names it does not have with the method's own list."""
    known = [option.name for option in dataclasses.fields(options_class)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        flags = ", ".join(flag_name(key) for key in unknown)
        takes = ", ".join(flag_name(key) for key in known) or "no options"
        raise E4EBenchError(f"{method} has no option {flags}; it takes {takes}")
    try:
        return options_class(**(dict(defaults) | dict(given)))
    except E4EBenchError as err:
        raise E4EBenchError(f"{method}: {err}") from None
