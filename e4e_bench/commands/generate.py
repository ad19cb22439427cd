"""`generate`: decode W or W+ codes with a generator checkpoint, or an inversion with its own method."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import add_codes_arguments, add_noise_arguments, positive_int
from e4e_bench.devices import resolve_device
from e4e_bench.io import check_output_folder
from e4e_bench.latents import decode_to_files

EXAMPLES = """examples:
  python -m e4e_bench generate --generator stylegan2-car-config-f.pt --latents codes.npy --out images/
  python -m e4e_bench generate --inversion inv/ --out images/     # an `invert` output, decoded exactly again"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="decode W / W+ codes to images",
        description="Decode codes [N, style_dim] (W) or [N, n_latent, style_dim] (W+) to DIR/00000.png ... "
        "at full generator resolution, uncropped: with a bare --generator, or with --inversion OUT (an `invert` "
        "output or a run's methods/<method>/), whose method decodes each code with its image's own decoder state "
        "(a projection's optimised noise, ...), which regenerates the inversion's reconstructions exactly.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_codes_arguments(parser, ".npy of codes (with --inversion: default OUT/latents.npy, one row per image of its "
                        "names.txt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_noise_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="codes decoded at once (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    from e4e_bench.pipeline.decoding import codes_to_decode

    source = codes_to_decode(args.generator, args.inversion, args.latents, resolve_device(args.device), args.noise,
                             args.seed)
    paths = decode_to_files(source.batches(source.codes), len(source.codes), args.out, args.batch_size)
    print(f"wrote {len(paths)} images to {args.out}")
    return 0
