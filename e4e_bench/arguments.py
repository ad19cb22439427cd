"""Command-line argument types and the option groups several commands share.

The method options are the methods' own (`ProjectorConfig`'s defaults are the official
projectors'); only the flags a user gives are passed on, so a method refuses options it does not
take (`--steps` with e4e) instead of silently ignoring them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from e4e_bench.assets import resolve_file
from e4e_bench.devices import resolve_device
from e4e_bench.domains import DOMAINS
from e4e_bench.networks.generator import NOISE_MODES
from e4e_bench.methods import METHODS

DEFAULT_METHODS = ("e4e", "psp", "opt_w", "opt_wplus")  # what `run` and `bench` compare unless told
PROJECTOR_FLAGS = ("steps", "lr", "lpips_weight", "mse_weight", "noise_regularize", "optimize_noise")


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


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def noise_source(text: str) -> str | Path:
    """A generator noise mode, or else the path of an inversion's noise folder."""
    return text if text in NOISE_MODES else Path(text)


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    """--noise MODE|DIR and --seed, for commands that decode codes."""
    parser.add_argument("--noise", type=noise_source, default="const", metavar="MODE|DIR",
                        help="const: the checkpoint's stored noise maps (default); random: new ones from --seed; none; "
                        "or DIR, the noise/ folder of an inversion (one file per code, in the order of its names.txt), "
                        "which regenerates a projection's reconstructions exactly")
    parser.add_argument("--seed", type=int, default=0, help="seed of --noise random (default 0)")


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """--method, --domain, --checkpoint, --generator, --device and the projector options."""
    parser.add_argument("--method", required=True, choices=sorted(METHODS), help="inversion method")
    parser.add_argument("--domain", choices=sorted(DOMAINS), help="default: read from an e4e/pSp checkpoint")
    parser.add_argument("--checkpoint", type=resolve_file, help="e4e/pSp checkpoint (brings its own decoder)")
    parser.add_argument("--generator", type=resolve_file, help="generator checkpoint; overrides an encoder checkpoint's decoder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    add_projector_options(parser)


def add_projector_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimization baselines (opt_w, opt_wplus)")
    unset = argparse.SUPPRESS
    group.add_argument("--steps", type=positive_int, default=unset,
                       help="optimisation steps per batch (default 1000; e.g. 20 for a smoke run)")
    group.add_argument("--lr", type=_non_negative_float, default=unset,
                       help="peak Adam learning rate, ramped up over 5%% and down over 25%% of the steps (default 0.1)")
    group.add_argument("--lpips-weight", type=_non_negative_float, default=unset,
                       help="weight of LPIPS-VGG at 256 px (default 1); its ImageNet VGG16 backbone comes from "
                       "`python -m e4e_bench assets fetch lpips-vgg`; 0 runs offline without it")
    group.add_argument("--mse-weight", type=_non_negative_float, default=unset,
                       help="weight of the pixel MSE at 256 px (default 0)")
    group.add_argument("--noise-regularize", type=_non_negative_float, default=unset,
                       help="weight of the noise maps' autocorrelation penalty (default 1e5)")
    group.add_argument("--optimize-noise", action=argparse.BooleanOptionalAction, default=unset,
                       help="optimise the per-layer noise maps too (default on); off uses the stored noise")


def projector_options(args: argparse.Namespace) -> dict[str, Any]:
    """The projector options given on the command line, as `build_method(..., options=...)` takes them."""
    return {name: getattr(args, name) for name in PROJECTOR_FLAGS if hasattr(args, name)}


def method_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """`build_method` keywords (besides name and domain) from the arguments `add_method_arguments` adds."""
    return {
        "checkpoint": args.checkpoint,
        "generator": args.generator,
        "device": resolve_device(args.device),
        "options": projector_options(args),
    }
