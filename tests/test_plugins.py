"""Methods from outside the harness: an installed plug-in package, a broken one, and a method with
per-image decoder state that runs through `invert`, `run` and `generate` with no harness change."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.checkpoints import load_generator
from e4e_bench.cli import main
from e4e_bench.data import load_images, to_uint8
from e4e_bench.domains import DOMAINS
from e4e_bench.editing import parse_direction
from e4e_bench.methods import METHODS, Inversion, MethodEntry, WeightSource
from tests.conftest import TINY_CARS, write_images

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "plugin_method"


def cli(argv: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m e4e_bench ARGV` in a fresh interpreter that also sees the packages under `pythonpath`."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(pythonpath), str(REPO)]), "E4E_BENCH_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "e4e_bench", *argv], capture_output=True, text=True, cwd=cwd, env=env)


def table_rows(run: Path) -> dict[str, str]:
    lines = (run / "tables" / "results.md").read_text().splitlines()
    return {line.split("|")[1].strip(): line for line in lines if line.startswith("| ") and "---" not in line}


def test_an_installed_plugin_adds_a_method_and_a_metric_to_the_toy_table(tmp_path):
    target, source = tmp_path / "site", tmp_path / "plugin_method"
    shutil.copytree(PLUGIN, source)  # setuptools builds inside the source folder: keep the checkout clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    result = cli(["run", "--methods", "e4e,nearest_w", "--domain", "toy", "--n-images", "8", "--out", "run"],
                 target, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = table_rows(tmp_path / "run")
    assert {"e4e", "nearest_w"} <= set(rows) and "L1 ↓" in rows["method"]  # the plug-in's metric is a column
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    nearest = summary["methods"]["nearest_w"]["values"]
    assert nearest["layer_spread"]["mean"] == pytest.approx(0, abs=1e-6)  # a W code for every image
    assert nearest["l1"]["mean"] > 0 and nearest["l1"]["n"] == 8
    helped = cli(["invert", "--method", "nearest_w", "--help"], target, tmp_path)
    assert "--match-width MATCH_WIDTH" in helped.stdout and "toy: samples=2048" in " ".join(helped.stdout.split())


def fake_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    """An installed distribution, as pip leaves one: its dist-info (metadata, entry points) and modules."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, text in (modules or {}).items():
        (site / f"{module}.py").write_text(text)


def test_a_broken_or_clashing_plugin_is_one_line_and_the_builtins_still_run(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "broken-plugin", "[e4e_bench.methods]\nbroken = no_such_module:ENTRY\n")
    fake_distribution(site, "clashing-plugin", "[e4e_bench.methods]\ne4e = clash:E4E\n",
                      {"clash": "from e4e_bench.methods.contract import MethodEntry\n"
                                "E4E = MethodEntry('e4e', 'clash:build', 'clash:Options', 'not the real one')\n"})
    fake_distribution(site, "broken-metric", "[e4e_bench.metrics]\nbad = no_such_metrics\n")
    result = cli(["run", "--methods", "e4e", "--domain", "toy", "--n-images", "8", "--metrics", "l2",
                  "--out", "run"], site, tmp_path)
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if "plug-in" in line]
    assert len(errors) == 3
    assert any("broken-plugin" in line and "No module named 'no_such_module'" in line for line in errors)
    assert any("clashing-plugin" in line and "'e4e' is already registered by e4e-bench" in line for line in errors)
    assert any("broken-metric" in line for line in errors)
    assert "e4e" in table_rows(tmp_path / "run")


@dataclasses.dataclass(frozen=True)
class BiasOptions:
    strength: float = dataclasses.field(default=1.0, metadata={"help": "scale of the per-image colour bias"})


