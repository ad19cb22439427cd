"""Output locations: checked before any work, with one line naming the flag; a write that still
fails is one line and leaves no temporary file."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
import torch

from e4e_bench.reporting import results_files as results
from e4e_bench.cli import main
from e4e_bench.commands import invert, metrics
from e4e_bench.errors import E4EBenchError
from e4e_bench.latents import write_codes
from e4e_bench.pipeline import decoding
from tests.conftest import write_images
from tests.metrics_helpers import smooth_images


def can_write_in(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def unwritable(tmp_path):
    """A folder this user cannot create files in: read-only permissions, or for root (whom permissions
    do not stop) sysfs."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder if not can_write_in(folder) else Path("/sys")
    folder.chmod(0o755)


@pytest.fixture
def spies(monkeypatch):
    """The first step of each command's work, recorded instead of run."""
    calls = []
    for module, name in ((metrics, "evaluate_folders"), (invert, "resolve_domain"), (decoding, "codes_to_decode")):
        monkeypatch.setattr(module, name, lambda *args, name=name, **kwargs: calls.append(name))
    return calls


@pytest.fixture
def folders(tmp_path):
    images = smooth_images(2, 32, 32)
    write_images(tmp_path / "real", images)
    write_images(tmp_path / "fake", images)
    (tmp_path / "a_file").write_text("mine")
    for checkpoint in ("e4e.pt", "g.pt"):  # file flags must name files; the spies stop before they are read
        (tmp_path / checkpoint).write_bytes(b"")
    return tmp_path


def metrics_argv(tmp_path, per_image):
    return ["metrics", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics", "l2",
            "--per-image", str(per_image), "--device", "cpu"]


def invert_argv(tmp_path, out):
    return ["invert", "--method", "e4e", "--checkpoint", str(tmp_path / "e4e.pt"), "--images", str(tmp_path / "real"), "--out", str(out)]


def generate_argv(tmp_path, out):
    return ["generate", "--generator", str(tmp_path / "g.pt"), "--latents", "w.npy", "--out", str(out)]


@pytest.mark.parametrize(("argv", "target", "message"), [
    (metrics_argv, lambda tmp, locked: tmp / "real", "--per-image {} is a folder; give a file name"),
    (metrics_argv, lambda tmp, locked: locked / "scores.csv", "--per-image {}: cannot write in {locked}"),
    (metrics_argv, lambda tmp, locked: tmp / "a_file" / "scores.csv", "--per-image {}: {tmp}/a_file is a file, not a folder"),
    (invert_argv, lambda tmp, locked: tmp / "a_file", "--out {} is a file; give a folder"),
    (invert_argv, lambda tmp, locked: locked / "inv" / "deeper", "--out {}: cannot write in {locked}"),
    (generate_argv, lambda tmp, locked: tmp / "a_file", "--out {} is a file; give a folder"),
    (generate_argv, lambda tmp, locked: locked, "--out {}: cannot write in {locked}"),
])
def test_output_locations_are_checked_before_any_work(folders, unwritable, spies, capsys, argv, target, message):
    path = target(folders, unwritable)
    assert main(argv(folders, path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: " + message.format(path, tmp=folders, locked=unwritable))
    assert spies == []
    assert (folders / "a_file").read_text() == "mine"


@pytest.mark.parametrize("command", ["edit", "toy-data", "train", "run"])
def test_every_writing_command_refuses_a_file_as_its_out_folder(folders, capsys, command):
    required = {"edit": ["--latents", "w.npy", "--generator", str(folders / "g.pt"), "--direction", "sefa:0"],
                "toy-data": ["--n", "2"],
                "train": ["--method", "e4e", "--domain", "cars", "--data", "d"], "run": []}[command]
    assert main([command, *required, "--out", str(folders / "a_file")]) == 2
    assert capsys.readouterr().err == f"error: --out {folders / 'a_file'} is a file; give a folder (it is created when missing)\n"


def test_a_write_that_fails_after_the_work_is_one_line_and_leaves_no_temporary_file(folders, monkeypatch, capsys):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.csv, "writer", disk_full)
    scores = folders / "scores" / "per_image.csv"
    assert main(metrics_argv(folders, scores)) == 2
    last_line = capsys.readouterr().err.splitlines()[-1].split("\r")[-1]  # after the progress bar's
    assert last_line == f"error: cannot write {scores}: No space left on device"
    assert list((folders / "scores").iterdir()) == []


def test_a_refused_write_is_a_user_error_naming_the_file(unwritable):
    with pytest.raises(E4EBenchError, match=f"cannot write {unwritable}/codes.npy: "):
        write_codes(torch.zeros(1, 4), unwritable / "codes.npy")
    assert not any(p.name.startswith(".codes.npy") for p in unwritable.iterdir())
