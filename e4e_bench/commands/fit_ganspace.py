"""`fit-ganspace`: a GANSpace PCA of a generator's W space, saved in e4e's `*_pca.pt` layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.assets import resolve_file
from e4e_bench.arguments import positive_int

EXAMPLE = "example: python -m e4e_bench fit-ganspace --generator toy_generator.pt --out toy_ganspace_pca.pt"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit-ganspace",
        help="fit a GANSpace PCA of a generator's W space",
        description="IncrementalPCA of mapped samples z ~ N(0, I) (seeded); writes {comp [K,1,D], std [K], mean [1,D]}, "
        "the layout of e4e's cars_pca.pt, usable as `--direction ganspace:FILE:K:START:END`.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--generator", type=resolve_file, required=True,
                        help="rosinality .pt or official e4e/pSp checkpoint, or an asset name (e.g. toy-generator)")
    parser.add_argument("--out", type=Path, required=True, help="the PCA file to write")
    parser.add_argument("--samples", type=positive_int, default=100_000, help="mapped samples (default 100000)")
    parser.add_argument("--components", type=positive_int, default=80, help="components kept (default 80, at most style_dim)")
    parser.add_argument("--seed", type=int, default=0, help="seed of z (default 0)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.checkpoints import load_generator, save_checkpoint
    from e4e_bench.editing.ganspace import fit_pca

    generator, _ = load_generator(args.generator)
    pca = fit_pca(generator, n_samples=args.samples, n_components=args.components, seed=args.seed)
    save_checkpoint(pca.state(), args.out)
    explained = pca.std.square()
    print(f"wrote {len(pca.std)} components of {generator.style_dim}-d W to {args.out}; "
          f"the first five explain {float(explained[:5].sum() / explained.sum()):.0%} of the fitted variance")
    return 0
