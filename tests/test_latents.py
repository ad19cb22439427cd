"""Code files: what `generate` and `edit` refuse to read, and regenerating a projection with its own noise."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.cli import main
from tests.conftest import TINY_CARS, write_images

STYLE_DIM = 64  # the tiny generator's


@pytest.mark.parametrize(("codes", "message"), [
    (np.full((2, STYLE_DIM), "0.5"), "codes are of type <U3; expected real numbers"),
    (np.ones((2, STYLE_DIM), dtype=np.complex64), "codes are of type complex64; expected real numbers"),
    (np.zeros((0, STYLE_DIM), dtype=np.float32), "holds no codes \\(shape \\[0, 64\\]\\)"),
])
@pytest.mark.parametrize("command", ["generate", "edit"])
def test_codes_that_are_not_real_numbers_or_none_at_all_are_one_line_errors(
    tmp_path, tiny_generator_ckpt, capsys, codes, message, command
):
    np.save(tmp_path / "codes.npy", codes)
    extra = ["--direction", "sefa:0", "--strength", "1"] if command == "edit" else []
    code = main([command, "--generator", str(tiny_generator_ckpt), "--latents", str(tmp_path / "codes.npy"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'codes.npy'}: ")
    assert re.search(message, err)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def projection(tmp_path, tiny_domain, tiny_generator_ckpt):
    """A few-step W projection of three images on the tiny cars domain (frame rows 4:28 of 32)."""
    images = torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    write_images(tmp_path / "frames", images, ["b.png", "a.png", "c.png"])
    assert main(["invert", "--method", "opt_w", "--generator", str(tiny_generator_ckpt), "--domain", TINY_CARS.name,
                 "--images", str(tmp_path / "frames"), "--out", str(tmp_path / "inv"), "--steps", "3",
                 "--lpips-weight", "0", "--mse-weight", "1", "--device", "cpu"]) == 0
    return tmp_path / "inv"


def decoded_frames(folder: Path, count: int) -> np.ndarray:
    """`folder/00000.png ...` cropped to the tiny cars frame, as int arrays."""
    top, bottom = TINY_CARS.crop_rows
    return np.stack([np.asarray(Image.open(folder / f"{i:05d}.png"))[top:bottom] for i in range(count)]).astype(int)


def reconstructions(inversion: Path) -> np.ndarray:
    names = (inversion / "names.txt").read_text().split()
    return np.stack([np.asarray(Image.open(inversion / "images" / f"{name}.png")) for name in names]).astype(int)


def test_generate_and_edit_of_an_inversion_regenerate_a_projection_exactly(tmp_path, projection, tiny_generator_ckpt):
    expected = reconstructions(projection)
    assert main(["generate", "--inversion", str(projection), "--out", str(tmp_path / "gen"), "--device", "cpu"]) == 0
    assert np.abs(decoded_frames(tmp_path / "gen", 3) - expected).max() == 0
    assert main(["edit", "--inversion", str(projection), "--direction", "sefa:0", "--strength", "0",
                 "--out", str(tmp_path / "edit"), "--device", "cpu"]) == 0
    assert np.abs(decoded_frames(tmp_path / "edit", 3) - expected).max() == 0
    base = ["--generator", str(tiny_generator_ckpt), "--latents", str(projection / "latents.npy"), "--device", "cpu"]
    assert main(["generate", *base, "--out", str(tmp_path / "const")]) == 0
    assert np.abs(decoded_frames(tmp_path / "const", 3) - expected).max() > 0  # the optimised noise is what differs


def test_an_inversion_state_that_does_not_fit_the_codes_is_one_line(tmp_path, projection, capsys):
    np.save(tmp_path / "two.npy", np.load(projection / "latents.npy")[:2])
    argv = ["generate", "--inversion", str(projection), "--device", "cpu", "--out", str(tmp_path / "gen")]
    capsys.readouterr()
    assert main([*argv, "--latents", str(tmp_path / "two.npy")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'two.npy'} has 2 codes but {projection / 'names.txt'} "
                                       "names 3 images; use codes of the same inversion, one row per image\n")
    (projection / "state" / "c.pt").unlink()
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {projection / 'state' / 'c.pt'} does not exist")


def test_each_state_file_holds_its_own_image_not_the_batch(tmp_path):
    """A row sliced from a batch shares the batch's storage; saved as it is, every file would hold all 8."""
    from e4e_bench.latents import read_state, write_state

    state = {"trajectory": torch.randn(8, 5, 4, 64)}  # 5 kB per image, 40 kB for the batch
    names = [f"{i:03d}" for i in range(8)]
    write_state(tmp_path, names, state)
    assert all((tmp_path / f"{name}.pt").stat().st_size < 5 * 4 * 64 * 4 + 2048 for name in names)
    assert torch.equal(read_state(tmp_path, names)["trajectory"], state["trajectory"])
