"""Tables, plots, `report` and the `check` drift gate on a hand-made run directory with known numbers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from e4e_bench.cli import main as cli
from e4e_bench.reporting.drift import BaselineError, compare, make_baseline, read_baseline, write_baseline
from e4e_bench.reporting.run_results import MethodResult, MetricInfo, RunSummary, Value
from e4e_bench.reporting.tables import csv_table, format_number, latex_table, markdown_table
from tests.conftest import write_images

PROTOCOLS = {"l2": "MSE of [-1,1] images at 72x96", "msssim": "MS-SSIM 3 scales", "lec": "e4e LEC, toy edit"}


def summary(l2_e4e: float = 0.02, label: str = "toy") -> RunSummary:
    return RunSummary(
        domain="toy",
        label=label,
        metrics={"l2": MetricInfo(False, PROTOCOLS["l2"], "L2"), "msssim": MetricInfo(True, PROTOCOLS["msssim"], "MS-SSIM"),
                 "lec": MetricInfo(False, PROTOCOLS["lec"], "LEC")},
        methods={
            "e4e": MethodResult(values={"l2": Value(l2_e4e, 0.005, 4), "msssim": Value(0.81, 0.02, 4), "lec": Value(3.1, 0.4, 4)}),
            "psp": MethodResult(values={"l2": Value(0.0123, 0.004, 4), "msssim": Value(0.86, 0.01, 4), "lec": Value(9.5, 1.0, 4)}),
            "opt_w": MethodResult(status="failed", reason="no LPIPS weights"),
        },
    )


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    inputs = write_images(tmp_path / "inputs", torch.zeros(3, 3, 24, 32), ["a.png", "b.png", "c.png"])
    for method in ("e4e", "psp"):
        write_images(run / "methods" / method / "images", torch.zeros(3, 3, 24, 32), [p.name for p in inputs])
        write_images(run / "methods" / method / "edits", torch.ones(3, 3, 24, 32), [p.name for p in inputs])
    (run / "config.json").write_text(json.dumps({"data": str(tmp_path / "inputs"), "edit": {"name": "viewpoint"}}))
    (run / "per_image.csv").write_text("method,image,l2,msssim\ne4e,a,0.01,0.8\ne4e,b,0.03,0.82\npsp,a,0.01,0.9\npsp,b,0.02,0.85\n")
    summary().save(run)
    return run


def test_numbers_keep_three_significant_digits():
    assert [format_number(v) for v in (0.012345, 0.4567, 52.34, 1234.4, 0.0, math.nan)] == ["0.0123", "0.457", "52.3", "1234", "0", "–"]


def test_markdown_table_bolds_the_best_value_in_each_metrics_direction():
    table = markdown_table([summary()])
    e4e, psp, opt_w = (next(line for line in table.splitlines() if line.startswith(f"| {m} ")) for m in ("e4e", "psp", "opt_w"))
    assert "**0.0123 ± 0.0040**" in psp and "0.0200 ± 0.0050" in e4e  # L2: lower is better
    assert "**0.860 ± 0.0100**" in psp  # MS-SSIM: higher is better
    assert "**3.10 ± 0.400**" in e4e  # LEC: lower is better
    assert "failed: no LPIPS weights" in opt_w
    assert "L2 ↓" in table and "MS-SSIM ↑" in table
    assert "toy: domain toy, N = 4 images" in table and PROTOCOLS["lec"] in table


def test_latex_table_is_booktabs_with_escaped_names():
    latex = latex_table([summary()])
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "\\textbf{0.0123 $\\pm$ 0.0040}" in latex and "opt\\_w" in latex and "$\\downarrow$" in latex


def test_csv_table_keeps_full_precision():
    lines = csv_table([summary(l2_e4e=0.0212345678)]).splitlines()
    assert lines[0] == "method,l2_mean,l2_std,msssim_mean,msssim_std,lec_mean,lec_std"
    assert lines[1].startswith("e4e,0.0212345678,0.005,")


def test_merged_runs_get_one_row_per_run_and_method():
    table = markdown_table([summary(label="cars"), summary(label="faces")])
    assert "| cars / e4e " in table and "| faces / psp " in table


def test_check_tolerance_and_direction(tmp_path):
    baseline = make_baseline(summary())
    assert "opt_w" not in baseline["methods"]  # failed methods have nothing to guard
    within, worse, better = (compare(summary(l2), baseline) for l2 in (0.02 * 1.01, 0.02 * 1.05, 0.02 * 0.9))
    status = {r.method + "/" + r.metric: r.status for r in within}
    assert set(status.values()) == {"OK"}
    assert next(r for r in worse if r.method == "e4e" and r.metric == "l2").status == "DRIFT"
    assert next(r for r in better if r.method == "e4e" and r.metric == "l2").status == "BETTER"
    assert next(r for r in compare(summary(0.02 * 1.05), baseline, rtol=0.1) if r.metric == "l2").status == "OK"


def test_check_refuses_another_protocol_and_a_malformed_baseline(tmp_path):
    baseline = make_baseline(summary())
    baseline["methods"]["e4e"]["l2"]["protocol"] = "MSE at 256x256"
    with pytest.raises(BaselineError, match="protocols differ"):
        compare(summary(), baseline)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "e4e-bench-baseline/1", "domain": "toy", "tolerances": {}, "methods": {"e4e": {"l2": {"value": "x"}}}}))
    with pytest.raises(BaselineError, match="e4e/l2 needs a numeric 'value'"):
        read_baseline(path)


def test_check_command_exit_status(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert cli(["check", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    assert cli(["check", str(run_dir), "--baseline", str(baseline)]) == 0
    assert "no drift in 6 values" in capsys.readouterr().out
    summary(l2_e4e=0.03).save(run_dir)
    assert cli(["check", str(run_dir), "--baseline", str(baseline)]) == 1
    assert "| e4e | l2 | 0.0200 | 0.0300 | +0.01 |" in capsys.readouterr().out
    data = read_baseline(baseline)
    data["methods"]["e4e"]["l2"]["protocol"] = "other"
    write_baseline(data, baseline)
    assert cli(["check", str(run_dir), "--baseline", str(baseline)]) == 2


def test_a_missing_value_is_not_drift_and_update_names_the_worse_values_it_accepts(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert cli(["check", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    changed = summary(l2_e4e=0.03)
    del changed.methods["psp"].values["lec"]
    changed.save(run_dir)
    capsys.readouterr()
    assert cli(["check", str(run_dir), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "1 of 6 values drifted: e4e/l2\n" in out and "baseline values the run lacks (1): psp/lec\n" in out
    assert cli(["check", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    out = capsys.readouterr().out
    assert "| e4e | l2 | 0.0200 | 0.0300 | +0.01 |" in out and "| psp | lec | 9.50 | – | – |" in out
    assert "worse values accepted (1): e4e/l2 0.02 -> 0.03\n" in out
    assert "baseline values the run lacks, dropped (1): psp/lec\n" in out
    written = read_baseline(baseline)["methods"]
    assert written["e4e"]["l2"]["value"] == 0.03 and "lec" not in written["psp"]


def test_report_rebuilds_tables_and_plots_from_the_run_directory(run_dir):
    assert cli(["report", str(run_dir)]) == 0
    for name in ("tables/results.md", "tables/results.tex", "tables/results.csv", "plots/tradeoff.png", "plots/tradeoff.pdf",
                 "plots/per_image.png", "plots/qualitative.png", "plots/qualitative.pdf"):
        assert (run_dir / name).stat().st_size > 0, name


def test_a_timing_is_bold_only_when_it_beats_the_next_by_more_than_both_spreads():
    from e4e_bench.reporting.run_results import MethodResult, MetricInfo, RunSummary, Value

    def table(fast: Value, slow: Value) -> str:
        run = RunSummary("toy", "toy", metrics={"seconds_per_image": MetricInfo(False, "timing", "s/img", True)},
                         methods={"a": MethodResult(values={"seconds_per_image": fast}),
                                  "b": MethodResult(values={"seconds_per_image": slow})})
        return markdown_table([run])

    # 0.010 ± 0.002 against 0.013 ± 0.002: the gap (0.003) is within the spreads (0.004)
    assert "**" not in table(Value(0.010, 0.002, 16), Value(0.013, 0.002, 16))
    assert "**0.0100 ± 0.0020**" in table(Value(0.010, 0.002, 16), Value(0.020, 0.002, 16))
    assert "**" not in table(Value(0.010, math.nan, 16), Value(0.020, math.nan, 16))  # no spread: cannot tell
