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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="e4e-bench",
        description="StyleGAN inversion benchmark: e4e, pSp and W/W+ projection under one pinned metrics pipeline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name in COMMANDS:
        importlib.import_module(f"e4e_bench.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    except KeyboardInterrupt as interrupt:  # a command that saved its state on the way out says where
        detail = str(interrupt) or "files already written are kept (invert: rerun with --resume to continue)"
        print(f"interrupted; {detail}", file=sys.stderr)
        return 130
