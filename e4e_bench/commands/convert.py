"""`convert SRC.pkl --out G.pt`: an NVIDIA StyleGAN2 pickle to a rosinality-format generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.io import check_output_file

WHICH = ("G_ema", "G")

EXAMPLE = "example: python -m e4e_bench convert network-snapshot-025000.pkl --out my_generator.pt"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="NVIDIA StyleGAN2 .pkl (ada-pytorch or TF release) to a generator .pt",
        description="Read a stylegan2-ada-pytorch snapshot or a TensorFlow StyleGAN2 pickle without running any "
        "code it carries, infer the architecture from the weights and write a rosinality-format generator "
        "checkpoint (g_ema, latent_avg, constructor arguments) that every command loads.",
        epilog=EXAMPLE,
    )
    parser.add_argument("source", type=Path, metavar="SRC.pkl", help="NVIDIA pickle")
    parser.add_argument("--out", type=Path, required=True, help="generator checkpoint to write")
    parser.add_argument("--which", choices=WHICH, default="G_ema",
                        help="G_ema: the moving average (Gs in TF pickles), the one to use; G: the training generator")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.nvidia.convert import convert_pickle  # torch-heavy; --help must not pay for it

    check_output_file(args.out, "--out")
    conversion = convert_pickle(args.source, args.out, args.which)
    print("\n".join(conversion.summary()))
    print(f"wrote: {args.out}")
    return 0
