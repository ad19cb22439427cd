"""`generate`: decode W or W+ codes with a generator checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.assets import resolve_file
from e4e_bench.checkpoints import load_generator
from e4e_bench.arguments import add_noise_arguments, positive_int
from e4e_bench.devices import resolve_device
from e4e_bench.io import check_output_folder
from e4e_bench.latents import decode_to_files, noise_from, read_codes

EXAMPLE = "example: python -m e4e_bench generate --generator stylegan2-car-config-f.pt --latents codes.npy --out images/"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="decode W / W+ codes to images",
        description="Decode codes [N, style_dim] (W) or [N, n_latent, style_dim] (W+) to DIR/00000.png ... "
        "at full generator resolution, uncropped.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--generator", type=resolve_file, required=True,
                        help="rosinality .pt or official e4e/pSp checkpoint, or an asset name (e.g. toy-generator)")
    parser.add_argument("--latents", type=Path, required=True, help=".npy of codes")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_noise_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="codes decoded at once (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    device = resolve_device(args.device)
    generator, _ = load_generator(args.generator, device)
    codes = read_codes(args.latents, generator)
    noise = noise_from(args.noise, len(codes), generator)
    paths = decode_to_files(generator, codes, args.out, noise, args.seed, args.batch_size)
    print(f"wrote {len(paths)} images to {args.out}")
    return 0
