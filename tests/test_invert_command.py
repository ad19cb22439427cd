"""`invert` over a folder: interrupted runs resume, unreadable files are skipped, NaN codes stop the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e4e_bench.cli import main
from e4e_bench.commands import invert
from e4e_bench.methods import InversionMethod
from tests.conftest import TINY_CARS, make_tiny_generator, write_images
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


def count_batches(patch: pytest.MonkeyPatch, fail_on: int | None = None) -> list[int]:
    """Record the size of every batch the method inverts; optionally interrupt at batch `fail_on`."""
    calls: list[int] = []
    real = invert.invert_with_noise

    def counting(method: InversionMethod, images: torch.Tensor):
        if fail_on is not None and len(calls) == fail_on:
            raise KeyboardInterrupt
        calls.append(len(images))
        return real(method, images)

    patch.setattr(invert, "invert_with_noise", counting)
    return calls


def test_resume_skips_finished_batches_and_matches_a_full_run(tmp_path, tiny_domain, e4e_checkpoint, five_images):
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "full") == 0
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch, fail_on=2)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "cut") == 130
    assert calls == [2, 2] and not (tmp_path / "cut" / "latents.npy").exists()
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "cut", "--resume") == 0
    assert calls == [1]  # only the last batch was left
    np.testing.assert_array_equal(np.load(tmp_path / "cut" / "latents.npy"), np.load(tmp_path / "full" / "latents.npy"))
    assert (tmp_path / "cut" / "names.txt").read_text() == (tmp_path / "full" / "names.txt").read_text()
    assert not (tmp_path / "cut" / ".parts").exists()


def test_without_resume_everything_is_redone(tmp_path, tiny_domain, e4e_checkpoint, five_images):
    with pytest.MonkeyPatch.context() as patch:
        count_batches(patch, fail_on=1)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 130
    with pytest.MonkeyPatch.context() as patch:
        calls = count_batches(patch)
        assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 0
    assert calls == [2, 2, 1]


def test_unreadable_images_are_skipped_and_counted(tmp_path, tiny_domain, e4e_checkpoint, five_images, caplog):
    (five_images / "001.png").write_bytes(b"not a png")
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 0
    assert (tmp_path / "out" / "names.txt").read_text().split() == ["000", "002", "003", "004"]
    assert np.load(tmp_path / "out" / "latents.npy").shape[0] == 4
    assert "1 of 5 images" in caplog.text and "001.png" in caplog.text


def test_nan_codes_stop_with_the_file_names(tmp_path, tiny_domain, e4e_checkpoint, five_images, monkeypatch, capsys):
    nan_codes = lambda method, images: (torch.full((len(images), 8, 64), float("nan")), "const")  # noqa: E731
    monkeypatch.setattr(invert, "invert_with_noise", nan_codes)
    assert run_invert(e4e_checkpoint, five_images, tmp_path / "out") == 2
    assert "NaN codes for 000.png, 001.png" in capsys.readouterr().err
