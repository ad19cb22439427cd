"""The embedded toy domain: shipped assets that verify, encoders that reconstruct, a benchmark that runs offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.cli import main
from e4e_bench.data import list_images, load_images, save_images
from e4e_bench.domains import get_domain
from e4e_bench.editing.directions import parse_direction
from e4e_bench.editing.ganspace import NAMED_EDITS
from e4e_bench.methods import build_method
from e4e_bench.metrics.msssim import ms_ssim_of_signed
from e4e_bench.networks.generator import sample_w
from e4e_bench.toy.render import toy_photos

REPO = Path(__file__).resolve().parents[1]
TOY_ASSETS = ("toy-generator", "toy-e4e", "toy-psp", "toy-ganspace", "toy-restyle-psp", "toy-restyle-e4e", "toy-w-encoder",
              "toy-hyperstyle")


@pytest.fixture(scope="module")
def toy_test_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy") / "test"
    pixels = toy_photos(16, 32, split="test")
    save_images(pixels.float() / 127.5 - 1, [folder / f"{i:05d}.png" for i in range(16)])
    return folder


def read(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.float64) / 127.5 - 1 for p in sorted(folder.glob("*.png"))])


def test_shipped_assets_verify_against_their_published_hashes(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))  # nothing downloaded: all ship inside
    assert main(["assets", "verify", *TOY_ASSETS]) == 0
    out = capsys.readouterr().out
    assert all(line.split()[1] == "verified" for line in out.splitlines() if line.split() and line.split()[0] in TOY_ASSETS)


@pytest.mark.parametrize("method", ["e4e", "psp", "restyle_psp", "restyle_e4e", "hyperstyle"])
def test_toy_encoders_reconstruct_far_better_than_the_mean_image(method, toy_test_images, tmp_path):
    """The trained encoders, not random ones: L2 below half that of predicting every picture by their mean."""
    assert main(["invert", "--method", method, "--domain", "toy", "--images", str(toy_test_images),
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    real, fake = read(toy_test_images), read(tmp_path / "images")
    assert fake.shape == real.shape == (16, 24, 32, 3)
    l2 = np.mean((real - fake) ** 2)
    mean_image = np.mean((real - real.mean(0, keepdims=True)) ** 2)
    assert l2 < 0.5 * mean_image, (l2, mean_image)


def test_toy_restyle_refines_offline(tmp_path, monkeypatch):
    """ReStyle's last refinement step reconstructs the toy test images better than its first."""
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    assert main(["run", "--domain", "toy", "--methods", "restyle_psp,restyle_e4e", "--n-images", "16", "--metrics", "l2",
                 "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    for method, values in summary_values(tmp_path / "run").items():
        assert values["l2_step5"] < values["l2_step1"], (method, values)


def car_pixels(pictures: torch.Tensor) -> torch.Tensor:
    """`[N, H, W]` mask of the pixels unlike their row's ends: the toy car, which never fills a row, on sky or ground."""
    ends = torch.cat([pictures[..., :2], pictures[..., -2:]], dim=-1).mean(-1, keepdim=True)
    return (pictures - ends).norm(dim=1) > 0.3


def body_colour(pictures: torch.Tensor) -> torch.Tensor:
    """`[N, 3]`: the median colour of each car, its near-black tyres left out."""
    body = car_pixels(pictures) & (pictures.mean(1) > -0.6)
    return torch.stack([picture.flatten(1)[:, mask.flatten()].median(1).values for picture, mask in zip(pictures, body)])


@pytest.mark.parametrize(("edit", "grows", "recolours"), [("size", True, False), ("hue", False, True)])
def test_toy_edits_do_what_their_names_say(edit, grows, recolours):
    """Over 64 sampled cars at the edit's own strength: `size` makes the car larger in its colour, `hue` the reverse."""
    generator = load_generator(asset_path("toy-generator"))[0]
    direction = parse_direction(f"ganspace:toy-ganspace:{edit}", generator)
    codes = sample_w(generator, 64, torch.Generator().manual_seed(1))[:, None].repeat(1, generator.n_latent, 1)
    with torch.no_grad():
        before, after = (get_domain("toy").crop(generator(c, noise="const")).clamp(-1, 1)
                         for c in (codes, direction.add(codes, NAMED_EDITS[edit].strength)))
    area = (car_pixels(after).float().mean((1, 2)) / car_pixels(before).float().mean((1, 2))).median()
    colour_shift = (body_colour(after) - body_colour(before)).norm(dim=1).median()
    assert (area > 1.15) == grows, float(area)
    assert (colour_shift > 0.3 if recolours else colour_shift < 0.25), float(colour_shift)


def summary_values(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {m: {k: v["mean"] for k, v in r["values"].items() if k != "seconds_per_image"}
            for m, r in summary["methods"].items()}


RUN = ["run", "--domain", "toy", "--methods", "e4e,opt_w", "--n-images", "16", "--option", "steps=4", "--device", "cpu"]


def test_toy_run_offline_then_check_against_its_own_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    assert main([*RUN, "--out", str(tmp_path / "run")]) == 0
    values = summary_values(tmp_path / "run")
    assert {"l2", "msssim", "swd", "swd_edit", "lec", "layer_spread", "w_mahalanobis"} <= set(values["e4e"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(config["unavailable_metrics"]) == {"lpips", "id", "fid"}  # no weights offline; the toy has no ID network
    baseline = tmp_path / "baseline.json"
    assert main(["check", str(tmp_path / "run"), "--baseline", str(baseline), "--update"]) == 0
    assert main(["check", str(tmp_path / "run"), "--baseline", str(baseline)]) == 0


def test_two_process_torchrun_gives_the_single_process_summary(tmp_path):
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "e4e_bench", *RUN, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    shared = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "e4e_bench", *RUN, "--out", str(tmp_path / "two")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert shared.returncode == 0, shared.stderr[-3000:]
    assert summary_values(tmp_path / "two") == summary_values(tmp_path / "one")


def test_invert_opt_w_on_the_toy_is_offline_and_gives_runs_codes(tmp_path, monkeypatch):
    # The toy's projector defaults (pixel loss, no LPIPS download) come from opt_w's registry entry, so
    # `invert` builds the very method `run` builds.
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    assert main(["run", "--domain", "toy", "--methods", "opt_w", "--n-images", "8", "--option", "steps=5",
                 "--metrics", "l2", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    assert main(["invert", "--method", "opt_w", "--domain", "toy", "--steps", "5", "--images",
                 str(tmp_path / "run" / "inputs"), "--out", str(tmp_path / "inv"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "inv" / "latents.npy"),
                                  np.load(tmp_path / "run" / "methods" / "opt_w" / "latents.npy"))


def test_toy_hyperstyle_reconstructs_better_than_its_w_encoder_with_the_same_codes(toy_test_images):
    """The shipped pair: HyperStyle's 5 passes beat its W encoder alone (pass 0) in L2 and MS-SSIM, on the
    very codes of the W encoder (one row repeated: as close to W as can be)."""
    domain = get_domain("toy")
    method = build_method("hyperstyle", domain=domain)
    images = load_images(list_images(toy_test_images), domain.encoder_input).images
    points = {}
    method.invert_along(images, [0, 5], lambda value, inversion: points.setdefault(value, inversion))
    codes = points[5].codes
    assert torch.equal(codes, points[0].codes) and torch.equal(codes, codes[:, :1].expand_as(codes))
    scores = {}
    for passes, inversion in points.items():
        fake = domain.crop(method.decode(inversion)).clamp(-1, 1)
        upsampled = [F.interpolate(x, size=domain.eval_size, mode="bilinear") for x in (images, fake)]
        scores[passes] = (F.mse_loss(fake, images).item(), ms_ssim_of_signed(*upsampled).mean().item())
    assert scores[5][0] < scores[0][0] and scores[5][1] > scores[0][1], scores
