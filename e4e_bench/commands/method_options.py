"""Command-line options of the optimization baselines (opt_w, opt_wplus), shared by `invert` and `run`.

The defaults are the official projectors' (rosinality and NVIDIA `projector.py`).
"""

from __future__ import annotations

import argparse
from typing import Any


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def add_projector_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimization baselines (opt_w, opt_wplus)")
    group.add_argument("--steps", type=positive_int, default=1000,
                       help="optimisation steps per batch (default 1000; e.g. 20 for a smoke run)")
    group.add_argument("--lr", type=_non_negative_float, default=0.1,
                       help="peak Adam learning rate, ramped up over 5%% and down over 25%% of the steps (default 0.1)")
    group.add_argument("--lpips-weight", type=_non_negative_float, default=1.0,
                       help="weight of LPIPS-VGG at 256 px (default 1); its ImageNet VGG16 backbone comes from "
                       "`python -m e4e_bench assets fetch lpips-vgg`; 0 runs offline without it")
    group.add_argument("--mse-weight", type=_non_negative_float, default=0.0,
                       help="weight of the pixel MSE at 256 px (default 0)")
    group.add_argument("--noise-regularize", type=_non_negative_float, default=1e5,
                       help="weight of the noise maps' autocorrelation penalty (default 1e5)")
    group.add_argument("--optimize-noise", action=argparse.BooleanOptionalAction, default=True,
                       help="optimise the per-layer noise maps too (default on); off uses the stored noise")


def projector_options(args: argparse.Namespace) -> dict[str, Any]:
    """The projector's options from parsed arguments, as `build_method(..., options=...)` takes them."""
    return {
        "steps": args.steps,
        "lr": args.lr,
        "lpips_weight": args.lpips_weight,
        "mse_weight": args.mse_weight,
        "noise_regularize": args.noise_regularize,
        "optimize_noise": args.optimize_noise,
    }
