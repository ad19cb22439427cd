"""Tables, plots, `report` and the `check` drift gate on a hand-made run directory with known numbers."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from matplotlib.text import Text

from e4e_bench.cli import main as cli
from e4e_bench.reporting import plots
from e4e_bench.reporting.drift import BaselineError, compare, make_baseline, read_baseline, write_baseline
from e4e_bench.reporting.run_results import MethodResult, MetricInfo, RunSummary, Value
from e4e_bench.reporting.tables import csv_table, format_number, latex_table, markdown_table
from tests.conftest import write_images

PROTOCOLS = {"l2": "MSE of [-1,1] images at 72x96", "msssim": "MS-SSIM 3 scales", "lec": "e4e LEC, toy edit"}


def summary(l2_e4e: float = 0.02, label: str = "toy") -> RunSummary:
    return RunSummary(
        domain="toy",
        label=label,
        metrics={"l2": MetricInfo(False, PROTOCOLS["l2"], "L2", "MSE of [-1, 1] RGB"), "msssim": MetricInfo(True, PROTOCOLS["msssim"], "MS-SSIM", "MS-SSIM (1: identical)"),
                 "lec": MetricInfo(False, PROTOCOLS["lec"], "LEC")},
        methods={
            "e4e": MethodResult(values={"l2": Value(l2_e4e, 0.005, 4), "msssim": Value(0.81, 0.02, 4), "lec": Value(3.1, 0.4, 4)}),
            "psp": MethodResult(values={"l2": Value(0.0123, 0.004, 4), "msssim": Value(0.86, 0.01, 4), "lec": Value(9.5, 1.0, 4)}),
            "opt_w": MethodResult(status="failed", reason="no LPIPS weights"),
        },
    )


def write_run(run, inputs, run_summary):
    """A run directory as `run` leaves it, of 3 images a, b, c in the folder `inputs`."""
    names = [p.name for p in write_images(inputs, torch.zeros(3, 3, 24, 32), ["a.png", "b.png", "c.png"])]
    for method in ("e4e", "psp"):
        write_images(run / "methods" / method / "images", torch.zeros(3, 3, 24, 32), names)
        write_images(run / "methods" / method / "edits", torch.ones(3, 3, 24, 32), names)
    data = str(inputs.relative_to(run) if inputs.is_relative_to(run) else inputs)
    (run / "config.json").write_text(json.dumps({"data": data, "edit": {"name": "viewpoint", "factor": 2.0}}))
    (run / "per_image.csv").write_text("method,image,l2,msssim\ne4e,a,0.01,0.8\ne4e,b,0.03,0.82\npsp,a,0.01,0.9\npsp,b,0.02,0.85\n")
    run_summary.save(run)
    return run


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run", tmp_path / "inputs", summary())


@pytest.fixture
def figures(monkeypatch):
    """The figures the report draws, by file name, kept as they are saved."""
    drawn = {}
    save = plots.save_figure

    def keep(figure, stem):
        drawn[stem.name] = figure
        return save(figure, stem)

    monkeypatch.setattr(plots, "save_figure", keep)
    return drawn


def texts(figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text) if text.get_text()]


def grid_labels(figure) -> tuple[list[str], list[str]]:
    """(column titles, row names) of a qualitative grid."""
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    return titles, [axes.texts[0].get_text() for axes in figure.axes if axes.texts]


def test_numbers_keep_three_significant_digits():
    assert [format_number(v) for v in (0.012345, 0.4567, 52.34, 1234.4, 0.0, math.nan, 0.004, 1.69e-5)] == \
        ["0.0123", "0.457", "52.3", "1234", "0", "–", "0.0040", "0.000017"]


def test_markdown_table_bolds_the_best_value_in_each_metrics_direction():
    table = markdown_table([summary()])
    e4e, psp, opt_w = (next(line for line in table.splitlines() if line.startswith(f"| {m} ")) for m in ("e4e", "psp", "opt_w"))
    assert "**0.0123 ± 0.0040**" in psp and "0.0200 ± 0.0050" in e4e  # L2: lower is better
    assert "**0.860 ± 0.0100**" in psp  # MS-SSIM: higher is better
    assert "**3.10 ± 0.400**" in e4e  # LEC: lower is better
    assert "failed: no LPIPS weights" in opt_w
    assert "L2 ↓" in table and "MS-SSIM ↑" in table
    assert "- domain toy\n" in table and f"- LEC: {PROTOCOLS['lec']}\n" in table


def test_latex_table_is_booktabs_with_escaped_names():
    latex = latex_table([summary()])
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "\\textbf{0.0123 $\\pm$ 0.0040}" in latex and "opt\\_w" in latex and "$\\downarrow$" in latex


def test_csv_table_keeps_full_precision():
    lines = csv_table([summary(l2_e4e=0.0212345678)]).splitlines()
    assert lines[0] == "method,n,l2_mean,l2_std,msssim_mean,msssim_std,lec_mean,lec_std"
    assert lines[1].startswith("e4e,4,0.0212345678,0.005,")


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
        run = RunSummary("toy", "toy", metrics={"seconds_per_image": MetricInfo(False, "timing", "s/img", std_is_noise=True)},
                         methods={"a": MethodResult(values={"seconds_per_image": fast}),
                                  "b": MethodResult(values={"seconds_per_image": slow})})
        return markdown_table([run])

    # 0.010 ± 0.002 against 0.013 ± 0.002: the gap (0.003) is within the spreads (0.004)
    assert "**" not in table(Value(0.010, 0.002, 16), Value(0.013, 0.002, 16))
    assert "**0.0100 ± 0.0020**" in table(Value(0.010, 0.002, 16), Value(0.020, 0.002, 16))
    assert "**" not in table(Value(0.010, math.nan, 16), Value(0.020, math.nan, 16))  # no spread: cannot tell


def test_runs_of_one_label_are_refused_naming_both(tmp_path, capsys):
    first = write_run(tmp_path / "a" / "toy", tmp_path / "a" / "toy" / "inputs", summary(label="toy"))
    second = write_run(tmp_path / "b" / "toy", tmp_path / "b" / "toy" / "inputs", summary(l2_e4e=0.03, label="toy"))
    assert cli(["report", str(first), str(second), "--out", str(tmp_path / "both")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "share a label" in err and str(first) in err and str(second) in err
    assert not (tmp_path / "both" / "tables").exists()


def test_bold_is_the_best_of_the_rows_of_one_domain_and_n():
    toy = summary(label="toy")
    cars = summary(l2_e4e=0.2, label="cars")
    cars.domain = "cars"
    cars.methods["psp"].values["l2"] = Value(0.123, 0.04, 4)
    table = markdown_table([toy, cars])
    cells = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in table.splitlines() if " / " in line}
    assert cells["toy / psp"] == "**0.0123 ± 0.0040**" and cells["toy / e4e"] == "0.0200 ± 0.0050"
    assert cells["cars / psp"] == "**0.123 ± 0.0400**" and cells["cars / e4e"] == "0.200 ± 0.0050"
    sixteen = RunSummary("toy", "toy16", toy.metrics, {"e4e": MethodResult(values={"l2": Value(0.001, 0.001, 16)}),
                                                        "psp": MethodResult(values={"l2": Value(0.002, 0.001, 16)})})
    cells = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in markdown_table([toy, sixteen]).splitlines()
             if " / " in line}
    assert cells["toy / psp"] == "**0.0123 ± 0.0040**" and cells["toy16 / e4e"] == "**0.0010 ± 0.0010**"


def test_a_value_zero_by_construction_is_not_bold_and_a_best_value_all_rows_share_is_not_either():
    degenerate = summary()
    degenerate.metrics["layer_spread"] = MetricInfo(False, "spread", "W+ spread")
    degenerate.methods["opt_w"] = MethodResult(values={"l2": Value(0.03, 0.01, 4), "layer_spread": Value(0.0, 0.0, 4)})
    for method, spread in (("e4e", 4.2), ("psp", 16.6)):
        degenerate.methods[method].values["layer_spread"] = Value(spread, 0.8, 4)
        degenerate.methods[method].values["msssim"] = Value(0.9, 0.02, 4)
    table = markdown_table([degenerate])
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "| 0 ± 0 " in rows["opt_w"] and "**4.20 ± 0.800**" in rows["e4e"]
    assert not any("**" in line.split("|")[4] for line in rows.values())  # MS-SSIM: e4e and psp tie at 0.9


def test_each_row_has_its_n_and_metrics_over_fewer_images_are_named():
    short = summary()
    short.methods["e4e"].values["lec"] = Value(3.1, 0.4, 3)
    table = markdown_table([short])
    header, _, e4e = table.splitlines()[:3]
    assert header.split("|")[2].strip() == "N" and e4e.split("|")[2].strip() == "4"
    assert "- LEC is over fewer images than the row's N: e4e 3\n" in table


def test_the_mahalanobis_column_has_the_value_of_w_itself_beside_it():
    reference = summary()
    reference.metrics["w_mahalanobis"] = MetricInfo(False, "to W", "Mahal. to W")
    for method, distance in (("e4e", 16.9), ("psp", 65.2)):
        reference.methods[method].values["w_mahalanobis"] = Value(distance, 2.0, 4, reference=7.93)
    assert "- Mahal. to W of held-out samples of W itself (the reference): 7.93\n" in markdown_table([reference])


def test_a_clause_protocols_share_is_written_once_under_all_of_them():
    size = "both sets first resized to 72x96 (domain toy's evaluation size, PIL bilinear)"
    shared = summary()
    shared.metrics["l2"] = MetricInfo(False, f"per-pixel MSE (of [-1,1]; RGB); {size}", "L2")
    shared.metrics["msssim"] = MetricInfo(True, f"3 scales; {size}", "MS-SSIM")
    notes = markdown_table([shared]).split("\n\n")[1]
    assert notes.count(size) == 1 and f"- L2, MS-SSIM: {size}\n" in notes
    assert "- L2: per-pixel MSE (of [-1,1]; RGB)\n" in notes and "- MS-SSIM: 3 scales\n" in notes


def test_latex_header_is_one_row_that_names_the_method_column():
    lines = latex_table([summary()]).splitlines()
    top = lines.index("\\toprule")
    assert lines[top + 1].startswith("method & N & L2 $\\downarrow$") and lines[top + 2] == "\\midrule"


def test_figures_say_what_they_show(run_dir, figures):
    assert cli(["report", str(run_dir), "--grid-images", "2"]) == 0
    tradeoff = figures["tradeoff"]
    assert [t.get_text() for t in tradeoff.axes[0].get_legend().get_texts()] == ["e4e (N=4)", "psp (N=4)"]
    assert "error bars: ±1 std over images; LEC edit: viewpoint ×2" in texts(tradeoff)
    panels = figures["per_image"].axes
    assert [(a.get_title(), a.get_ylabel()) for a in panels] == [("L2 ↓", "MSE of [-1, 1] RGB"),
                                                                 ("MS-SSIM ↑", "MS-SSIM (1: identical)")]
    assert grid_labels(figures["qualitative"]) == (["input", "e4e", "psp", "e4e + viewpoint ×2", "psp + viewpoint ×2"],
                                                   ["a", "b"])


def test_a_run_whose_external_images_are_gone_still_reports_and_names_them(run_dir, tmp_path, figures, caplog):
    shutil.rmtree(tmp_path / "inputs")
    assert cli(["report", str(run_dir)]) == 0
    assert f"input images {tmp_path / 'inputs'}" in caplog.text and "no input column" in caplog.text
    assert grid_labels(figures["qualitative"]) == (["e4e", "psp", "e4e + viewpoint ×2", "psp + viewpoint ×2"],
                                                   ["a", "b", "c"])
