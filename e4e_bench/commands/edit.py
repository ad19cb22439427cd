"""`edit`: apply an InterFaceGAN / GANSpace / SeFa edit to W or W+ codes and decode them."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import add_codes_arguments, add_noise_arguments, positive_int
from e4e_bench.devices import resolve_device
from e4e_bench.editing import SPEC_HELP, parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import check_output_folder
from e4e_bench.latents import decode_to_files, write_codes

EXAMPLES = """\
examples:
  python -m e4e_bench edit --latents inv/latents.npy --generator stylegan2-car-config-f.pt \\
      --direction ganspace:cars_pca.pt:viewpoint --strength -2 --out edits/viewpoint2
  python -m e4e_bench edit --latents inv/latents.npy --generator stylegan2-ffhq-config-f.pt \\
      --direction interfacegan:age.pt --strength 3 --out edits/age
  python -m e4e_bench edit --latents inv/latents.npy --generator stylegan2-horse-config-f.pt \\
      --direction sefa:0:2:6 --strength 10 --out edits/sefa0
  python -m e4e_bench edit --inversion inv/ --direction sefa:0 --strength 3 --out edits/sefa0
      (an `invert` output: each image edited and decoded with its own decoder state)
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "edit",
        help="edit codes along a direction and decode them",
        description="Edit codes [N, style_dim] (W) or [N, n_latent, style_dim] (W+) along a direction and decode "
        "them (with the generator's stored noise unless --noise says otherwise; with --inversion OUT, by OUT's "
        "method with each image's own decoder state) to DIR/00000.png ... (full resolution, uncropped); the edited "
        "W+ codes go to DIR/latents.npy.\n\n" + SPEC_HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_codes_arguments(parser, ".npy of codes, e.g. OUT/latents.npy of `invert` (the default with --inversion)")
    parser.add_argument("--direction", required=True, metavar="SPEC", help="see above")
    parser.add_argument("--strength", type=float, help="S of the SPEC (default: a named GANSpace edit's own)")
    parser.add_argument(
        "--additive", action="store_true", help="GANSpace: add S*std_K*comp_K instead of setting the coordinate"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_noise_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="codes edited and decoded at once (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    from e4e_bench.pipeline.decoding import codes_to_decode

    source = codes_to_decode(args.generator, args.inversion, args.latents, resolve_device(args.device), args.noise,
                             args.seed)
    codes = source.codes
    direction = parse_direction(args.direction, source.generator)
    strength = args.strength if args.strength is not None else direction.default_strength
    if strength is None:
        raise E4EBenchError(f"direction {args.direction!r} has no default strength; pass --strength S")
    edited = direction.add(codes, strength) if args.additive else direction.apply(codes, strength)
    paths = decode_to_files(source.batches(edited), len(edited), args.out, args.batch_size)
    write_codes(edited, args.out / "latents.npy")
    print(f"edited {len(paths)} codes along {args.direction} (strength {strength:g}) into {args.out}")
    return 0
