"""`metrics` end to end: folders in, one JSON object out; pairing, sizes, errors."""

import csv
import json
import re

import numpy as np
import pytest
import torch
import torchvision

from tests.conftest import write_images
from e4e_bench import cli
from e4e_bench.data import list_images, load_images
from e4e_bench.networks.lpips_net import build_lpips
from tests.metrics_helpers import distort, smooth_images


@pytest.fixture
def folders(tmp_path):
    real = smooth_images(5, 32, 32)
    write_images(tmp_path / "real", real, [f"{i:03d}.png" for i in range(5)])
    write_images(tmp_path / "fake", distort(real, 0.2), [f"{i:03d}.png" for i in range(5)])
    return tmp_path / "real", tmp_path / "fake"


def run_metrics(capsys, *args):
    code = cli.main(["metrics", *map(str, args), "--device", "cpu", "--random-weights", "--no-cache"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_metrics_prints_one_json_object_and_writes_per_image_values(folders, tmp_path, capsys):
    real_dir, fake_dir = folders
    per_image = tmp_path / "scores.csv"
    code, out, _ = run_metrics(
        capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "l2,lpips,msssim,swd",
        "--per-image", per_image, "--batch-size", "2",
    )
    assert code == 0
    result = json.loads(out)
    real = load_images(list_images(real_dir), (32, 32)).images
    fake = load_images(list_images(fake_dir), (32, 32)).images
    expected_l2 = (real - fake).square().flatten(1).mean(1)
    assert result["l2"] == pytest.approx(float(expected_l2.mean()), rel=1e-5)
    assert 0 < result["lpips"] and 0 < result["msssim"] < 1 and result["swd"] > 0
    details = result["details"]
    assert details["l2"]["n"] == 5 and details["l2"]["n_failed"] == 0
    assert details["l2"]["std"] == pytest.approx(float(expected_l2.std(unbiased=False)), rel=1e-4)
    assert set(details["swd"]["levels"]) == {"32", "16"} and "ProGAN" in details["swd"]["protocol"]
    assert result["meta"]["size"] == [32, 32] and result["meta"]["n_fake"] == 5
    with open(per_image, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["image"] for row in rows] == [f"{i:03d}.png" for i in range(5)]
    np.testing.assert_allclose([float(row["l2"]) for row in rows], expected_l2.numpy(), rtol=1e-5)


def test_set_metrics_alone_give_the_same_numbers(folders, capsys):
    real_dir, fake_dir = folders
    together = json.loads(run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "l2,swd")[1])
    alone = json.loads(run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "swd")[1])
    assert alone["swd"] == together["swd"]


def test_pairs_match_by_stem_and_domain_sets_the_size(tmp_path, tiny_domain, capsys):
    images = smooth_images(3, 48, 48)
    write_images(tmp_path / "real", images, ["a.jpg", "b.jpg", "c.jpg"])
    write_images(tmp_path / "fake", images[:2], ["a.png", "b.png"])
    code, out, _ = run_metrics(
        capsys, "--real", tmp_path / "real", "--fake", tmp_path / "fake", "--metrics", "msssim", "--domain", tiny_domain.name
    )
    result = json.loads(out)
    assert code == 0 and result["meta"]["size"] == [32, 32] and result["details"]["msssim"]["n"] == 2
    assert result["msssim"] > 0.9  # JPEG round trip of the same image


def test_weights_option_takes_only_networks_that_honour_it(folders, capsys):
    real_dir, fake_dir = folders
    code, _, err = run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--weights", "stylegan2-car=/x.pt")
    assert code == 2 and "only inception-fid, moco-v2, arcface-w600k-r50, lpips-alex, lpips-vgg" in err


def test_weights_option_gives_the_lpips_backbone(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    backbone = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), backbone)
    real_dir, fake_dir = folders
    code = cli.main(["metrics", "--real", str(real_dir), "--fake", str(fake_dir), "--metrics", "lpips",
                     "--weights", f"lpips-alex={backbone}", "--device", "cpu", "--no-cache"])
    assert code == 0, capsys.readouterr().err
    network = build_lpips("alex", backbone_file=backbone)
    real = load_images(list_images(real_dir), (32, 32)).images
    fake = load_images(list_images(fake_dir), (32, 32)).images
    with torch.inference_mode():
        expected = network(real, fake).flatten().mean()
    assert json.loads(capsys.readouterr().out)["lpips"] == pytest.approx(float(expected), rel=1e-5)


