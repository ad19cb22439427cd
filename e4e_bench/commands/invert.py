"""`invert`: images -> W+ codes and reconstructions, for any registered method."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import add_chosen_method_options, add_method_arguments, method_keywords, positive_int
from e4e_bench.pipeline.inversion import invert_folder, write_inversion
from e4e_bench.io import check_output_folder
from e4e_bench.methods import build_method, resolve_domain

EXAMPLE = (
    "examples:\n"
    "  python -m e4e_bench invert --method e4e --checkpoint e4e_cars_encode.pt --domain cars --images cars/ --out inv/\n"
    "  python -m e4e_bench invert --method opt_w --generator stylegan2-car-config-f.pt --domain cars --images cars/ --out w/ --steps 200\n"
    "  python -m e4e_bench invert --method hyperstyle --checkpoint hyperstyle_cars.pt --w-encoder cars_w_encoder.pt "
    "--domain cars --images cars/ --out hs/\n"
    "  python -m e4e_bench invert --method opt_w --help    # opt_w's options"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "invert",
        help="invert images with any registered method (e4e, pSp, opt_w, opt_wplus, plug-ins)",
        description="Writes OUT/latents.npy (float32 [N, n_latent, style_dim], the codes fed to the generator, "
        "latent_avg included, rows in sorted file-name order), OUT/names.txt, OUT/images/<stem>.png "
        "(reconstructions at full generator resolution, cropped to the domain), OUT/state/<stem>.pt (the method's "
        "per-image decoder state, e.g. a projection's optimised noise maps; none for e4e/pSp) and OUT/inversion.json "
        "(the method, files and options, so that `generate --inversion OUT` decodes it again). "
        "`invert --method M --help` lists M's own options.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_method_arguments(parser)
    parser.add_argument("--images", type=Path, required=True, help="folder of png/jpg/webp images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images inverted at once (default 8)")
    parser.add_argument("--align", action="store_true",
                        help="faces: FFHQ-align the photos first (256 px, kept in OUT/aligned/); needs the faces extra")
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument("--resume", action="store_true",
                         help="keep what is already inverted in OUT, batches or a finished inversion (refused if it came "
                         "from another method, file or option)")
    earlier.add_argument("--overwrite", action="store_true",
                         help="replace an earlier inversion in OUT (removes only its latents.npy, names.txt, images/, "
                         "state/, inversion.json and kept batches)")
    parser.set_defaults(func=main)


def add_deferred_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    add_chosen_method_options(parser, argv)


def main(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    domain = resolve_domain(args.domain, args.checkpoint)
    images = args.images
    if args.align:
        from e4e_bench.faces.align import aligned_folder

        images = aligned_folder(args.images, args.out / "aligned", domain)
    method = build_method(args.method, domain=domain, **method_keywords(args))
    result = invert_folder(method, domain, images, args.out, args.batch_size, args.resume, overwrite=args.overwrite)
    write_inversion(result, method, domain, args.out)
    print(f"inverted {len(result.names)} images with {method.name}: {args.out / 'latents.npy'} {list(result.codes.shape)}")
    return 0
