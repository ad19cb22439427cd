"""Command-line entry point: `python -m e4e_bench SUBCOMMAND` (or `e4e-bench SUBCOMMAND`)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from e4e_bench.errors import E4EBenchError

COMMANDS = (
    "generate",
    "invert",
    "assets",
    "edit",
    "lec",
    "train",
    "metrics",
)


def selected_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not a flag)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every subcommand's parser; flags that need a method package (`add_deferred_arguments`) are
    added only to the subcommand being run, so that `--help` imports no method."""
    chosen = selected_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="e4e-bench",
        description="StyleGAN inversion benchmark: e4e, pSp and W/W+ projection under one pinned metrics pipeline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"e4e_bench.commands.{name}")
        command.register(subparsers)
        if name == chosen and hasattr(command, "add_deferred_arguments"):
            command.add_deferred_arguments(subparsers.choices[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args) or 0
    except E4EBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept, rerun with --resume where the command has it", file=sys.stderr)
        return 130
