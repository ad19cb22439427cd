"""`lec`: Latent Editing Consistency (e4e's metrics/LEC.py) of any registered inversion method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from e4e_bench.arguments import add_chosen_method_options, add_method_arguments, method_keywords, positive_int
from e4e_bench.editing import SPEC_HELP
from e4e_bench.errors import E4EBenchError
from e4e_bench.pipeline.inversion import inverted_batches
from e4e_bench.methods import build_method, images_for, resolve_domain
from e4e_bench.metrics.latent_proximity import latent_proximity
from e4e_bench.metrics.lec import PROTOCOL_BATCH_SIZE
from e4e_bench.metrics.registry import MetricContext, get_metric

EXAMPLES = """\
examples:
  python -m e4e_bench lec --method e4e --checkpoint e4e_ffhq_encode.pt --images ffhq_test/ \\
      --direction interfacegan:age.pt --factor 3
  python -m e4e_bench lec --method e4e --checkpoint e4e_cars_encode.pt --images cars_test/ \\
      --direction ganspace:cars_pca.pt:viewpoint --factor 2
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lec",
        help="Latent Editing Consistency of an inversion method",
        description="Prints a JSON object with key `lec`: per image, encode, edit by +F*d, decode with the "
        "generator's stored noise, re-encode, undo the edit, L2 over the whole code; means per batch "
        "(incomplete last batch dropped), batch means within the 1st-99th percentile averaged (e4e "
        "metrics/LEC.py). GANSpace directions are applied in their additive form. Lower is better. Beside it, "
        "`latent_proximity` says how far the method's codes of these images are from W (layer spread, "
        "Mahalanobis distance to mapped samples).\n\n" + SPEC_HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_method_arguments(parser)
    parser.add_argument("--images", type=Path, required=True, help="folder of png/jpg/webp images (sorted by name)")
    parser.add_argument("--direction", required=True, metavar="SPEC", help="see above")
    parser.add_argument("--factor", type=float, required=True, help="F: the edit's strength (e4e's example: 3)")
    parser.add_argument("--batch-size", type=positive_int, default=PROTOCOL_BATCH_SIZE, help="protocol batch (e4e: 8)")
    parser.set_defaults(func=main)


def add_deferred_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    add_chosen_method_options(parser, argv)


def main(args: argparse.Namespace) -> int:
    domain = resolve_domain(args.domain, args.checkpoint)
    method = build_method(args.method, domain=domain, **method_keywords(args))
    paths = images_for(method, args.images)
    if len(paths) < args.batch_size:
        raise E4EBenchError(
            f"LEC needs at least one full batch of {args.batch_size} images; {args.images} has {len(paths)}"
        )
    paths = paths[: len(paths) // args.batch_size * args.batch_size]  # e4e's drop_last: the rest is never scored
    context = MetricContext(device=method.generator.device, domain=domain)
    metric = get_metric("lec").build(context, direction=args.direction, factor=args.factor, batch_size=args.batch_size)
    distances, codes = [], []
    for _, inversion in inverted_batches(method, paths, args.batch_size):
        distances.append(metric.per_image(method, inversion))
        codes.append(inversion.codes.detach().cpu())
    result = metric.result(torch.cat(distances))
    scored = torch.cat(codes)[: result.details["n_images"]]
    report = {
        "lec": result.value,
        "method": method.name,
        "domain": domain.name,
        "direction": args.direction,
        "factor": args.factor,
        **{key: result.details[key] for key in ("n_images", "n_batches", "kept_batches", "protocol")},
        "latent_proximity": latent_proximity(scored, method.generator).summary(),
    }
    print(json.dumps(report, indent=2))
    return 0
