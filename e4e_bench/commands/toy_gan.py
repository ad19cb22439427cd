"""`toy-gan`: train the toy domain's StyleGAN2 from scratch (how the shipped `toy-generator` was made)."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.io import check_output_file, check_output_folder

EXAMPLES = """examples:
  python -m e4e_bench toy-gan --out runs/toy_gan --kimg 200
  python -m e4e_bench toy-gan --out runs/toy_gan --kimg 200 --resume
  python -m e4e_bench toy-gan --out runs/toy_gan --export toy_generator.pt"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "toy-gan",
        help="train the toy StyleGAN2 on procedural toy cars",
        description="Trains a small StyleGAN2 (32 px, 64 channels, style_dim 64) on freshly rendered toy cars; "
        "OUT/snapshot.pt holds the whole state (Ctrl-C or SIGTERM save it), OUT/samples/ the EMA samples, "
        "OUT/log.jsonl the losses. --export writes the EMA generator as a rosinality-format checkpoint.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--kimg", type=float, default=200, help="thousands of real images to train on (default 200)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/snapshot.pt")
    parser.add_argument("--export", type=Path, metavar="G.pt", help="only write the EMA generator of OUT/snapshot.pt")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.checkpoints import read_checkpoint
    from e4e_bench.errors import E4EBenchError
    from e4e_bench.toy.gan_training import SNAPSHOT, GANOptions, GANRun, export_generator, train_gan

    if args.export is not None:
        check_output_file(args.export, "--export")
        snapshot = args.out / SNAPSHOT
        if not snapshot.is_file():
            raise E4EBenchError(f"{snapshot} does not exist; train first with `toy-gan --out {args.out}`")
        state = read_checkpoint(snapshot)
        run = GANRun(GANOptions(**state["options"]))
        run.load(state, snapshot)
        export_generator(run, args.export)
        print(f"wrote the EMA generator of step {run.step} ({run.step * run.options.batch / 1000:.1f} kimg) to {args.export}")
        return 0
    check_output_folder(args.out)
    run = train_gan(GANOptions(), args.out, args.kimg, resume=args.resume)
    print(f"trained {run.step} steps; continue with --resume, export with --export G.pt")
    return 0