@dataclasses.dataclass
class BiasedMean:
    """Every image gets the generator's mean code, and a per-image colour bias added to the decoded frame:
    decoder state the shared generator cannot hold."""

    generator: object
    input_size: tuple[int, int]
    options: BiasOptions
    source: WeightSource
    name: str = "biased_mean"
    resizes_inputs: bool = False

    def invert(self, images: torch.Tensor) -> Inversion:
        mean = self.generator.mean_latent(500, rng=torch.Generator().manual_seed(0))  # [1, style_dim]
        codes = self.generator.to_wplus(mean.expand(len(images), -1))
        bias = self.options.strength * images.mean(dim=(2, 3), keepdim=True)  # [B, 3, 1, 1]
        return Inversion(codes.clone(), {"bias": bias})

    def decode(self, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        codes = inversion.codes if codes is None else codes
        return self.generator(codes, noise="const") + inversion.state["bias"]


def build_biased_mean(*, domain, checkpoint, generator, device, options, random_weights, seed) -> BiasedMean:
    decoder, _ = load_generator(generator, device)
    return BiasedMean(decoder.eval().requires_grad_(False), domain.frame_size, options, WeightSource(generator=generator))


STATE_DOMAIN = dataclasses.replace(TINY_CARS, name="tiny_state", default_edit="sefa:0", default_edit_name="SeFa 0",
                                   default_edit_factor=1.0)


@pytest.fixture
def biased_method():
    entry = MethodEntry("biased_mean", f"{__name__}:build_biased_mean", f"{__name__}:BiasOptions",
                        "mean code plus a per-image colour bias", package="tests")
    with METHODS.registered(entry.name, entry), DOMAINS.registered(STATE_DOMAIN.name, STATE_DOMAIN):
        yield


def expected_frames(generator, codes: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """The method's own rule written out: generator(codes) + bias, cropped, as 8-bit pixels."""
    with torch.inference_mode():
        frames = STATE_DOMAIN.crop(generator(codes, noise="const") + bias)
    return to_uint8(frames).permute(0, 2, 3, 1).numpy().astype(int)


def test_a_method_with_per_image_state_runs_through_invert_run_and_generate(tmp_path, biased_method,
                                                                            tiny_generator_ckpt):
    images = torch.rand(8, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    names = [f"{i:03d}.png" for i in range(8)]
    write_images(tmp_path / "data", images, names)
    loaded = load_images(sorted((tmp_path / "data").iterdir()), (24, 32)).images
    generator, _ = load_generator(tiny_generator_ckpt)
    codes = generator.to_wplus(generator.mean_latent(500, rng=torch.Generator().manual_seed(0)).expand(8, -1))
    bias = 0.5 * loaded.mean(dim=(2, 3), keepdim=True)

    assert main(["invert", "--method", "biased_mean", "--domain", STATE_DOMAIN.name, "--generator",
                 str(tiny_generator_ckpt), "--images", str(tmp_path / "data"), "--out", str(tmp_path / "inv"),
                 "--strength", "0.5", "--device", "cpu"]) == 0
    stored = np.stack([np.asarray(Image.open(tmp_path / "inv" / "images" / name)) for name in names]).astype(int)
    assert np.abs(stored - expected_frames(generator, codes, bias)).max() <= 1
    assert main(["generate", "--inversion", str(tmp_path / "inv"), "--out", str(tmp_path / "gen"), "--device", "cpu"]) == 0
    top, bottom = STATE_DOMAIN.crop_rows
    regenerated = np.stack([np.asarray(Image.open(tmp_path / "gen" / f"{i:05d}.png"))[top:bottom] for i in range(8)])
    assert np.array_equal(regenerated.astype(int), stored)  # the state came back from disk, per image

    assert main(["run", "--methods", "biased_mean", "--domain", STATE_DOMAIN.name, "--data", str(tmp_path / "data"),
                 "--generator", str(tiny_generator_ckpt), "--option", "biased_mean.strength=0.5", "--metrics", "l2,lec",
                 "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    folder = tmp_path / "run" / "methods" / "biased_mean"
    edited_codes = parse_direction("sefa:0", generator).add(codes, 1.0)
    edits = np.stack([np.asarray(Image.open(folder / "edits" / name)) for name in names]).astype(int)
    assert np.abs(edits - expected_frames(generator, edited_codes, bias)).max() <= 1  # each edit keeps its bias
    values = json.loads((tmp_path / "run" / "summary.json").read_text())["methods"]["biased_mean"]["values"]
    assert values["lec"]["n"] == 8 and np.isfinite(values["lec"]["mean"])


def test_a_plugins_files_are_in_the_assets_registry(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "weights-plugin", "[e4e_bench.assets]\nweights = my_weights\n", {"my_weights": (
        "from e4e_bench.assets import Asset, register_asset\n"
        "register_asset(Asset('my-encoder-cars', 'my_encoder_cars.pt', ('https://example.org/my.pt',),\n"
        "                     'e4e-psp-checkpoint', 'a plug-in encoder for cars'))\n")})
    result = cli(["assets", "list"], site, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "my-encoder-cars" in result.stdout and "toy-generator" in result.stdout
