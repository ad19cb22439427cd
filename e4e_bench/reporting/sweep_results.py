"""What `run --sweep` adds to a run directory: `sweep.json`, read by `report` and `check`.

    {"format": "e4e-bench-sweep/1",
     "points": <a run summary (summary.json's layout) with a row `<method>@<dial value>` per point>,
     "strengths": <a run summary with a row per method: its default point's edit metrics at each
                   strength (`<metric>@x<s>`), the best of them (`<metric>_best`) and where (`_best_strength`)>,
     "dials": {"e4e@0.25": {"method": "e4e", "dial": "offset scale", "value": 0.25, "default": false}, ...}}

A method without a dial has one row, `<method>@plain`, with `dial` and `value` null.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.reporting.run_results import RunSummary

FORMAT = "e4e-bench-sweep/1"
SWEEP_FILE = "sweep.json"
STRENGTHS_ROW = "{method}@strengths"  # the strengths' rows when merged with the run's for `check`


@dataclass(frozen=True)
class PointInfo:
    method: str
    dial: str | None  # what the value means ("offset scale"); None: the method has no dial
    value: float | None
    default: bool  # the value of a plain run


@dataclass
class SweepSummary:
    points: RunSummary
    strengths: RunSummary
    dials: dict[str, PointInfo]  # row of `points` -> what it is

    def save(self, run_dir: Path) -> None:
        data = {"format": FORMAT, "points": json.loads(self.points.to_json()),
                "strengths": json.loads(self.strengths.to_json()),
                "dials": {row: dataclasses.asdict(info) for row, info in self.dials.items()}}
        write_text(Path(run_dir) / SWEEP_FILE, json.dumps(data, indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> "SweepSummary | None":
        """The run's sweep; None when the run was not a sweep."""
        path = Path(run_dir) / SWEEP_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise E4EBenchError(f"{path}: cannot read the sweep ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise E4EBenchError(f"{path}: not an e4e-bench sweep (format {FORMAT!r} expected)")
        try:
            return cls(RunSummary.from_json(data["points"], path), RunSummary.from_json(data["strengths"], path),
                       {row: PointInfo(**info) for row, info in data["dials"].items()})
        except (KeyError, TypeError) as err:
            raise E4EBenchError(f"{path}: malformed sweep ({err})") from None

    def curves(self) -> dict[str, list[str]]:
        """Method -> its rows, in dial order."""
        curves: dict[str, list[str]] = {}
        for row, info in sorted(self.dials.items(), key=lambda item: (item[1].value is not None, item[1].value or 0)):
            curves.setdefault(info.method, []).append(row)
        return {method: curves[method] for method in dict.fromkeys(info.method for info in self.dials.values())}

    def merged_into(self, summary: RunSummary) -> RunSummary:
        """The run's summary with the sweep's rows beside its own (what `check` compares with a baseline)."""
        merged = RunSummary(summary.domain, summary.label, dict(summary.metrics), dict(summary.methods))
        merged.metrics.update(self.points.metrics)
        merged.metrics.update(self.strengths.metrics)
        merged.methods.update(self.points.methods)
        merged.methods.update({STRENGTHS_ROW.format(method=m): r for m, r in self.strengths.methods.items()})
        return merged


def value_text(value: float | None) -> str:
    """A dial value as rows and folders name it: up to ten significant digits, `plain` for no dial."""
    return "plain" if value is None else f"{value:.10g}"


def point_row(method: str, value: float | None) -> str:
    return f"{method}@{value_text(value)}"