def test_default_metrics_leave_out_those_without_weights_and_name_their_fetch_command(folders, tmp_path, monkeypatch,
                                                                                      capsys, caplog):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    real_dir, fake_dir = folders
    argv = ["metrics", "--real", str(real_dir), "--fake", str(fake_dir), "--domain", "toy", "--device", "cpu"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"l2", "msssim"} <= set(result) and "lpips" not in result
    assert result["meta"]["unavailable"] == {"lpips": "python -m e4e_bench assets fetch lpips-alex"}
    assert "lpips left out" in caplog.text and "python -m e4e_bench assets fetch lpips-alex" in caplog.text
    backbone = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), backbone)
    assert cli.main([*argv, "--weights", f"lpips-alex={backbone}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"l2", "lpips", "msssim"} <= set(result) and result["meta"]["unavailable"] == {}


@pytest.mark.parametrize(
    "make_fake,metrics,message",
    [
        (lambda: smooth_images(2, 40, 32), "l2", "differ in size"),
        (lambda: smooth_images(2, 32, 32), "l2,psnr", "unknown metric 'psnr'; choose one of: .*msssim"),
        (lambda: smooth_images(2, 32, 32), "l2,lec", "'lec' \\(method\\) cannot be computed here"),
        (lambda: smooth_images(2, 32, 32), "fid", "assets fetch inception-fid"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, make_fake, metrics, message):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    write_images(tmp_path / "real", smooth_images(2, 32, 32))
    write_images(tmp_path / "fake", make_fake())
    code = cli.main(["metrics", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics", metrics])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ")
    assert re.search(message, err[-1])


def test_image_metric_protocols_say_that_the_domain_resized_the_images(folders, tiny_domain, capsys):
    real_dir, fake_dir = folders
    plain = json.loads(run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "l2,swd")[1])
    resized = json.loads(run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "l2,swd",
                                     "--domain", tiny_domain.name)[1])
    note = "both sets first resized to 32x32 (domain tiny's evaluation size, PIL bilinear)"
    assert note not in plain["details"]["swd"]["protocol"]
    assert note not in plain["details"]["l2"]["protocol"]
    assert resized["details"]["swd"]["protocol"].endswith(note) and resized["details"]["l2"]["protocol"].endswith(note)


def pairing_run(tmp_path, capsys, real_names, fake_names, fake_bytes=None):
    """`metrics l2` on folders of the named files (fake files replaced by `fake_bytes` if given)."""
    images = smooth_images(len(real_names), 32, 32)
    write_images(tmp_path / "real", images, real_names)
    write_images(tmp_path / "fake", distort(images, 0.2)[: len(fake_names)], fake_names)
    if fake_bytes is not None:
        for name in fake_names:
            (tmp_path / "fake" / name).write_bytes(fake_bytes)
    return run_metrics(capsys, "--real", tmp_path / "real", "--fake", tmp_path / "fake", "--metrics", "l2")


def test_unpaired_files_on_either_side_are_counted_and_named(tmp_path, capsys, caplog):
    code, out, _ = pairing_run(tmp_path, capsys, ["a.png", "b.png", "c.png", "d.png"], ["a.png", "b.png", "x.png"])
    result = json.loads(out)
    assert code == 0 and result["details"]["l2"]["n"] == 2
    meta = result["meta"]
    assert (meta["n_pairs"], meta["unpaired_real"], meta["unpaired_fake"]) == (2, ["c.png", "d.png"], ["x.png"])
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 2
    assert warnings[0].startswith("2 of 4 real images in ") and warnings[0].endswith(
        "have no fake image of the same name and are not scored by the paired metrics: c.png, d.png")
    assert warnings[1].startswith("1 of 3 fake images in ") and warnings[1].endswith(": x.png")


def last_error(err: str) -> str:
    return err.strip().splitlines()[-1].split("\r")[-1]


def test_nothing_paired_is_an_error(tmp_path, capsys):
    code, _, err = pairing_run(tmp_path, capsys, ["a.png", "b.png"], ["x.png", "y.png"])
    assert code == 2 and re.fullmatch(
        "error: none of the 2 fake images in .*fake has a real image of the same name in .*real "
        "\\(e.g. x.png, y.png\\); paired metrics match files by name without extension", last_error(err))


def test_no_readable_pair_is_an_error(tmp_path, capsys):
    code, _, err = pairing_run(tmp_path, capsys, ["a.png", "b.png"], ["a.png", "b.png"], fake_bytes=b"not a png")
    assert code == 2 and re.fullmatch("error: none of the 2 pairs of images could be read \\(unreadable: .*fake/a.png, "
                                      ".*fake/b.png\\)", last_error(err))


def test_two_files_with_one_stem_are_an_error_naming_both(tmp_path, capsys):
    write_images(tmp_path / "extra", smooth_images(1, 32, 32), ["a.jpg"])
    (tmp_path / "real").mkdir()
    (tmp_path / "extra" / "a.jpg").rename(tmp_path / "real" / "a.jpg")
    code, _, err = pairing_run(tmp_path, capsys, ["a.png", "b.png"], ["a.png", "b.png"])
    real = tmp_path / "real"
    assert code == 2 and last_error(err) == (f"error: {real / 'a.jpg'} and {real / 'a.png'} have the same name without "
                                             "extension, which names outputs and pairs images; rename or remove one of them")


def test_domain_resizing_warns_once_per_folder_naming_the_stretched_images(folders, tiny_domain, capsys, caplog):
    real_dir, fake_dir = folders
    code, _, _ = run_metrics(capsys, "--real", real_dir, "--fake", fake_dir, "--metrics", "l2", "--domain", "tiny_cars")
    warnings = [record.getMessage() for record in caplog.records if "stretched" in record.getMessage()]
    names = ", ".join(f"{i:03d}.png (32x32)" for i in range(5))
    assert code == 0 and warnings == [
        f"5 of 5 images in {folder} are far from the aspect ratio of the 24x32 frame (H x W) and are stretched to it, "
        f"as the official pipelines do: {names}" for folder in (real_dir, fake_dir)
    ]
