"""`toy-data`: write the procedural toy cars of the embedded `toy` domain as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import positive_int
from e4e_bench.io import check_output_folder

EXAMPLE = "example: python -m e4e_bench toy-data --n 1000 --out toy/test --split test"
CHUNK = 256


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "toy-data",
        help="write procedural toy-car images",
        description="Writes DIR/00000.png ...: 4:3 pictures of toy cars (24x32 at the default --size 32), each a pure "
        "function of --seed, --split and its number; train and test never share a seed. --frames writes the "
        "letterboxed square frames the toy generator makes (the picture in the middle 3/4 of the rows).",
        epilog=EXAMPLE,
    )
    parser.add_argument("--n", type=positive_int, required=True, help="number of images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="which split (default train)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0, the seed of the shipped toy domain)")
    parser.add_argument("--size", type=positive_int, default=32, help="frame side in pixels (default 32, the toy generator's)")
    parser.add_argument("--frames", action="store_true", help="write the letterboxed square frames instead of the pictures")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from e4e_bench.data import from_uint8, save_images
    from e4e_bench.toy.render import toy_images, toy_photos

    check_output_folder(args.out)
    for start in tqdm(range(0, args.n, CHUNK), desc="toy-data", unit="chunk"):
        count = min(CHUNK, args.n - start)
        draw = toy_images if args.frames else toy_photos
        pixels = draw(count, args.size, seed=args.seed, split=args.split, start=start)
        save_images(from_uint8(pixels), [args.out / f"{start + i:05d}.png" for i in range(count)])
    print(f"wrote {args.n} {args.split} images to {args.out}")
    return 0
