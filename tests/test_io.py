"""The one atomic write: whole files or none, no temporary file left behind, the user's umask."""

import stat

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.data import save_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import atomic_write, write_text
from e4e_bench.latents import write_codes
from e4e_bench.reporting.results_files import write_per_image_csv


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "w") as stream:
            stream.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(("module", "function", "write"), [
    (torch, "save", lambda path: save_checkpoint({"x": torch.zeros(1)}, path)),
    (np, "save", lambda path: write_codes(torch.zeros(2, 3), path)),
    (Image.Image, "save", lambda path: save_images(torch.zeros(1, 3, 4, 4), [path])),
])
def test_every_writer_leaves_nothing_when_writing_fails(tmp_path, monkeypatch, module, function, write):
    monkeypatch.setattr(module, function, disk_full)
    with pytest.raises(E4EBenchError, match="cannot write .*out.bin: No space left on device"):
        write(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_new_files_get_the_umask_permissions_not_0600(tmp_path, umask):
    write_text(tmp_path / "a.txt", "x")
    save_images(torch.zeros(1, 3, 4, 4), [tmp_path / "a.png"])
    write_codes(torch.zeros(1, 2), tmp_path / "a.npy")
    write_per_image_csv(tmp_path / "a.csv", {"0": {"l2": 1.0}})
    save_checkpoint({"x": torch.zeros(1)}, tmp_path / "a.pt")
    for name in ("a.txt", "a.png", "a.npy", "a.csv", "a.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert np.load(tmp_path / "a.npy").shape == (1, 2)


def test_per_image_csv_has_sorted_metric_columns_and_blanks_for_missing_values(tmp_path):
    write_per_image_csv(tmp_path / "t.csv", {"b.png": {"lpips": 0.5, "l2": 0.25}, "a.png": {"l2": 1.0}})
    assert (tmp_path / "t.csv").read_text().splitlines() == ["image,l2,lpips", "b.png,0.25,0.5", "a.png,1.0,"]
