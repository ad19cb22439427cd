"""`toy-data`: write the procedural toy cars of the embedded `toy` domain as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.commands.method_options import positive_int

EXAMPLE = "example: python -m e4e_bench toy-data --n 1000 --out toy/test --split test"
CHUNK = 256


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "toy-data",
        help="write procedural toy-car images",
        description="Writes DIR/00000.png ...: letterboxed square frames (the scene in the middle 3/4 of the rows), "
        "a pure function of --seed, --split and the image number; train and test never share a seed.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--n", type=positive_int, required=True, help="number of images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0, the seed of the shipped toy domain)")
    parser.add_argument("--size", type=positive_int, default=32, help="frame side in pixels (default 32, the toy generator's)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from e4e_bench.data import save_images
    from e4e_bench.toy.render import toy_images

    for start in tqdm(range(0, args.n, CHUNK), desc="toy-data", unit="chunk"):
        count = min(CHUNK, args.n - start)
        pixels = toy_images(count, args.size, seed=args.seed, split=args.split, start=start)
        save_images(pixels.float() / 127.5 - 1, [args.out / f"{start + i:05d}.png" for i in range(count)])
    print(f"wrote {args.n} {args.split} images to {args.out}")
    return 0
