"""Checkpoint layouts recognised by content, strict loading, and one-line errors for bad files."""

from __future__ import annotations

import argparse
import ast
import os
from pathlib import Path

import pytest
import torch

from e4e_bench.checkpoints import (
    checkpoint_kind,
    generator_checkpoint,
    load_generator,
    read_checkpoint,
    read_tensor,
    save_checkpoint,
)
from e4e_bench import cli
from e4e_bench.editing.ganspace import load_pca
from e4e_bench.editing.interfacegan import read_boundary
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import load_inverter
from tests.conftest import make_tiny_generator, rosinality_checkpoint


def decode(generator, seed=0):
    codes = torch.randn(2, generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    return generator(codes)


def test_rosinality_conversion_layout(tmp_path, tiny_generator):
    latent_avg = torch.randn(64)
    save_checkpoint(rosinality_checkpoint(tiny_generator, latent_avg), tmp_path / "g.pt")
    generator, avg = load_generator(tmp_path / "g.pt")
    torch.testing.assert_close(decode(generator), decode(tiny_generator), atol=0, rtol=0)
    torch.testing.assert_close(avg, latent_avg)


def test_training_snapshot_layout(tmp_path, tiny_generator):
    """rosinality train.py snapshots: g, d, g_ema, optimisers, argparse args, and no latent_avg."""
    snapshot = {
        "g": tiny_generator.state_dict(),
        "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)},
        "g_ema": tiny_generator.state_dict(),
        "g_optim": {"state": {}, "param_groups": []},
        "d_optim": {"state": {}, "param_groups": []},
        "args": argparse.Namespace(size=32, batch=4),
        "ada_aug_p": 0.0,
    }
    save_checkpoint(snapshot, tmp_path / "snapshot.pt")
    generator, avg = load_generator(tmp_path / "snapshot.pt")
    assert avg is None
    torch.testing.assert_close(decode(generator), decode(tiny_generator), atol=0, rtol=0)


def test_official_encoder_checkpoint_decoder_layout(tmp_path, tiny_generator):
    state = {f"decoder.{k}": v for k, v in tiny_generator.state_dict().items()}
    state["encoder.input_layer.0.weight"] = torch.randn(8, 3, 3, 3)
    ckpt = {"state_dict": state, "opts": {"encoder_type": "Encoder4Editing"}, "latent_avg": torch.randn(8, 64)}
    save_checkpoint(ckpt, tmp_path / "e4e.pt")
    assert checkpoint_kind(read_checkpoint(tmp_path / "e4e.pt")) == "encoder"
    generator, avg = load_generator(tmp_path / "e4e.pt")
    assert avg.shape == (8, 64)
    torch.testing.assert_close(decode(generator), decode(tiny_generator), atol=0, rtol=0)


def test_own_format_round_trip(tmp_path, tiny_generator):
    save_checkpoint(generator_checkpoint(tiny_generator), tmp_path / "ours.pt")
    generator, _ = load_generator(tmp_path / "ours.pt")
    assert generator.init_kwargs["size"] == 32
    torch.testing.assert_close(decode(generator, 3), decode(tiny_generator, 3), atol=0, rtol=0)


def test_missing_file(tmp_path):
    with pytest.raises(E4EBenchError, match="does not exist"):
        load_generator(tmp_path / "nope.pt")


def test_corrupt_file(tmp_path, tiny_generator_ckpt):
    data = tiny_generator_ckpt.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(E4EBenchError, match="not a readable PyTorch checkpoint"):
        load_generator(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(E4EBenchError, match="not a readable PyTorch checkpoint"):
        load_generator(tmp_path / "text.pt")


def test_wrong_kind_names_what_was_found(tmp_path):
    save_checkpoint({"model": {}, "epoch": 3}, tmp_path / "other.pt")
    with pytest.raises(E4EBenchError, match="not a generator checkpoint.*epoch, model"):
        load_generator(tmp_path / "other.pt")


def test_mismatched_weights(tmp_path, tiny_generator):
    state = tiny_generator.state_dict()
    state["convs.1.conv.weight"] = torch.randn(1, 16, 32, 3, 3)
    save_checkpoint({"g_ema": state}, tmp_path / "bad.pt")
    with pytest.raises(E4EBenchError, match="do not match a StyleGAN2 generator"):
        load_generator(tmp_path / "bad.pt")


def test_nan_weights(tmp_path, tiny_generator):
    state = tiny_generator.state_dict()
    state["conv1.activate.bias"] = torch.full_like(state["conv1.activate.bias"], float("nan"))
    save_checkpoint({"g_ema": state}, tmp_path / "nan.pt")
    with pytest.raises(E4EBenchError, match="NaN"):
        load_generator(tmp_path / "nan.pt")


def test_code_in_pickle_is_refused(tmp_path):
    torch.save({"g_ema": {}, "hook": make_tiny_generator}, tmp_path / "code.pt")
    with pytest.raises(E4EBenchError, match=r"holds objects other than tensors \(a reference to .*make_tiny_generator\)"):
        read_checkpoint(tmp_path / "code.pt")


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_by_every_reader_without_torch_advice(tmp_path, zip_format, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "comp": Payload(marker)}, path, _use_new_zipfile_serialization=zip_format)
    readers = [read_checkpoint, read_tensor, load_generator, load_inverter, load_pca, read_boundary]
    for reader in readers:
        with pytest.raises(E4EBenchError) as refused:
            reader(path)
        message = str(refused.value)
        assert f"{path} holds objects other than tensors (a reference to " in message and "is refused" in message
        assert "weights_only" not in message and "\n" not in message
    assert cli.main(["generate", "--generator", str(path), "--latents", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds objects other than tensors" in err and "weights_only" not in err
    assert not marker.exists()


def test_only_the_checkpoint_module_calls_torch_load():
    """Every file goes through load_file's data-only reading."""
    root = Path(__file__).resolve().parents[1]

    def calls_torch_load(source: str) -> bool:
        return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                   and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                   for node in ast.walk(ast.parse(source)))

    callers = {p.relative_to(root).as_posix() for folder in ("e4e_bench", "encoders", "baselines")
               for p in (root / folder).rglob("*.py") if calls_torch_load(p.read_text())}
    assert callers == {"e4e_bench/checkpoints.py"}


def test_non_pickle_bytes_are_refused_without_torch_advice(tmp_path):
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(E4EBenchError, match="is not a readable PyTorch checkpoint") as refused:
        read_checkpoint(tmp_path / "noise.pt")
    assert "weights_only" not in str(refused.value)


def test_read_tensor(tmp_path):
    torch.save(torch.ones(1, 64), tmp_path / "d.pt")
    assert read_tensor(tmp_path / "d.pt").shape == (1, 64)
    with pytest.raises(E4EBenchError, match="expected a single tensor"):
        save_checkpoint({"a": 1}, tmp_path / "dict.pt")
        read_tensor(tmp_path / "dict.pt")


def test_legacy_serialization_format_loads(tmp_path, tiny_generator):
    torch.save(rosinality_checkpoint(tiny_generator), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    generator, _ = load_generator(tmp_path / "legacy.pt")
    torch.testing.assert_close(decode(generator), decode(tiny_generator), atol=0, rtol=0)


def test_loaded_weights_never_write_back_to_the_file(tmp_path, tiny_generator_ckpt):
    before = tiny_generator_ckpt.read_bytes()
    ckpt = read_checkpoint(tiny_generator_ckpt)
    ckpt["g_ema"]["conv1.activate.bias"].add_(1.0)
    assert tiny_generator_ckpt.read_bytes() == before
