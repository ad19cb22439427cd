"""`invert` over a folder: interrupted runs resume (only with the same set-up), unreadable files are skipped,
NaN codes stop the run."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from e4e_bench.pipeline import fingerprint

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.cli import main
from e4e_bench.domains import DOMAINS
from e4e_bench.errors import E4EBenchError
from e4e_bench.pipeline.fingerprint import check_fingerprint, file_identity, method_fingerprint
from e4e_bench.methods import Inversion, build_method
from encoders.method import EncoderMethod
from tests.conftest import TINY_CARS, make_tiny_generator, record_inversions, rosinality_checkpoint, write_images
from tests.official_checkpoints import write_official_checkpoint


@pytest.fixture
def e4e_checkpoint(tmp_path):
    return write_official_checkpoint(tmp_path / "e4e.pt", "e4e", make_tiny_generator())


@pytest.fixture
def five_images(tmp_path):
    images = torch.rand(5, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    write_images(tmp_path / "images", images)
    return tmp_path / "images"


def run_invert(checkpoint, images, out, *extra):
    return main(["invert", "--method", "e4e", "--checkpoint", str(checkpoint), "--domain", TINY_CARS.name,
                 "--images", str(images), "--out", str(out), "--batch-size", "2", "--device", "cpu", *extra])


def count_batches(patch: pytest.MonkeyPatch, fail_on: int | None = None) -> list[tuple[str, int]]:
    """Record (method, size) of every batch the method inverts; optionally interrupt at batch `fail_on`."""
    return record_inversions(patch, fail_on=fail_on)


def sizes(calls: list[tuple[str, int]]) -> list[int]:
    return [size for _, size in calls]


def test_resume_skips_finished_batches_and_matches_a_full_run(tmp_path, tiny_domain, e4e_checkpoint, five_images):
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "full") == 0
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch, fail_on=2)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "cut") == 130
    assert sizes(calls) == [2, 2] and not (tmp_path / "cut" / "latents.npy").exists()
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "cut", "--resume") == 0
    assert sizes(calls) == [1]  # only the last batch was left
    np.testing.assert_array_equal(np.load(tmp_path / "cut" / "latents.npy"), np.load(tmp_path / "full" / "latents.npy"))
    assert (tmp_path / "cut" / "names.txt").read_text() == (tmp_path / "full" / "names.txt").read_text()
    assert not (tmp_path / "cut" / ".parts").exists()


def test_with_overwrite_everything_is_redone(tmp_path, tiny_domain, e4e_checkpoint, five_images):
    with pytest.MonkeyPatch.context() as patch:
        count_batches(patch, fail_on=1)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 130
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "out", "--overwrite") == 0
    assert sizes(calls) == [2, 2, 1]


def test_an_earlier_inversion_is_refused_and_overwrite_removes_only_what_invert_wrote(
    tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys
):
    out = tmp_path / "out"
    assert run_invert(e4e_checkpoint, five_images, out) == 0
    (out / "notes.txt").write_text("mine")
    (out / "images" / "README").write_text("")
    three = tmp_path / "three"
    write_images(three, torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1, ["a.png", "b.png", "c.png"])
    capsys.readouterr()
    assert run_invert(e4e_checkpoint, three, out) == 2
    assert capsys.readouterr().err == (f"error: {out} holds an earlier inversion (latents.npy, names.txt, images, "
                                       "inversion.json); pass "
                                       "--resume to continue it, --overwrite to replace it, or choose another --out\n")
    assert len(list((out / "images").glob("*.png"))) == 5
    assert run_invert(e4e_checkpoint, three, out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["images", "inversion.json", "latents.npy", "names.txt", "notes.txt"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "b.png", "c.png"]
    assert np.load(out / "latents.npy").shape[0] == 3 and (out / "notes.txt").read_text() == "mine"


def test_resume_and_overwrite_exclude_each_other(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    with pytest.raises(SystemExit):
        run_invert(e4e_checkpoint, five_images, tmp_path / "out", "--resume", "--overwrite")
    assert "not allowed with argument" in capsys.readouterr().err


def test_unreadable_images_are_skipped_and_counted(tmp_path, tiny_domain, e4e_checkpoint, five_images, caplog):
    (five_images / "001.png").write_bytes(b"not a png")
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 0
    assert (tmp_path / "out" / "names.txt").read_text().split() == ["000", "002", "003", "004"]
    assert np.load(tmp_path / "out" / "latents.npy").shape[0] == 4
    assert "1 of 5 images" in caplog.text and "001.png" in caplog.text


def test_nan_codes_stop_with_the_file_names(tmp_path, tiny_domain, e4e_checkpoint, five_images, monkeypatch, capsys):
    nan_codes = lambda method, images: Inversion(torch.full((len(images), 8, 64), float("nan")))  # noqa: E731
    monkeypatch.setattr(EncoderMethod, "invert", nan_codes)
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 2
    assert "NaN codes for 000.png, 001.png" in capsys.readouterr().err


def interrupt_after_one_batch(checkpoint, images, out, *extra):
    with pytest.MonkeyPatch.context() as patch:
        count_batches(patch, fail_on=1)
        assert run_invert(checkpoint, images, out, *extra) == 130


def resume_error(capsys, *argv) -> str:
    """The one-line error of an `invert --resume` that must be refused."""
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rerun without --resume to start afresh" in err
    return err


def test_resume_with_another_checkpoint_is_refused(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    other = write_official_checkpoint(tmp_path / "other.pt", "e4e", make_tiny_generator(), seed=1)
    interrupt_after_one_batch(e4e_checkpoint, five_images, tmp_path / "out")
    argv = ["invert", "--method", "e4e", "--checkpoint", str(other), "--domain", TINY_CARS.name,
            "--images", str(five_images), "--out", str(tmp_path / "out"), "--batch-size", "2", "--device", "cpu"]
    assert "was made with checkpoint sha256" in resume_error(capsys, *argv)


def test_resume_with_another_generator_is_refused(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    generator = tmp_path / "g.pt"
    save_checkpoint(rosinality_checkpoint(make_tiny_generator(seed=3)), generator)
    interrupt_after_one_batch(e4e_checkpoint, five_images, tmp_path / "out")
    err = resume_error(capsys, "invert", "--method", "e4e", "--checkpoint", str(e4e_checkpoint), "--generator",
                       str(generator), "--domain", TINY_CARS.name, "--images", str(five_images), "--out",
                       str(tmp_path / "out"), "--batch-size", "2", "--device", "cpu")
    assert "was made with generator none, but this run has generator sha256" in err


def test_resume_with_another_method_is_refused(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    psp = write_official_checkpoint(tmp_path / "psp.pt", "psp", make_tiny_generator())
    interrupt_after_one_batch(e4e_checkpoint, five_images, tmp_path / "out")
    err = resume_error(capsys, "invert", "--method", "psp", "--checkpoint", str(psp), "--domain", TINY_CARS.name,
                       "--images", str(five_images), "--out", str(tmp_path / "out"), "--batch-size", "2",
                       "--device", "cpu")
    assert "was made with method e4e, but this run has method psp" in err


def test_resume_of_a_finished_inversion_with_another_method_is_refused_and_touches_nothing(
    tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys
):
    out = tmp_path / "out"
    assert run_invert(e4e_checkpoint, five_images, out) == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    psp = write_official_checkpoint(tmp_path / "psp.pt", "psp", make_tiny_generator())
    err = resume_error(capsys, "invert", "--method", "psp", "--checkpoint", str(psp), "--domain", TINY_CARS.name,
                       "--images", str(five_images), "--out", str(out), "--batch-size", "2", "--device", "cpu")
    assert f"{out / 'inversion.json'} was made with method e4e, but this run has method psp" in err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_resume_of_a_finished_inversion_with_the_same_method_inverts_nothing(
    tmp_path, tiny_domain, e4e_checkpoint, five_images, monkeypatch
):
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 0
    calls = count_batches(monkeypatch)
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out", "--resume") == 0
    assert sizes(calls) == []


def test_resume_into_another_domain_is_refused(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    twin = dataclasses.replace(TINY_CARS, name="tiny_cars_twin")
    interrupt_after_one_batch(e4e_checkpoint, five_images, tmp_path / "out")
    with DOMAINS.registered(twin.name, twin):
        err = resume_error(capsys, "invert", "--method", "e4e", "--checkpoint", str(e4e_checkpoint), "--domain",
                           twin.name, "--images", str(five_images), "--out", str(tmp_path / "out"),
                           "--batch-size", "2", "--device", "cpu")
    assert "was made with domain tiny_cars, but this run has domain tiny_cars_twin" in err


def test_resume_with_another_option_is_refused(tmp_path, tiny_domain, tiny_generator_ckpt, capsys):
    frames = torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    write_images(tmp_path / "frames", frames)
    argv = ["invert", "--method", "opt_w", "--generator", str(tiny_generator_ckpt), "--domain", TINY_CARS.name,
            "--images", str(tmp_path / "frames"), "--out", str(tmp_path / "out"), "--batch-size", "2",
            "--lpips-weight", "0", "--mse-weight", "1", "--device", "cpu"]
    with pytest.MonkeyPatch.context() as patch:
        count_batches(patch, fail_on=1)
        assert main([*argv, "--steps", "2"]) == 130
    assert "was made with --steps 2, but this run has --steps 3" in resume_error(capsys, *argv, "--steps", "3")


def test_random_weights_are_part_of_the_fingerprint(tiny_domain, tiny_generator_ckpt):
    built = [build_method("e4e", domain=TINY_CARS, generator=tiny_generator_ckpt, random_weights=True, seed=seed)
             for seed in (0, 1)]
    first, second = (method_fingerprint(method, TINY_CARS) for method in built)
    assert first["random weights"] == "seed 0" and second["random weights"] == "seed 1"
    with pytest.raises(E4EBenchError, match="made with random weights seed 0, but this run has random weights seed 1"):
        check_fingerprint(first, second, Path("parts"), "start afresh")


def test_large_files_are_identified_by_path_size_and_time(tmp_path, monkeypatch):
    path = tmp_path / "big.pt"
    path.write_bytes(b"12345")
    assert file_identity(path) == "sha256 " + hashlib.sha256(b"12345").hexdigest()
    monkeypatch.setattr(fingerprint, "HASH_LIMIT", 4)
    assert file_identity(path) == f"{path.resolve()} (5 bytes, modified {path.stat().st_mtime_ns} ns)"


def test_two_images_with_one_stem_are_refused_naming_both(tmp_path, tiny_domain, e4e_checkpoint, five_images, capsys):
    write_images(tmp_path / "jpeg", torch.zeros(1, 3, 24, 32), ["001.jpg"])
    (tmp_path / "jpeg" / "001.jpg").rename(five_images / "001.jpg")
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 2
    assert capsys.readouterr().err == (f"error: {five_images / '001.jpg'} and {five_images / '001.png'} have the same "
                                       "name without extension, which names outputs and pairs images; rename or remove "
                                       "one of them\n")
    assert not (tmp_path / "out").exists()


def test_images_far_from_the_frame_are_stretched_with_one_warning_naming_them(
    tmp_path, tiny_domain, e4e_checkpoint, five_images, caplog
):
    shapes = {"square.png": (8, 8), "tall.png": (100, 2), "three_by_two.png": (20, 30)}  # H x W; the frame is 24x32
    for name, (height, width) in shapes.items():
        write_images(five_images, torch.zeros(1, 3, height, width), [name])
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 0
    assert np.load(tmp_path / "out" / "latents.npy").shape[0] == 8
    warnings = [record.getMessage() for record in caplog.records if "stretched" in record.getMessage()]
    assert warnings == [f"2 of 8 images in {five_images} are far from the aspect ratio of the 24x32 frame (H x W) and "
                        "are stretched to it, as the official pipelines do: square.png (8x8), tall.png (100x2)"]
