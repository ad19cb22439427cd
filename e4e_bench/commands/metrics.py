"""`metrics`: compare a folder of reconstructions (or samples) with a folder of real images."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from e4e_bench.assets import cache_home, fetch_command
from e4e_bench.arguments import positive_int
from e4e_bench.devices import resolve_device
from e4e_bench.domains import get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import check_output_file
from e4e_bench.networks.lpips_net import BACKBONE_ASSETS
from e4e_bench.metrics import METRICS, MetricContext, MetricSpec, get_metric, parse_metric_list
from e4e_bench.metrics.registry import IMAGE_KINDS
from e4e_bench.metrics.evaluate import evaluate_folders
from e4e_bench.metrics.fid import FID_ASSET
from e4e_bench.metrics.identity import INSIGHTFACE_ARCFACE_ASSET
from e4e_bench.networks.moco import MOCO_ASSET
from e4e_bench.reporting.results_files import json_safe, write_per_image_csv

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("l2", "lpips", "msssim")  # less those whose weights are not here
LOCAL_WEIGHTS = (FID_ASSET, MOCO_ASSET, INSIGHTFACE_ARCFACE_ASSET, *BACKBONE_ASSETS.values())  # files --weights can replace
EXAMPLES = """examples:
  python -m e4e_bench metrics --real data/test --fake runs/e4e/images --metrics l2,lpips,msssim,id,fid,swd --domain faces
  python -m e4e_bench metrics --real real/ --fake fake/ --metrics swd --seed 1 --per-image scores.csv
"""


def register(subparsers) -> None:
    listing = ", ".join(f"{name} ({spec.kind})" for name, spec in sorted(METRICS.items()) if spec.kind in IMAGE_KINDS)
    parser = subparsers.add_parser(
        "metrics",
        help="image metrics between a real and a fake folder, as one JSON object",
        description="Paired metrics match files by name without extension and report the mean over images; "
        "set metrics (fid, swd) use each folder whole. Prints one JSON object: each metric's number under its "
        f"name, std/N/protocol/per-level values under 'details', inputs under 'meta'. Metrics: {listing}.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real", type=Path, required=True, help="folder of real (target) images")
    parser.add_argument("--fake", type=Path, required=True, help="folder of reconstructed or generated images")
    parser.add_argument("--metrics", help=f"comma-separated (default: those of {','.join(DEFAULT_METRICS)} whose weights "
                        "are present; the others are listed with their fetch command)")
    parser.add_argument("--domain", help="resize both sets to this domain's evaluation size; chooses the id network")
    parser.add_argument("--per-image", type=Path, metavar="FILE", help="write per-image paired values as CSV")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="image pairs scored at once (default 16)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.add_argument("--seed", type=int, default=0, help="seed of SWD's patches and directions")
    parser.add_argument(
        "--weights", action="append", default=[], metavar="ASSET=PATH",
        help=f"a local file for a metric network instead of the assets cache ({', '.join(LOCAL_WEIGHTS)}), "
        "e.g. inception-fid=pt_inception.pth",
    )
    parser.add_argument("--random-weights", action="store_true", help="metric networks with random weights (smoke tests)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached real-set FID statistics")
    parser.set_defaults(func=main)


def parse_weights(items: list[str]) -> dict[str, Path]:
    weights = {}
    for item in items:
        asset, separator, path = item.partition("=")
        if not separator or not asset or not path:
            raise E4EBenchError(f"--weights {item!r} must look like ASSET=PATH, e.g. inception-fid=/data/pt_inception.pth")
        if asset not in LOCAL_WEIGHTS:
            raise E4EBenchError(f"--weights {asset}: only {', '.join(LOCAL_WEIGHTS)} can be given as local files")
        if not Path(path).is_file():
            raise E4EBenchError(f"--weights {asset}: {path} is not a file")
        weights[asset] = Path(path)
    return weights


def available(names: Sequence[str], context: MetricContext) -> tuple[list[MetricSpec], dict[str, str]]:
    """The metrics among `names` whose weights are here, and for each of the others the command that fetches them."""
    specs, unavailable = [], {}
    for spec in map(get_metric, names):
        absent = context.missing_weights(spec)
        if absent:
            unavailable[spec.name] = fetch_command(absent)
        else:
            specs.append(spec)
    return specs, unavailable


def main(args: argparse.Namespace) -> int:
    context = MetricContext(
        device=resolve_device(args.device),
        domain=get_domain(args.domain) if args.domain else None,
        pretrained=not args.random_weights,
        seed=args.seed,
        cache_dir=None if args.no_cache else cache_home() / "fid_stats",
        weights=parse_weights(args.weights),
    )
    if args.metrics is None:
        specs, unavailable = available(DEFAULT_METRICS, context)
        for name, command in unavailable.items():
            log.warning("%s left out: its weights are not here; `%s` enables it", name, command)
    else:
        specs, unavailable = parse_metric_list(args.metrics, kinds=IMAGE_KINDS), {}
    if args.per_image is not None and not any(spec.kind == "paired" for spec in specs):
        raise E4EBenchError("--per-image needs at least one paired metric (e.g. l2, lpips, msssim, id)")
    if args.per_image is not None:
        check_output_file(args.per_image, "--per-image")
    summary, per_image, meta = evaluate_folders(specs, args.real, args.fake, context, batch_size=args.batch_size)
    if args.per_image is not None:
        write_per_image_csv(args.per_image, per_image)
    print(json.dumps(json_safe(summary.as_json() | {"meta": meta | {"unavailable": unavailable}}), indent=2))
    return 0
