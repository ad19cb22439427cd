"""`check`: the drift gate for CI; compares a run's summary with a stored baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.io import check_output_file

EXAMPLES = """examples:
  python -m e4e_bench check runs/toy --baseline results/baselines/toy.json
  python -m e4e_bench check runs/toy --baseline results/baselines/toy.json --rtol 0.05
  python -m e4e_bench check runs/toy --baseline results/baselines/toy.json --update

exit status: 0 no drift, 1 drift (or a baseline value the run lacks), 2 malformed baseline or a
metric measured under another protocol."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="compare a run with a baseline; exit 1 on drift",
        description="Per method and metric: |now - baseline| <= atol + rtol * |baseline| is OK; beyond it, a move "
        "in the metric's bad direction is DRIFT, in its good direction BETTER (not a failure).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--baseline", type=Path, required=True, metavar="FILE", help="baseline JSON")
    parser.add_argument("--rtol", type=float, help="relative tolerance for every metric (overrides the file's)")
    parser.add_argument("--atol", type=float, help="absolute tolerance for every metric (overrides the file's)")
    parser.add_argument("--update", action="store_true", help="write the run's values as the new baseline")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.reporting.drift import compare, drift_table, make_baseline, read_baseline, write_baseline
    from e4e_bench.reporting.run_results import RunSummary

    summary = RunSummary.load(args.run_dir)
    if args.update:
        check_output_file(args.baseline, "--baseline")
        tolerances = read_baseline(args.baseline)["tolerances"] if args.baseline.exists() else None
        write_baseline(make_baseline(summary, tolerances), args.baseline)
        print(f"wrote baseline {args.baseline} from {args.run_dir}")
        return 0
    rows = compare(summary, read_baseline(args.baseline), args.rtol, args.atol)
    print(drift_table(rows), end="")
    bad = [r for r in rows if r.status in ("DRIFT", "MISSING")]
    better = [r for r in rows if r.status == "BETTER"]
    if better:
        print(f"{len(better)} values improved beyond tolerance; record them with --update")
    print(f"{len(bad)} of {len(rows)} values drifted" if bad else f"no drift in {len(rows)} values")
    return 1 if bad else 0
