"""What a run directory holds, as data: the summary `report`, `check` and the notebook read.

`summary.json` layout (one object)::

    {"format": "e4e-bench-run/1", "domain": "toy", "label": "toy",
     "metrics": {"l2": {"higher_is_better": false, "protocol": "...", "title": "L2"}, ...},
     "methods": {"e4e": {"status": "ok", "reason": null,
                         "values": {"l2": {"mean": 0.01, "std": 0.004, "n": 64, "failures": 0}, ...}}, ...}}

`per_image.csv` has one row per method and image: `method,image,<metric>...`. `config.json` records
the folder of the inverted images under `"data"`: relative to the run directory when the run made
it (`inputs/`, `aligned/`), so a copied or moved run reads its own, else absolute (an external
`--data` folder).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.reporting.results_files import json_safe

FORMAT = "e4e-bench-run/1"
RUN_INPUT_FOLDERS = ("inputs", "aligned")  # where a run puts the images it makes
GRID_IMAGES = 6  # default rows of the qualitative grid
SUMMARY_FILE = "summary.json"
PER_IMAGE_FILE = "per_image.csv"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    protocol: str
    title: str = ""  # the column title in tables (summaries written before titles were stored: the key)
    unit: str = ""  # what one value is, for axes
    std_is_noise: bool = False  # the std is the measurement's own noise (timings), not a spread over images
    setting: bool = False  # not a measurement but the setting of one beside it (the strength of a best value)


@dataclass(frozen=True)
class Value:
    mean: float
    std: float = math.nan
    n: int = 0
    failures: int = 0
    reference: float = math.nan  # the value of the metric's reference population (w_mahalanobis: samples of W)


@dataclass
class MethodResult:
    status: str = "ok"  # "ok" or "failed"
    reason: str | None = None  # why it failed
    values: dict[str, Value] = field(default_factory=dict)


@dataclass
class RunSummary:
    domain: str
    label: str
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    methods: dict[str, MethodResult] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(json_safe({"format": FORMAT, **asdict(self)}), indent=2, allow_nan=False) + "\n"

    def save(self, run_dir: Path) -> None:
        write_text(run_dir / SUMMARY_FILE, self.to_json())

    @classmethod
    def load(cls, run_dir: Path) -> "RunSummary":
        path = Path(run_dir) / SUMMARY_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise E4EBenchError(f"{run_dir} is not a run directory: {SUMMARY_FILE} is missing") from None
        except (OSError, json.JSONDecodeError) as err:
            raise E4EBenchError(f"{path}: cannot read the run summary ({err})") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: object, path: Path) -> "RunSummary":
        """The summary in `data` (a summary.json's object), `path` naming where it came from in errors."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise E4EBenchError(f"{path}: not an e4e-bench run summary (format {FORMAT!r} expected)")
        try:
            return cls(
                domain=data["domain"],
                label=data["label"],
                metrics={name: MetricInfo(**info) for name, info in data["metrics"].items()},
                methods={
                    name: MethodResult(m["status"], m["reason"], {k: value_from_json(v) for k, v in m["values"].items()})
                    for name, m in data["methods"].items()
                },
            )
        except (KeyError, TypeError) as err:
            raise E4EBenchError(f"{path}: malformed run summary ({err})") from None


def value_from_json(data: dict) -> Value:
    """A Value read back: JSON's null (an undefined std, a failed metric) is NaN again."""
    return Value(**{key: math.nan if value is None else value for key, value in data.items()})


def recorded_path(path: Path, run_dir: Path) -> str:
    """A path as config.json records it: relative to the run directory when inside it, else absolute."""
    path, run_dir = Path(path).resolve(), Path(run_dir).resolve()
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def inputs_folder(run_dir: Path, config: dict) -> Path:
    """The folder of a run's inverted images, from config.json's `"data"`.

    A run recorded before paths were stored relative holds the absolute path of its first
    location; when that names one of the run's own folders, the copy's own is read, never the
    original's.
    """
    recorded = Path(config["data"])
    if not recorded.is_absolute():
        return Path(run_dir) / recorded
    own = Path(run_dir) / recorded.name
    return own if recorded.name in RUN_INPUT_FOLDERS and own.is_dir() else recorded
