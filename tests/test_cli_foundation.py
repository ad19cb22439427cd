"""End-to-end runs of the foundation commands: generate, assets, and the CLI's error handling."""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import e4e_bench
from tests.conftest import write_images
from e4e_bench import assets
from e4e_bench.cli import COMMANDS, build_parser, configure_logging, main
from e4e_bench.errors import E4EBenchError


def test_help_lists_the_registered_commands():
    out = subprocess.run([sys.executable, "-m", "e4e_bench", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["--version"])
    assert exit_status.value.code == 0 and capsys.readouterr().out == f"e4e-bench {e4e_bench.__version__}\n"


def options_without_help(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                missing += options_without_help(subparser, f"{name} {command}")
        elif action.option_strings and not action.help:
            missing.append(f"{name} {action.option_strings[-1]}")
    return missing


def test_every_option_of_every_command_has_help():
    assert options_without_help(build_parser(), "e4e-bench") == []


def test_train_help_shows_the_defaults_and_domain_is_a_fixed_list(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--method", "e4e", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    # official default 0.1; the e4e recipe sets 0.5 beyond faces, the pSp one 0 (encoders.md section 4); the toy's
    # recipe trains offline, without similarity losses
    assert ("(defaults: e4e 0.1 (faces), 0.5 (cars, horse, church), 0 (toy); psp 0.1 (faces), 0 (cars, horse, church, "
            "toy); restyle_psp 0.1 (faces), 0 (cars, horse, church, toy); restyle_e4e 0.1 (faces), 0 (cars, horse, "
            "church, toy); hyperstyle 0.1 (faces), 0 (cars, horse, church, toy))") in text
    assert "--batch-size BATCH_SIZE training images per step and per process" in text and "(default: 8)" in text
    assert "(default: 10)" in text and "--domain {cars,church,faces,horse,toy}" in text
    with pytest.raises(SystemExit) as exit_status:
        main(["train", "--method", "e4e", "--domain", "cats", "--data", "d", "--out", "o"])
    assert exit_status.value.code == 2 and "invalid choice: 'cats'" in capsys.readouterr().err


def test_closed_output_pipe_ends_quietly():
    """`assets list | head`: the reader closes the pipe before the command writes."""
    process = subprocess.Popen([sys.executable, "-m", "e4e_bench", "assets", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 141 and err == ""


def test_verbose_logging_leaves_third_party_loggers_at_warning(tmp_path):
    images = torch.zeros(2, 3, 16, 16)
    write_images(tmp_path / "real", images)
    write_images(tmp_path / "fake", images)
    run = subprocess.run([sys.executable, "-m", "e4e_bench", "-v", "metrics", "--real", str(tmp_path / "real"),
                          "--fake", str(tmp_path / "fake"), "--metrics", "l2", "--device", "cpu"],
                         capture_output=True, text=True, check=True)
    assert "PIL" not in run.stderr  # PIL logs every PNG chunk it reads at DEBUG
    configure_logging(verbose=True)
    assert logging.getLogger("e4e_bench.metrics").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("encoders.training").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("PIL.PngImagePlugin").getEffectiveLevel() == logging.WARNING
    configure_logging(verbose=False)
    assert logging.getLogger("e4e_bench").getEffectiveLevel() == logging.INFO


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


def test_generate_missing_generator_is_one_line_naming_file_and_asset(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.zeros((1, 64), dtype=np.float32))
    code = main(["generate", "--generator", str(tmp_path / "none.pt"), "--latents", str(tmp_path / "w.npy"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'none.pt'} is not a file, nor the name of a registered asset")


def test_generator_flag_takes_an_asset_name(tmp_path):
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32))
    by_path, by_name = tmp_path / "by_path", tmp_path / "by_name"
    for generator, out in ((assets.asset_path("toy-generator"), by_path), ("toy-generator", by_name)):
        assert main(["generate", "--generator", str(generator), "--latents", str(tmp_path / "w.npy"),
                     "--out", str(out), "--device", "cpu"]) == 0
    for name in ("00000.png", "00001.png"):
        assert (by_name / name).read_bytes() == (by_path / name).read_bytes()


@pytest.mark.parametrize("argv", [
    ["generate", "--latents", "w.npy", "--out", "o", "--generator", "stylegan2-car"],
    ["edit", "--latents", "w.npy", "--out", "o", "--direction", "sefa:0", "--generator", "stylegan2-car"],
    ["fit-ganspace", "--out", "pca.pt", "--generator", "stylegan2-car"],
    ["invert", "--method", "e4e", "--images", "i", "--out", "o", "--checkpoint", "e4e-cars"],
    ["lec", "--method", "e4e", "--images", "i", "--direction", "sefa:0", "--factor", "1", "--generator", "stylegan2-car"],
    ["run", "--generator", "stylegan2-car"],
    ["run", "--checkpoint", "e4e=e4e-cars"],
])
def test_file_flags_take_asset_names(argv, cache, capsys):
    """Every command's --generator / --checkpoint names a registered asset; one not fetched yet says how to get it."""
    asset = argv[-1].rpartition("=")[2]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run `python -m e4e_bench assets fetch {asset}`" in err


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_assets_list_and_missing_message(cache, capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert "stylegan2-car" in out and "missing" in out
    for asset in assets.ASSETS.values():
        assert f" {asset.path}\n" in out, asset.name
    with pytest.raises(E4EBenchError, match="assets fetch lpips-alex"):
        assets.asset_path("lpips-alex")


def serve(monkeypatch, payload: bytes, broken_url: str | None = None):
    def fake_urlopen(url, timeout):
        if url == broken_url:
            raise OSError("connection refused")
        response = io.BytesIO(payload)
        response.headers = {"Content-Length": str(len(payload))}
        return response
    monkeypatch.setattr(assets.urllib.request, "urlopen", fake_urlopen)


def report_lines(text: str) -> dict[str, str]:
    """{asset name: the rest of its line} of `assets verify` output."""
    return {line.split()[0]: line.split(None, 1)[1] for line in text.splitlines() if line.strip()}


def test_fetch_records_a_local_hash_and_calls_the_file_unverified(cache, monkeypatch, capsys):
    serve(monkeypatch, b"generator bytes")
    assert main(["assets", "fetch", "stylegan2-horse"]) == 0
    assert "unverified: no published sha256; recorded" in capsys.readouterr().out
    assert (cache / "stylegan2-horse-config-f.pt").read_bytes() == b"generator bytes"
    assert assets.recorded_hashes()["stylegan2-horse"] == hashlib.sha256(b"generator bytes").hexdigest()
    assert main(["assets", "verify", "stylegan2-horse"]) == 0
    assert report_lines(capsys.readouterr().out)["stylegan2-horse"].startswith(
        "unverified no published sha256; matches the sha256 recorded locally")
    (cache / "stylegan2-horse-config-f.pt").write_bytes(b"tampered")
    assert main(["assets", "verify", "stylegan2-horse"]) == 2
    captured = capsys.readouterr()
    assert report_lines(captured.out)["stylegan2-horse"].startswith("mismatched sha256")
    assert "error: mismatched: stylegan2-horse" in captured.err


@pytest.fixture
def published_asset():
    """A registered asset whose published sha256 is that of `published_asset.bytes`."""
    good = b"published bytes"
    asset = assets.Asset("test-published", "published.pt", (), "edit-direction", "a file with a published hash",
                         sha256=hashlib.sha256(good).hexdigest())
    with assets.ASSETS.registered(asset.name, asset):
        yield asset, good


def test_verify_reports_every_asset_and_goes_on_after_a_mismatch(cache, published_asset, capsys):
    asset, good = published_asset
    cache.mkdir()
    (cache / "alexnet-owt-7be5be79.pth").write_bytes(b"not alexnet")  # published prefix, wrong file
    (cache / asset.filename).write_bytes(good)
    (cache / "stylegan2-horse-config-f.pt").write_bytes(b"copied by hand")
    names = ["lpips-alex", asset.name, "stylegan2-horse"]
    assert main(["assets", "verify", *names]) == 2
    lines = report_lines(capsys.readouterr().out)
    assert list(lines) == names
    assert lines["lpips-alex"].startswith("mismatched sha256") and "7be5be79" in lines["lpips-alex"]
    assert lines[asset.name] == "verified   matches the published sha256"
    assert lines["stylegan2-horse"].startswith("unverified no published sha256; recorded this file's sha256")

    assert main(["assets", "verify"]) == 2  # every registered asset, the missing ones named as missing
    lines = report_lines(capsys.readouterr().out)
    assert set(lines) == set(assets.ASSETS) and lines["stylegan2-car"].startswith("missing")
    assert lines["stylegan2-horse"].startswith("unverified no published sha256; matches")


def test_an_empty_cache_verifies_the_packaged_assets_and_a_named_missing_one_fails(cache, capsys):
    assert main(["assets", "verify"]) == 0  # the toy domain's files ship inside the package
    lines = report_lines(capsys.readouterr().out)
    assert {name for name, line in lines.items() if line.startswith("verified")} == {
        name for name, asset in assets.ASSETS.items() if asset.packaged}
    assert main(["assets", "verify", "stylegan2-car"]) == 2
    assert f"not cached in {cache}: stylegan2-car" in capsys.readouterr().err


def test_fetch_tries_every_name_and_reports_each(cache, monkeypatch, capsys):
    serve(monkeypatch, b"bytes", broken_url=assets.ASSETS["stylegan2-car"].urls[0])
    assert main(["assets", "fetch", "stylegan2-car", "no-such-asset", "stylegan2-church"]) == 2
    captured = capsys.readouterr()
    assert "stylegan2-car: failed: could not download stylegan2-car-config-f.pt" in captured.err
    assert "connection refused" in captured.err
    assert "no-such-asset: failed: unknown asset" in captured.err
    assert "error: 2 of 3 assets could not be fetched: stylegan2-car, no-such-asset" in captured.err
    assert "stylegan2-church: " in captured.out and (cache / "stylegan2-church-config-f.pt").read_bytes() == b"bytes"
    assert not (cache / "stylegan2-car-config-f.pt").exists()
    assert main(["assets", "fetch", "stylegan2-church"]) == 0
    assert "stylegan2-church: already cached" in capsys.readouterr().out


def test_fetch_rejects_wrong_prefix_and_leaves_nothing(cache, monkeypatch, capsys):
    serve(monkeypatch, b"not alexnet")
    assert main(["assets", "fetch", "lpips-alex"]) == 2
    assert "does not start with the published 7be5be79" in capsys.readouterr().err
    assert not any(cache.iterdir())


def test_fetch_extracts_archive_member_and_says_which(cache, monkeypatch, capsys):
    pack = io.BytesIO()
    with zipfile.ZipFile(pack, "w") as z:
        z.writestr("buffalo_l/w600k_r50.onnx", b"onnx model")
        z.writestr("buffalo_l/det_10g.onnx", b"detector")
    serve(monkeypatch, pack.getvalue())
    assert main(["assets", "fetch", "arcface-w600k-r50"]) == 0
    assert (cache / "w600k_r50.onnx").read_bytes() == b"onnx model"
    assert "kept buffalo_l/w600k_r50.onnx of the downloaded pack" in capsys.readouterr().out
