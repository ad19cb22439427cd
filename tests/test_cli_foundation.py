"""End-to-end runs of the foundation commands: generate, assets, and the CLI's error handling."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench import assets
from e4e_bench.cli import COMMANDS, main
from e4e_bench.errors import E4EBenchError


def test_help_lists_the_registered_commands():
    out = subprocess.run([sys.executable, "-m", "e4e_bench", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_generate_w_and_wplus(tmp_path, tiny_generator, tiny_generator_ckpt):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 64)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    assert main(["generate", "--generator", str(tiny_generator_ckpt), "--latents", str(tmp_path / "w.npy"),
                 "--out", str(tmp_path / "w"), "--device", "cpu"]) == 0
    files = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert files == ["00000.png", "00001.png", "00002.png"]
    image = np.asarray(Image.open(tmp_path / "w" / "00001.png"))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    expected = tiny_generator(torch.from_numpy(w[1:2]))
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1

    wplus = np.repeat(w[:, None], tiny_generator.n_latent, axis=1)
    np.save(tmp_path / "wplus.npy", wplus)
    assert main(["generate", "--generator", str(tiny_generator_ckpt), "--latents", str(tmp_path / "wplus.npy"),
                 "--out", str(tmp_path / "wplus"), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "wplus" / "00001.png")), image)


def test_generate_rejects_bad_codes(tmp_path, tiny_generator_ckpt, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 64), dtype=np.float32))
    code = main(["generate", "--generator", str(tiny_generator_ckpt), "--latents", str(tmp_path / "bad.npy"),
                 "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.npy: codes have shape [2, 3, 64]" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_generate_missing_generator_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.zeros((1, 64), dtype=np.float32))
    code = main(["generate", "--generator", str(tmp_path / "none.pt"), "--latents", str(tmp_path / "w.npy"), "--out", str(tmp_path)])
    assert code == 2 and "none.pt does not exist" in capsys.readouterr().err


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_assets_list_and_missing_message(cache, capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert "stylegan2-car" in out and "missing" in out
    with pytest.raises(E4EBenchError, match="assets fetch lpips-alex"):
        assets.asset_path("lpips-alex")


def serve(monkeypatch, payload: bytes):
    def fake_urlopen(url, timeout):
        response = io.BytesIO(payload)
        response.headers = {"Content-Length": str(len(payload))}
        return response
    monkeypatch.setattr(assets.urllib.request, "urlopen", fake_urlopen)


def test_fetch_records_then_verifies_hash(cache, monkeypatch, capsys):
    serve(monkeypatch, b"generator bytes")
    assert main(["assets", "fetch", "stylegan2-horse"]) == 0
    assert (cache / "stylegan2-horse-config-f.pt").read_bytes() == b"generator bytes"
    assert assets.recorded_hashes()["stylegan2-horse"] == hashlib.sha256(b"generator bytes").hexdigest()
    assert main(["assets", "verify", "stylegan2-horse"]) == 0
    assert "ok" in capsys.readouterr().out
    (cache / "stylegan2-horse-config-f.pt").write_bytes(b"tampered")
    assert main(["assets", "verify", "stylegan2-horse"]) == 2
    assert "does not match" in capsys.readouterr().err


def test_fetch_rejects_wrong_prefix_and_leaves_nothing(cache, monkeypatch, capsys):
    serve(monkeypatch, b"not alexnet")
    assert main(["assets", "fetch", "lpips-alex"]) == 2
    assert "does not start with 7be5be79" in capsys.readouterr().err
    assert not any(cache.iterdir())


def test_fetch_extracts_archive_member(cache, monkeypatch):
    pack = io.BytesIO()
    with zipfile.ZipFile(pack, "w") as z:
        z.writestr("buffalo_l/w600k_r50.onnx", b"onnx model")
        z.writestr("buffalo_l/det_10g.onnx", b"detector")
    serve(monkeypatch, pack.getvalue())
    assert main(["assets", "fetch", "arcface-w600k-r50"]) == 0
    assert (cache / "w600k_r50.onnx").read_bytes() == b"onnx model"
