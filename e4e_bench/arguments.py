"""Command-line argument types and the option groups several commands share.

A method's own options are flags made from its options class (`invert --method M --help` lists
them); only the flags a user gives are passed on, so the method's defaults (for its domain) hold
for the rest, and a flag of another method is an unknown argument, never silently ignored.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from e4e_bench.assets import resolve_file
from e4e_bench.devices import resolve_device
from e4e_bench.domains import DOMAINS
from e4e_bench.networks.generator import NOISE_MODES


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def distinct_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated names, got {text!r}")
    return names


def positive_ints(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers: "1,8,32" -> (1, 8, 32)."""
    try:
        return tuple(positive_int(item) for item in distinct_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None


def positive_floats(text: str) -> tuple[float, ...]:
    """Comma-separated distinct numbers above 0: "0.5,1,2" -> (0.5, 1.0, 2.0)."""
    try:
        values = tuple(float(item) for item in distinct_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(value > 0 and value < float("inf") for value in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct numbers above 0, got {text!r}")
    return tuple(sorted(values))


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    """--noise MODE and --seed, for commands that decode codes with a bare generator."""
    parser.add_argument("--noise", choices=NOISE_MODES, default="const",
                        help="const: the checkpoint's stored noise maps (default); random: new ones from --seed; none. "
                        "To decode an inversion with its own per-image state (a projection's optimised noise), "
                        "pass --inversion OUT instead of --generator")
    parser.add_argument("--seed", type=int, default=0, help="seed of --noise random (default 0)")


def add_codes_arguments(parser: argparse.ArgumentParser, latents_help: str) -> None:
    """--generator with --latents, or --inversion OUT (`pipeline.decoding.codes_to_decode` reads them)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--generator", type=resolve_file,
                        help="rosinality .pt or official e4e/pSp checkpoint, or an asset name (e.g. toy-generator)")
    source.add_argument("--inversion", type=Path, metavar="OUT",
                        help="an `invert` output folder (or a run's methods/<method>/): its method decodes each code "
                        "with its image's own decoder state")
    parser.add_argument("--latents", type=Path, help=latents_help)


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """--method, --domain, --checkpoint, --generator, --device; the method's own options come from
    `add_chosen_method_options`."""
    parser.add_argument("--method", required=True, help="a registered inversion method (`python -m e4e_bench "
                        "invert --method M --help` lists M's options; unknown names list the registered ones)")
    parser.add_argument("--domain", choices=sorted(DOMAINS), help="default: read from an e4e/pSp checkpoint")
    parser.add_argument("--checkpoint", type=resolve_file, help="the method's own checkpoint, for methods that take one "
                        "(e4e, pSp: brings its own decoder)")
    parser.add_argument("--generator", type=resolve_file, help="generator checkpoint; overrides a checkpoint's decoder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")


def chosen_method(argv: list[str]) -> str | None:
    """The value of --method in `argv`, if any."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--method")
    return probe.parse_known_args(argv)[0].method


def add_chosen_method_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """The flags of the options of the method named by --method in `argv` (none for an unknown method:
    building it then names the registered ones)."""
    from e4e_bench.methods import METHODS, resolve
    from e4e_bench.methods.options import add_option_flags

    name = chosen_method(argv)
    if name in METHODS:
        entry = METHODS[name]
        per_domain = "; ".join(f"{domain}: " + ", ".join(f"{k}={v}" for k, v in options.items())
                               for domain, options in entry.domain_options.items())
        add_option_flags(parser, resolve(entry.options), f"{name} options ({entry.summary})",
                         f"defaults for some domains differ: {per_domain}" if per_domain else None, name)


def add_option_assignments(parser: argparse.ArgumentParser) -> None:
    """--option [METHOD.]NAME=VALUE (repeatable), for commands that build several methods."""
    parser.add_argument("--option", action="append", default=[], metavar="[METHOD.]NAME=VALUE",
                        help="a method option (repeatable): opt_w.steps=500 sets opt_w's; steps=500 sets it for every "
                        "method named that has it; `python -m e4e_bench invert --method M --help` lists M's")


def assigned_options(texts: list[str], methods: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The options that `--option` texts give each of `methods` (those with none left out); the names
    that are not registered methods are left to the command to refuse."""
    from e4e_bench.methods import METHODS, resolve
    from e4e_bench.methods.options import parse_assignments

    known = {name: resolve(METHODS[name].options) for name in methods if name in METHODS}
    return {name: given for name, given in parse_assignments(texts, known).items() if given}


def method_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """`build_method` keywords (besides name and domain) from `add_method_arguments` and the method's option flags."""
    from e4e_bench.methods import METHODS, resolve
    from e4e_bench.methods.options import given_options

    return {
        "checkpoint": args.checkpoint,
        "generator": args.generator,
        "device": resolve_device(args.device),
        "options": given_options(args, resolve(METHODS.lookup(args.method).options), args.method),
    }
