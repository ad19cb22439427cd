"""Command-line entry point: `python -m e4e_bench SUBCOMMAND` (or `e4e-bench SUBCOMMAND`)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

from e4e_bench import __version__
from e4e_bench.errors import E4EBenchError

COMMANDS = (
    "generate",
    "align",
    "invert",
    "assets",
    "edit",
    "lec",
    "train",
    "metrics",
    "run",
    "bench",
    "toy-data",
    "toy-gan",
    "report",
    "check",
    "convert",
    "fit-ganspace",
)
OUR_PACKAGES = ("e4e_bench", "encoders", "baselines")


def selected_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not a flag)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every subcommand's parser; flags that need a method package (`add_deferred_arguments`) are
    added only to the subcommand being run, so that `--help` imports no method."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = selected_command(argv)
    parser = argparse.ArgumentParser(
        prog="e4e-bench",
        description="StyleGAN inversion benchmark: e4e, pSp and W/W+ projection under one pinned metrics pipeline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (this project's loggers only)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"e4e_bench.commands.{name.replace('-', '_')}")
        command.register(subparsers)
        if name == chosen and hasattr(command, "add_deferred_arguments"):
            command.add_deferred_arguments(subparsers.choices[name], argv)
    return parser


def configure_logging(verbose: bool) -> None:
    """Our loggers at INFO (DEBUG with -v); third-party ones (PIL, matplotlib, ...) at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(logging.DEBUG if verbose else logging.INFO)


def raise_interrupt(number, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Logging is set up before the parser is built: building it may load plug-ins, which log their failures.
    configure_logging(argv[:1] in (["-v"], ["--verbose"]))
    # SIGTERM (`kill`, Slurm, Kubernetes) stops a command as Ctrl-C does: what is written is kept, and
    # `--resume` continues. Training installs its own handlers for the length of its loop.
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        args = build_parser(argv).parse_args(argv)
        status = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback when Python exits
        return status
    except BrokenPipeError:
        # The reader stopped early (`assets list | head`): not an error of ours. Point stdout at
        # /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what the shell reports for a command ended by a closed pipe
    except E4EBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # a command that saved its state on the way out says where
        detail = str(interrupt) or "files already written are kept (invert, run: rerun with --resume to continue)"
        print(f"interrupted; {detail}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
