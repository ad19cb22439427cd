"""Code files: what `generate` and `edit` refuse to read, and regenerating a projection with its own noise."""

from __future__ import annotations

import re

import numpy as np
import pytest

from e4e_bench.cli import main

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
