"""`run --sweep`: each method along its dial from one trajectory, edits at several strengths, the
frontier's tables and plots, `check` and `--resume` of a sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e4e_bench.cli import main
from e4e_bench.pipeline import sweep as sweep_module
from e4e_bench.reporting.frontier import pareto_front
from e4e_bench.reporting.sweep_results import SweepSummary

STEPS = 8  # the projections' recipe: dial values 2, 4, 8


def sweep_run(out, *extra, methods="e4e,psp,opt_w,opt_wplus", strengths="1,2"):
    # batches of 4: three timed batches after the warm-up one, so every point has a time
    options = ["--option", f"steps={STEPS}"] if "opt_" in methods else []
    return main(["run", "--domain", "toy", "--methods", methods, "--n-images", "16", *options, "--batch-size", "4",
                 "--sweep", "--edit-strengths", strengths, "--device", "cpu", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    assert sweep_run(out) == 0
    return out


def measured(values: dict) -> dict:
    return {key: value.mean for key, value in values.items() if key != "seconds_per_image"}


def test_the_sweep_writes_its_tables_and_both_plots(swept):
    for name in ("tables/sweep.md", "tables/sweep.tex", "tables/sweep.csv", "tables/strengths.md",
                 "plots/frontier.png", "plots/frontier.pdf", "plots/quality_vs_time.png"):
        assert (swept / name).is_file(), name
    table = (swept / "tables" / "sweep.md").read_text()
    assert all(f"| {row} " in table for row in ("e4e@0", "e4e@0.5", "psp@1", "opt_w@2", "opt_wplus@8"))


def test_e4e_at_dial_0_is_w_and_at_dial_1_is_the_plain_run(swept):
    sweep = SweepSummary.load(swept)
    plain = json.loads((swept / "summary.json").read_text())["methods"]
    assert sweep.points.methods["e4e@0"].values["layer_spread"].mean == 0.0  # every row is its base code w
    assert sweep.points.methods["psp@0"].values["layer_spread"].mean == 0.0
    assert sweep.points.methods["e4e@0.5"].values["layer_spread"].mean > 0.0
    codes = np.load(swept / "methods" / "e4e" / "latents.npy")
    w = np.load(swept / "sweep" / "e4e" / "0" / "latents.npy")
    assert np.array_equal(w, np.repeat(codes[:, :1], codes.shape[1], axis=1))  # row 0 of e4e's codes is w
    for method in ("e4e", "psp"):  # the dial at 1 gives the plain codes, whose scores the row is
        assert np.array_equal(np.load(swept / "sweep" / method / "1" / "latents.npy"),
                              np.load(swept / "methods" / method / "latents.npy"))
        assert measured(sweep.points.methods[f"{method}@1"].values) == {
            key: value["mean"] for key, value in plain[method]["values"].items() if key != "seconds_per_image"}
    assert [info.value for row, info in sweep.dials.items() if info.method == "e4e" and info.default] == [1.0]


def test_the_projection_sweep_is_one_trajectory_ending_at_the_plain_codes(swept):
    plain = np.load(swept / "methods" / "opt_w" / "latents.npy")
    assert np.array_equal(np.load(swept / "sweep" / "opt_w" / f"{STEPS}" / "latents.npy"), plain)
    assert not np.array_equal(np.load(swept / "sweep" / "opt_w" / "2" / "latents.npy"), plain)
    sweep = SweepSummary.load(swept)
    seconds = [sweep.points.methods[f"opt_w@{steps}"].values["seconds_per_image"].mean for steps in (2, 4, 8)]
    assert all(np.isfinite(seconds)) and seconds[0] < seconds[1] < seconds[2]  # later points take longer to reach


def test_edits_at_each_strength_and_the_best_of_them(swept):
    sweep = SweepSummary.load(swept)
    plain = json.loads((swept / "summary.json").read_text())["methods"]["e4e"]["values"]
    row = sweep.strengths.methods["e4e"].values
    assert row["lec@x2"].mean == plain["lec"]["mean"]  # the toy's own strength is the plain run's
    assert row["swd_edit@x2"].mean == plain["swd_edit"]["mean"]
    lec = {strength: row[f"lec@x{strength}"].mean for strength in (1, 2)}
    assert lec[1] < lec[2]  # a smaller edit is undone more exactly: the best LEC is at strength 1
    assert (row["lec_best"].mean, row["lec_best_strength"].mean) == (lec[1], 1)


def test_lec_at_another_strength_is_the_lec_command_at_that_factor(swept, capsys):
    """The sweep's LEC at strength 1 for e4e equals `lec --factor 1` on the same images (an independent path)."""
    row = SweepSummary.load(swept).strengths.methods["e4e"].values
    assert main(["lec", "--method", "e4e", "--domain", "toy", "--images", str(swept / "inputs"),
                 "--direction", "ganspace:toy-ganspace:size", "--factor", "1", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["lec"] == pytest.approx(row["lec@x1"].mean, rel=1e-6)


def test_check_compares_a_sweeps_rows_where_the_baseline_has_them(swept, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["check", str(swept), "--baseline", str(baseline), "--update"]) == 0
    stored = json.loads(baseline.read_text())["methods"]
    assert {"e4e", "e4e@0.5", "opt_w@2", "e4e@strengths"} <= set(stored)
    assert main(["check", str(swept), "--baseline", str(baseline)]) == 0
    assert "e4e@0.5" in capsys.readouterr().out


def test_edit_strengths_need_the_sweep(tmp_path, capsys):
    assert main(["run", "--domain", "toy", "--edit-strengths", "1,2", "--out", str(tmp_path / "run")]) == 2
    assert "add --sweep" in capsys.readouterr().err


def test_a_sweep_killed_midway_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    assert sweep_run(tmp_path / "whole", methods="opt_w") == 0
    real_batch, calls = sweep_module.Sweep._batch, []

    def killed_at_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_batch(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(sweep_module.Sweep, "_batch", killed_at_the_second_batch)
        assert sweep_run(tmp_path / "cut", methods="opt_w") == 130
    assert len(list((tmp_path / "cut" / "sweep" / "opt_w" / ".parts").glob("*.pt"))) == 1
    assert sweep_run(tmp_path / "cut", "--resume", methods="opt_w") == 0
    whole, cut = SweepSummary.load(tmp_path / "whole"), SweepSummary.load(tmp_path / "cut")
    for row in whole.points.methods:
        assert measured(cut.points.methods[row].values) == measured(whole.points.methods[row].values)
    assert measured(cut.strengths.methods["opt_w"].values) == measured(whole.strengths.methods["opt_w"].values)
    # other strengths on a finished sweep: its plain results stay, its sweep is made again with them
    assert sweep_run(tmp_path / "cut", "--resume", methods="opt_w", strengths="3") == 0
    again = SweepSummary.load(tmp_path / "cut")
    assert {"lec@x2", "lec@x3"} <= set(again.strengths.methods["opt_w"].values)  # the toy's own x2 always in
    assert "lec@x1" not in again.strengths.methods["opt_w"].values
    assert measured(again.points.methods["opt_w@2"].values) == measured(whole.points.methods["opt_w@2"].values)


def build_dial_free(**keywords):
    from encoders.method import build_e4e

    method = build_e4e(**keywords)
    method.name = "dial_free"
    return method


def test_a_method_without_a_dial_is_one_point_with_its_strengths(tmp_path):
    from e4e_bench.methods import METHODS, MethodEntry

    entry = MethodEntry("dial_free", f"{__name__}:build_dial_free", "encoders.method:EncoderOptions", "e4e, no dial",
                        checkpoint_formats=("e4e-psp-checkpoint",), checkpoint_assets={"toy": "toy-e4e"})
    with METHODS.registered("dial_free", entry):
        assert sweep_run(tmp_path / "run", methods="dial_free") == 0
    sweep = SweepSummary.load(tmp_path / "run")
    assert list(sweep.points.methods) == ["dial_free@plain"] and sweep.dials["dial_free@plain"].value is None
    plain = json.loads((tmp_path / "run" / "summary.json").read_text())["methods"]["dial_free"]["values"]
    assert measured(sweep.points.methods["dial_free@plain"].values) == {
        key: value["mean"] for key, value in plain.items() if key != "seconds_per_image"}
    assert {"lec@x1", "lec@x2", "lec_best"} <= set(sweep.strengths.methods["dial_free"].values)


def test_the_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    # (2.5, 3) ties (2, 3) on LEC and loses on distortion; (3, 4) loses to (2, 3) on both
    points = [(3.0, 4.0), (1.0, 5.0), (2.5, 3.0), (4.0, 1.0), (2.0, 3.0)]
    assert pareto_front(points) == [(1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]


def test_pti_along_its_tuning_keeps_its_pivots_and_reconstructs_better_with_each_point(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--domain", "toy", "--methods", "pti", "--n-images", "16", "--batch-size", "8",
                 "--option", "pti.steps=4", "--option", "pti.tune_steps=8", "--sweep", "--edit-strengths", "2",
                 "--device", "cpu", "--out", str(out)]) == 0
    sweep = SweepSummary.load(out)
    assert list(sweep.points.methods) == ["pti@0", "pti@2", "pti@4", "pti@8"]
    plain = np.load(out / "methods" / "pti" / "latents.npy")
    for steps in (0, 2, 4, 8):  # the tuning moves the generator, never the pivots
        assert np.array_equal(np.load(out / "sweep" / "pti" / f"{steps}" / "latents.npy"), plain)
    l2 = [sweep.points.methods[f"pti@{steps}"].values["l2"].mean for steps in (0, 2, 4, 8)]
    assert l2[0] > l2[1] > l2[2] > l2[3]
    summary = json.loads((out / "summary.json").read_text())["methods"]["pti"]["values"]
    assert l2[3] == summary["l2"]["mean"]
