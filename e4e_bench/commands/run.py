"""`run`: the benchmark itself — every method inverts the same images, one pipeline scores them all."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.assets import resolve_file
from e4e_bench.arguments import add_option_assignments, assigned_options, distinct_names, positive_floats, positive_int
from e4e_bench.domains import DOMAINS
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import check_output_folder
from e4e_bench.reporting.run_results import GRID_IMAGES

EXAMPLES = """examples:
  python -m e4e_bench run --methods e4e,psp,opt_w,opt_wplus --domain toy
  python -m e4e_bench run --methods e4e,psp,opt_w --domain cars --data cars_test/ --checkpoint psp=psp_cars.pt \\
      --option opt_w.steps=200
  python -m e4e_bench run --methods opt_w,opt_wplus --domain toy --option steps=50 --option opt_w.lr=0.05
  python -m e4e_bench run --methods e4e,opt_w --domain toy --out runs/toy --resume
  python -m e4e_bench run --domain toy --n-images 16 --out runs/toy16 --label "toy N=16"
  python -m e4e_bench run --methods e4e,psp,opt_w,opt_wplus --domain toy --sweep --edit-strengths 1,2,3

exit status: 0 every method finished, 1 some method failed (its reason is in the tables), 2 the run
could not start (each missing file is named with the command that gets it)."""


def checkpoint_pair(text: str) -> tuple[str, Path]:
    method, sep, path = text.partition("=")
    if not sep or not method or not path:
        raise argparse.ArgumentTypeError(f"expected METHOD=PATH, got {text!r}")
    return method, resolve_file(path)


def run_label(text: str) -> str:
    """A label names the run's rows and its files in a merged report (`qualitative_<label>.png`)."""
    if not text.strip() or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"a label is a non-empty name without / or \\, got {text!r}")
    return text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the full benchmark: invert, evaluate, tables and plots",
        description="Inverts one image set with every method and scores it with L2, LPIPS, MS-SSIM, ID, FID, SWD "
        "(of reconstructions and of edited reconstructions), LEC, latent proximity and seconds per image. Writes "
        "OUT/config.json, summary.json, per_image.csv, tables/, plots/ and methods/<method>/.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", type=distinct_names,
                        help="comma-separated registered methods, plug-ins included (default: the built-in ones, "
                        "e4e,psp,opt_w,opt_wplus)")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="toy", help="default toy (ships with the package)")
    parser.add_argument("--data", type=Path, help="folder of test images (default for toy: its rendered test split)")
    parser.add_argument("--checkpoint", type=checkpoint_pair, action="append", default=[], metavar="METHOD=PATH",
                        help="a method's checkpoint instead of the domain's registered one (repeatable)")
    parser.add_argument("--generator", type=resolve_file, help="generator checkpoint for every method")
    parser.add_argument("--metrics", type=distinct_names, help="comma-separated subset of l2,lpips,msssim,id,fid,swd,lec "
                        "(default: every metric whose weights are present; the others are listed with their fetch command)")
    parser.add_argument("--n-images", type=positive_int, help="the first N images in file-name order (toy default 64)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.add_argument("--out", type=Path, help="run directory (default runs/<domain>)")
    parser.add_argument("--resume", action="store_true", help="continue OUT, reusing finished work (same settings only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the seeded metrics (SWD) and of random weights (default 0); a method's own seed is its option, e.g. --option opt_w.seed=3")
    parser.add_argument("--align", action="store_true",
                        help="faces: FFHQ-align the photos of --data first (256 px, kept in OUT/aligned/); needs the faces extra")
    parser.add_argument("--random-weights", action="store_true",
                        help="metric networks with random weights: a smoke run without downloads, not real numbers")
    parser.add_argument("--label", type=run_label,
                        help="the run's name in tables and plots, where merged reports tell runs apart (default: OUT's name)")
    parser.add_argument("--grid-images", type=positive_int, default=GRID_IMAGES,
                        help=f"rows of the qualitative grid (default {GRID_IMAGES})")
    parser.add_argument("--sweep", action="store_true",
                        help="also score every method at each value of its dial (e4e's offset scale, a projection's "
                        "steps, ...) and its edit at several strengths: sweep.json, tables/sweep.*, tables/strengths.*, "
                        "plots/frontier.*, plots/quality_vs_time.*")
    parser.add_argument("--edit-strengths", type=positive_floats, metavar="S,S,...",
                        help="with --sweep: the edit strengths to score (default: 0.5, 1 and 1.5 times the domain's)")
    add_option_assignments(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.methods.registry import default_methods
    from e4e_bench.pipeline.runner import Benchmark, RunSettings
    from e4e_bench.reporting.tables import markdown_table

    if args.edit_strengths and not args.sweep:
        raise E4EBenchError("--edit-strengths is a setting of the sweep: add --sweep")
    methods = args.methods or default_methods()
    settings = RunSettings(
        methods=methods,
        domain=args.domain,
        out=args.out or Path("runs") / args.domain,
        data=args.data,
        n_images=args.n_images,
        checkpoints=dict(args.checkpoint),
        generator=args.generator,
        metrics=args.metrics,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        options=assigned_options(args.option, methods),  # unknown method names: plan_run says
        random_weights=args.random_weights,
        align=args.align,
        label=args.label,
        grid_images=args.grid_images,
        sweep=args.sweep,
        edit_strengths=args.edit_strengths,
    )
    check_output_folder(settings.out)
    summary = Benchmark(settings, resume=args.resume).run()
    if summary is None:  # another rank of a torchrun job; rank 0 reports
        return 0
    print(markdown_table([summary]))
    results = list(summary.methods.values())
    if settings.sweep:
        from e4e_bench.reporting.sweep_results import SweepSummary

        results += SweepSummary.load(settings.out).points.methods.values()
    print(f"results in {settings.out}: summary.json, per_image.csv, tables/, plots/" + (", sweep.json" if args.sweep else ""))
    return 0 if all(result.status == "ok" for result in results) else 1
