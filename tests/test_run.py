"""`run` end to end on tiny official-format checkpoints: files, numbers, resume, refusals and failures."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import time

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.reporting import plots
from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.cli import main
from e4e_bench.domains import DOMAINS
from tests.conftest import TINY_CARS, make_tiny_generator, record_inversions, rosinality_checkpoint, write_images
from tests.official_checkpoints import write_official_checkpoint

RUN_DOMAIN = dataclasses.replace(
    TINY_CARS, name="tiny_run", default_edit="sefa:0", default_edit_name="SeFa 0", default_edit_factor=1.0,
)
PROJECTION = ["--option", "steps=3", "--option", "lpips_weight=0", "--option", "mse_weight=1"]


@pytest.fixture
def setup(tmp_path):
    generator = make_tiny_generator()
    files = {
        "e4e": write_official_checkpoint(tmp_path / "e4e.pt", "e4e", generator),
        "psp": write_official_checkpoint(tmp_path / "psp.pt", "psp", generator),
        "generator": tmp_path / "g.pt",
    }
    save_checkpoint(rosinality_checkpoint(generator, generator.mean_latent(1000)[0]), files["generator"])
    images = torch.rand(9, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    write_images(tmp_path / "data", images, [f"{i:03d}.png" for i in range(9)])
    with DOMAINS.registered(RUN_DOMAIN.name, RUN_DOMAIN):
        yield tmp_path, files


def run(tmp_path, files, *extra, methods="e4e,psp,opt_w", out="run"):
    options = PROJECTION if "opt_" in methods else []
    return main(["run", "--methods", methods, *options, "--domain", RUN_DOMAIN.name, "--data", str(tmp_path / "data"),
                 "--checkpoint", f"e4e={files['e4e']}", "--checkpoint", f"psp={files['psp']}",
                 "--generator", str(files["generator"]), "--metrics", "l2,msssim,swd,lec", "--out", str(tmp_path / out),
                 "--device", "cpu", "--batch-size", "4", *extra])


def pixels(path, size):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize(size[::-1], Image.BILINEAR), dtype=np.float64) / 127.5 - 1


def test_run_writes_the_run_directory_and_its_numbers_are_the_images(setup):
    tmp_path, files = setup
    assert run(tmp_path, files) == 0
    out = tmp_path / "run"
    for name in ("config.json", "summary.json", "per_image.csv", "tables/results.md", "tables/results.tex",
                 "tables/results.csv", "plots/tradeoff.png", "plots/qualitative.png", "plots/per_image.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    e4e = summary["methods"]["e4e"]["values"]
    # L2 independently: PIL-resize both files to the evaluation size, MSE in [-1, 1], mean over the 9 images.
    size = RUN_DOMAIN.eval_size
    expected = np.mean([np.mean((pixels(tmp_path / "data" / f"{i:03d}.png", size)
                                 - pixels(out / "methods" / "e4e" / "images" / f"{i:03d}.png", size)) ** 2) for i in range(9)])
    assert e4e["l2"]["mean"] == pytest.approx(expected, rel=1e-4) and e4e["l2"]["n"] == 9
    for method in ("e4e", "psp", "opt_w"):
        values = summary["methods"][method]["values"]
        assert {"l2", "msssim", "swd", "swd_edit", "lec", "layer_spread", "w_mahalanobis", "seconds_per_image"} <= set(values)
        assert len(list((out / "methods" / method / "edits").glob("*.png"))) == 9
    assert summary["methods"]["opt_w"]["values"]["layer_spread"]["mean"] == pytest.approx(0, abs=1e-5)  # W codes
    assert summary["methods"]["e4e"]["values"]["lec"]["std"] > 0  # over the images, as the other columns
    assert "SeFa 0" in summary["metrics"]["lec"]["protocol"] and "edited" in summary["metrics"]["swd_edit"]["protocol"]
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["methods"] == ["e4e", "psp", "opt_w"] and "torch" in config["environment"]
    assert config["files"]["e4e checkpoint"]["identity"].startswith("sha256 ")
    header = (out / "per_image.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["method", "image"] and "l2" in header and "lec" in header
    assert summary["label"] == "run"  # the folder's name
    assert 0 < summary["methods"]["e4e"]["values"]["w_mahalanobis"]["reference"] < 8  # samples of W: about sqrt(64)
    notes = (out / "tables" / "results.md").read_text().split("\n\n")[1]
    assert "L2: L2" not in notes and notes.count("resized to 24x32") == 1
    assert "- Mahal. to W of held-out samples of W itself (the reference): " in notes
    spread, mahalanobis = (next(line for line in notes.splitlines() if line.startswith(f"- {title}: "))
                           for title in ("W+ spread", "Mahal. to W"))
    assert "Mahalanobis" not in spread and "row mean" not in mahalanobis


@pytest.mark.parametrize("stop_signal", [None, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_resumes_without_redoing_finished_inversions(setup, monkeypatch, capsys, stop_signal):
    tmp_path, files = setup
    handler = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as patch:
        calls = record_inversions(patch, fail_method="psp", stop_signal=stop_signal)
        assert run(tmp_path, files) == 130  # SIGTERM as Ctrl-C
    assert capsys.readouterr().err.splitlines()[-1].startswith("interrupted; files already written are kept")
    assert signal.getsignal(signal.SIGTERM) is handler  # the command's own is gone again
    assert calls == [("e4e", 4)] * 4 + [("e4e", 1)] * 2  # three batches, each re-inverted by LEC at once
    calls = record_inversions(monkeypatch)
    assert run(tmp_path, files, "--resume") == 0
    assert "e4e" not in [name for name, _ in calls] and calls.count(("psp", 4)) == calls.count(("opt_w", 4)) == 4
    assert len(calls) == 12


def test_a_finished_run_needs_resume_and_the_same_settings(setup, capsys):
    tmp_path, files = setup
    assert run(tmp_path, files, methods="e4e") == 0
    assert run(tmp_path, files, methods="e4e") == 2
    assert "pass --resume" in capsys.readouterr().err
    files["e4e"] = write_official_checkpoint(tmp_path / "e4e_other.pt", "e4e", make_tiny_generator(), seed=3)
    assert run(tmp_path, files, "--resume", methods="e4e") == 2
    assert "checkpoints" in capsys.readouterr().err


def test_a_failing_method_is_recorded_and_the_others_finish(setup, capsys):
    tmp_path, files = setup
    files["psp"] = files["generator"]  # a generator where a pSp checkpoint belongs
    assert run(tmp_path, files) == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["methods"]["psp"]["status"] == "failed" and "g.pt" in summary["methods"]["psp"]["reason"]
    assert summary["methods"]["e4e"]["status"] == summary["methods"]["opt_w"]["status"] == "ok"
    assert "failed:" in (tmp_path / "run" / "tables" / "results.md").read_text()


def test_an_unreadable_image_is_named_once_per_run_and_recorded(setup, caplog):
    tmp_path, files = setup
    (tmp_path / "data" / "broken.png").write_bytes(b"not a png")
    assert run(tmp_path, files, methods="e4e,psp") == 0
    assert len([record for record in caplog.records if "broken.png" in record.getMessage()]) == 1
    assert list(json.loads((tmp_path / "run" / "config.json").read_text())["unreadable_images"]) == ["broken.png"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["methods"]["e4e"]["values"]["l2"]["n"] == summary["methods"]["psp"]["values"]["l2"]["n"] == 9


def test_without_weights_cars_fails_at_once_naming_each_missing_thing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    started = time.perf_counter()
    assert main(["run", "--methods", "e4e,psp,opt_w", "--domain", "cars", "--out", str(tmp_path / "cars")]) == 2
    assert time.perf_counter() - started < 5
    err = capsys.readouterr().err
    for needed in ("--data DIR", "assets fetch e4e-cars", "no released psp for domain cars", "--method psp --domain cars",
                   "assets fetch stylegan2-car", "assets fetch lpips-vgg"):
        assert needed in err, needed
    assert not (tmp_path / "cars").exists()


def test_a_label_names_the_run_and_the_grid_has_the_rows_asked_for(setup, monkeypatch):
    tmp_path, files = setup
    figures = {}
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda figure, stem: (figures.setdefault(stem.name, figure), save(figure, stem))[1])
    assert run(tmp_path, files, "--label", "nine images", "--grid-images", "2", methods="e4e") == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["label"] == "nine images"
    assert [axes.texts[0].get_text() for axes in figures["qualitative"].axes if axes.texts] == ["000", "001"]
    assert run(tmp_path, files, "--resume", "--label", "renamed", methods="e4e") == 0  # presentation only: no refusal
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["label"] == "renamed"


def test_a_copied_or_moved_run_reports_from_its_own_images(setup, monkeypatch):
    tmp_path, files = setup
    assert run(tmp_path, files, "--n-images", "4", methods="e4e") == 0
    first = tmp_path / "run"
    assert json.loads((first / "config.json").read_text())["data"] == "inputs"
    opened = []
    cell = plots._cell
    monkeypatch.setattr(plots, "_cell", lambda path, height: (opened.append(path), cell(path, height))[1])

    def inputs_read(run_dir):
        opened.clear()
        assert main(["report", str(run_dir)]) == 0
        return {path.parent for path in opened if path.parent.name == "inputs"}

    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    assert inputs_read(copy) == {copy / "inputs"}  # not the original's, which still exists
    config = json.loads((copy / "config.json").read_text())
    config["data"] = str((first / "inputs").resolve())  # as runs recorded it before: the first location, absolute
    (copy / "config.json").write_text(json.dumps(config))
    assert inputs_read(copy) == {copy / "inputs"}
    shutil.move(first, tmp_path / "moved")
    assert inputs_read(tmp_path / "moved") == {tmp_path / "moved" / "inputs"}
