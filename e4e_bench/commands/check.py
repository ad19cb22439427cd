"""`check`: the drift gate for CI; compares a run's summary with a stored baseline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from e4e_bench.io import check_output_file

if TYPE_CHECKING:
    from e4e_bench.reporting.drift import Comparison
    from e4e_bench.reporting.run_results import RunSummary

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
    parser.add_argument("--update", action="store_true", help="write the run's values as the new baseline, after the "
                        "drift table against the old one and the worse values it accepts")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.reporting.run_results import RunSummary
    from e4e_bench.reporting.sweep_results import SweepSummary

    summary = RunSummary.load(args.run_dir)
    sweep = SweepSummary.load(args.run_dir)
    if sweep is not None:  # a sweep's rows are checked too, where the baseline has them
        summary = sweep.merged_into(summary)
    return update(summary, args) if args.update else gate(summary, args)


def gate(summary: RunSummary, args: argparse.Namespace) -> int:
    from e4e_bench.reporting.drift import compare, drift_table, read_baseline

    rows = compare(summary, read_baseline(args.baseline), args.rtol, args.atol)
    print(drift_table(rows), end="")
    drifted, missing, better = (named(rows, status) for status in ("DRIFT", "MISSING", "BETTER"))
    if better:
        print(f"{len(better)} values improved beyond tolerance; record them with --update")
    print(f"{len(drifted)} of {len(rows)} values drifted: {', '.join(drifted)}" if drifted
          else f"no drift in {len(rows) - len(missing)} values")
    if missing:
        print(f"baseline values the run lacks ({len(missing)}): {', '.join(missing)}")
    return 1 if drifted or missing else 0


def update(summary: RunSummary, args: argparse.Namespace) -> int:
    """Write the run's values as the baseline, after showing what they replace: the drift table, the worse
    values accepted and the baseline values dropped."""
    from e4e_bench.reporting.drift import BaselineError, compare, drift_table, make_baseline, read_baseline, write_baseline

    check_output_file(args.baseline, "--baseline")
    old = read_baseline(args.baseline) if args.baseline.exists() else None
    if old is not None:
        try:
            rows = compare(summary, old, args.rtol, args.atol)
        except BaselineError as err:
            print(f"replacing a baseline the run cannot be compared with: {err}")
        else:
            print(drift_table(rows), end="")
            worse, missing = named(rows, "DRIFT"), named(rows, "MISSING")
            if worse:
                changes = ", ".join(f"{name} {r.baseline:.3g} -> {r.now:.3g}" for name, r in worse.items())
                print(f"worse values accepted ({len(worse)}): {changes}")
            if missing:
                print(f"baseline values the run lacks, dropped ({len(missing)}): {', '.join(missing)}")
    write_baseline(make_baseline(summary, old["tolerances"] if old else None), args.baseline)
    print(f"wrote baseline {args.baseline} from {args.run_dir}")
    return 0


def named(rows: list[Comparison], status: str) -> dict[str, Comparison]:
    """`method/metric` -> comparison, for the rows of one status."""
    return {f"{r.method}/{r.metric}": r for r in rows if r.status == status}
