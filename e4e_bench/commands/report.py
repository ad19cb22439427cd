"""`report`: rebuild tables and plots from stored run directories alone; several runs merge into one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import positive_int
from e4e_bench.io import check_output_folder
from e4e_bench.reporting.run_results import GRID_IMAGES

EXAMPLES = """examples:
  python -m e4e_bench report runs/toy
  python -m e4e_bench report runs/cars runs/faces --out reports/both"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="rebuild tables and plots from run directories",
        description="Writes tables/results.{md,tex,csv} and plots/*.{png,pdf}, and tables/bench.{json,csv,md} from "
        "directories holding a bench.json. With one run they go into the run directory; with several (merged, one row "
        "per run and method) into --out.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, help="output folder (default: the run directory, when there is one)")
    parser.add_argument("--grid-images", type=positive_int, default=GRID_IMAGES,
                        help=f"rows of the qualitative grid (default {GRID_IMAGES})")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.errors import E4EBenchError
    from e4e_bench.reporting.report import build_report

    if args.out is None and len(args.run_dirs) > 1:
        raise E4EBenchError("several runs are merged into one report: pass --out DIR")
    out = args.out or args.run_dirs[0]
    check_output_folder(out, "--out" if args.out else "RUN_DIR")
    paths = build_report(args.run_dirs, out, args.grid_images)
    for table in ("results.md", "bench.md"):
        if out / "tables" / table in paths:
            print((out / "tables" / table).read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
