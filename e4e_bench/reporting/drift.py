"""The drift gate: compare a run's summary with a stored baseline, metric by metric.

A baseline file (`e4e-bench-baseline/1`) holds, per method and metric, the value and the protocol
it was measured under, plus tolerances (`"default"` and per metric). A value may move by
`atol + rtol * |baseline|`; a move beyond that in the metric's bad direction is DRIFT, in its good
direction BETTER (reported, not a failure: `--update` records it). A protocol that differs is
not drift but a different number, and is refused; so is a malformed baseline.
Timings are machine-dependent and never part of a baseline, nor are settings reported beside a
value (the strength at which a sweep's best edit score was found).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.reporting.run_results import RunSummary
from e4e_bench.reporting.tables import format_number

FORMAT = "e4e-bench-baseline/1"
DEFAULT_TOLERANCE = {"rtol": 0.02, "atol": 1e-6}
UNCHECKED = ("seconds_per_image",)


class BaselineError(E4EBenchError):
    """The baseline cannot be compared with the run (malformed, or measured under another protocol)."""


@dataclass(frozen=True)
class Comparison:
    method: str
    metric: str
    baseline: float
    now: float  # NaN when the run lacks the value
    tolerance: float
    higher_is_better: bool

    @property
    def delta(self) -> float:
        return self.now - self.baseline

    @property
    def status(self) -> str:
        if not math.isfinite(self.now):
            return "MISSING"
        if abs(self.delta) <= self.tolerance:
            return "OK"
        improved = (self.delta > 0) == self.higher_is_better
        return "BETTER" if improved else "DRIFT"


def make_baseline(summary: RunSummary, tolerances: dict[str, dict[str, float]] | None = None) -> dict:
    methods = {
        method: {
            key: {"value": value.mean, "protocol": summary.metrics[key].protocol}
            for key, value in result.values.items()
            if key not in UNCHECKED and not summary.metrics[key].setting and math.isfinite(value.mean)
        }
        for method, result in summary.methods.items()
        if result.status == "ok"
    }
    return {"format": FORMAT, "domain": summary.domain, "tolerances": tolerances or {"default": DEFAULT_TOLERANCE},
            "methods": methods}


def write_baseline(baseline: dict, path: Path) -> None:
    write_text(path, json.dumps(baseline, indent=2, allow_nan=False) + "\n")


def read_baseline(path: Path) -> dict:
    try:
        baseline = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BaselineError(f"baseline {path} does not exist; write one with `check RUN_DIR --baseline {path} --update`") from None
    except (OSError, json.JSONDecodeError) as err:
        raise BaselineError(f"{path}: cannot read the baseline ({err})") from None
    problems = []
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        raise BaselineError(f"{path}: not an e4e-bench baseline (format {FORMAT!r} expected)")
    for key in ("domain", "tolerances", "methods"):
        if key not in baseline:
            problems.append(f"no {key!r}")
    for method, metrics in baseline.get("methods", {}).items():
        for metric, entry in metrics.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)) and "protocol" in entry):
                problems.append(f"{method}/{metric} needs a numeric 'value' and a 'protocol'")
    for metric, tolerance in baseline.get("tolerances", {}).items():
        if not (isinstance(tolerance, dict) and set(tolerance) <= {"rtol", "atol"}
                and all(isinstance(v, (int, float)) and v >= 0 for v in tolerance.values())):
            problems.append(f"tolerance {metric!r} must be {{'rtol': R, 'atol': A}} with R, A >= 0")
    if problems:
        raise BaselineError(f"{path}: malformed baseline: {'; '.join(problems)}")
    return baseline


def compare(summary: RunSummary, baseline: dict, rtol: float | None = None, atol: float | None = None) -> list[Comparison]:
    """Every (method, metric) of the baseline against the run; --rtol/--atol override the file's tolerances."""
    if baseline["domain"] != summary.domain:
        raise BaselineError(f"the baseline is for domain {baseline['domain']!r}, the run is {summary.domain!r}")
    tolerances = baseline["tolerances"]
    rows, differing = [], []
    for method, metrics in baseline["methods"].items():
        result = summary.methods.get(method)
        for metric, entry in metrics.items():
            info = summary.metrics.get(metric)
            if info is not None and info.protocol != entry["protocol"]:
                differing.append(f"{metric} (baseline: {entry['protocol']!r}; run: {info.protocol!r})")
                continue
            tol = {**DEFAULT_TOLERANCE, **tolerances.get("default", {}), **tolerances.get(metric, {})}
            tol = {"rtol": tol["rtol"] if rtol is None else rtol, "atol": tol["atol"] if atol is None else atol}
            value = result.values.get(metric) if result is not None and result.status == "ok" else None
            rows.append(Comparison(
                method, metric, entry["value"], value.mean if value is not None else math.nan,
                tol["atol"] + tol["rtol"] * abs(entry["value"]), info.higher_is_better if info else False,
            ))
    if differing:
        raise BaselineError("protocols differ, so the numbers are not comparable: " + "; ".join(sorted(set(differing))))
    return rows


def drift_table(rows: list[Comparison]) -> str:
    header = "| method | metric | baseline | now | delta | tolerance | status |\n|---|---|---|---|---|---|---|\n"
    lines = [
        f"| {r.method} | {r.metric} | {format_number(r.baseline)} | {format_number(r.now)} | "
        f"{'–' if not math.isfinite(r.now) else f'{r.delta:+.3g}'} | {r.tolerance:.3g} | {r.status} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"
