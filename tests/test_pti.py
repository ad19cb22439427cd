"""PTI: its pivot is opt_w's code, batched tuning equals tuning each image alone (with the locality
regulariser too), it reconstructs better than opt_w on the toy (L2 and MS-SSIM) while its edits still
move the picture, its tuned generators are kept in memory only unless asked, its pivot is opt_w or an
encoder whose checkpoint the preflight names, and a run killed during tuning resumes to the same summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.target_lpips import TargetLPIPS
from baselines.tuning import Locality, LocalityRecipe, PerImageGenerator, TuningRecipe, tune
from e4e_bench.cli import main
from e4e_bench.data import from_uint8
from e4e_bench.domains import get_domain
from e4e_bench.editing.directions import parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import METHODS, build_method, method_options
from e4e_bench.metrics.distortion import mean_squared_error
from e4e_bench.metrics.msssim import ms_ssim_of_signed
from e4e_bench.networks.lpips_net import build_lpips
from e4e_bench.toy.render import toy_photos
from tests.conftest import make_tiny_generator, write_images

TOY = get_domain("toy")
FEW_STEPS = {"steps": 20, "tune_steps": 15}


@pytest.fixture(scope="module")
def toy_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy") / "images"
    write_images(folder, from_uint8(toy_photos(16, TOY.resolution, split="test")))
    return folder


def read(folder):
    return np.stack([np.asarray(Image.open(p), dtype=np.float64) / 127.5 - 1 for p in sorted(folder.glob("*.png"))])


def test_the_pivot_is_opt_ws_code_and_tuning_reconstructs_better():
    """On the toy test images, with the same projection options: the same codes as opt_w, and a
    lower L2 and a higher MS-SSIM (the run's metric functions) on every image."""
    images = from_uint8(toy_photos(8, TOY.resolution, split="test"))
    pti = build_method("pti", domain=TOY, device=torch.device("cpu"), options=FEW_STEPS)
    opt_w = build_method("opt_w", domain=TOY, device=torch.device("cpu"), options={"steps": 20})
    tuned, projected = pti.invert(images), opt_w.invert(images)
    assert torch.equal(tuned.codes, projected.codes)  # the same projection, seeds and options
    with torch.inference_mode():
        frames = {name: TOY.crop(method.decode(inversion)).clamp(-1, 1)
                  for name, method, inversion in (("pti", pti, tuned), ("opt_w", opt_w, projected))}
    l2 = {name: mean_squared_error(images, frame) for name, frame in frames.items()}
    msssim = {name: ms_ssim_of_signed(images, frame) for name, frame in frames.items()}
    assert (l2["pti"] < l2["opt_w"]).all(), l2
    assert (msssim["pti"] > msssim["opt_w"]).all(), msssim
    assert tuned.state == {} and set(tuned.transient) >= {"conv1.conv.weight", "to_rgbs.0.bias"}


def test_an_edit_of_strength_zero_is_the_reconstruction():
    """The run's edit (the domain's direction, additive) of the pivot, decoded by the image's tuned
    generator: at strength 0 exactly the reconstruction, at the domain's strength a different picture."""
    images = from_uint8(toy_photos(2, TOY.resolution, split="test"))
    pti = build_method("pti", domain=TOY, device=torch.device("cpu"), options={"steps": 5, "tune_steps": 5})
    tuned = pti.invert(images)
    direction = parse_direction(TOY.default_edit, pti.generator)
    with torch.inference_mode():
        reconstruction = pti.decode(tuned)
        unmoved = pti.decode(tuned, direction.add(tuned.codes, 0.0))
        edited = pti.decode(tuned, direction.add(tuned.codes, TOY.default_edit_factor))
    assert torch.equal(unmoved, reconstruction)
    assert ((edited - reconstruction).abs().mean(dim=(1, 2, 3)) > 0.01).all()  # each picture moves


@pytest.mark.parametrize("regularised", [False, True])
def test_batched_tuning_equals_tuning_each_image_alone(regularised):
    """Three images, LPIPS on, and a threshold that one image meets at the start: it keeps the
    original weights while the others go on, in the batch as alone (Adam's momentum must not leak);
    with the locality regulariser each image draws its own samples, in the batch as alone."""
    generator = make_tiny_generator().requires_grad_(False)
    decoder = PerImageGenerator(generator)
    domain = get_domain("toy")
    codes = generator.to_wplus(generator.mapping(torch.randn(3, generator.style_dim, generator=torch.Generator().manual_seed(1))))
    with torch.no_grad():
        targets = domain.crop(generator(codes + 0.3 * torch.randn_like(codes), noise="const"))
        targets[0] = domain.crop(generator(codes[:1], noise="const"))[0]  # image 0 is already reconstructed
    lpips = build_lpips("vgg", pretrained=False)  # AlexNet pools a 24x32 picture away; any LPIPS net will do
    with torch.no_grad():
        start = TargetLPIPS(lpips, targets)(domain.crop(generator(codes, noise="const")))
    assert start[0] < start[1:].min()
    recipe = TuningRecipe(steps=6, lr=1e-2, mse_weight=1.0, lpips_weight=1.0, stop_lpips=float(start[0]) + 1e-6)
    seeds = [11, 12, 13]

    def locality(rows):
        if not regularised:
            return None
        return Locality(LocalityRecipe(alpha=3.0, l2_weight=1.0, lpips_weight=1.0, interval=2),
                        generator.mean_latent(1000, torch.Generator().manual_seed(0)), [seeds[row] for row in rows])

    batched = tune(decoder, codes, targets, recipe, domain, lpips, locality=locality(range(3)))
    for image in range(3):
        alone = tune(decoder, codes[image : image + 1], targets[image : image + 1], recipe, domain, lpips,
                     locality=locality([image]))
        for name, value in alone.items():
            # Adam divides by the root of the squared gradient, so float noise in a near-zero gradient
            # moves a weight by up to a step: 1e-4 against the 6 x 1e-2 that the tuning may move it
            # (1e-3 with the regulariser, whose original frames a batched convolution rounds differently).
            torch.testing.assert_close(batched[name][image : image + 1], value, rtol=1e-3,
                                       atol=1e-3 if regularised else 1e-4)
    original = dict(generator.named_parameters())
    assert all(torch.equal(batched[name][0], original[name]) for name in batched)  # stopped before its first step
    assert any(not torch.equal(batched[name][1], original[name]) for name in batched)


def test_the_locality_regulariser_keeps_the_tuned_generator_near_the_original():
    """Tuned toward far targets, the generator decodes a random code near the pivot (not one the
    regulariser saw) closer to the original's picture of it with the regulariser than without."""
    generator = make_tiny_generator().requires_grad_(False)
    decoder = PerImageGenerator(generator)
    draw = torch.Generator().manual_seed(3)
    codes = generator.to_wplus(generator.mapping(torch.randn(2, generator.style_dim, generator=draw)))
    with torch.no_grad():
        targets = TOY.crop(generator(codes + 1.0 * torch.randn(codes.shape, generator=draw), noise="const"))
    recipe = TuningRecipe(steps=20, lr=2e-3, mse_weight=1.0, lpips_weight=0.0, stop_lpips=0.0)
    center = generator.mean_latent(1000, torch.Generator().manual_seed(0))
    regulariser = Locality(LocalityRecipe(alpha=3.0, l2_weight=10.0, lpips_weight=0.0, interval=1), center, [1, 2])
    with torch.no_grad():  # a code of the kind the regulariser draws, from a sample of its own
        w = generator.truncate(generator.mapping(torch.randn(2, generator.style_dim, generator=draw)), 0.5, center)
        direction = generator.to_wplus(w) - codes
        elsewhere = codes + 3.0 * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1)
        original = TOY.crop(generator(elsewhere, noise="none"))

    def drift(weights):
        with torch.no_grad():
            return (TOY.crop(decoder(weights, elsewhere, noise="none")) - original).square().mean(dim=(1, 2, 3))

    free, held = (drift(tune(decoder, codes, targets, recipe, TOY, None, locality=locality))
                  for locality in (None, regulariser))
    assert (held < 0.5 * free).all(), (held, free)


def test_the_points_along_a_tuning_are_the_shorter_tunings():
    """Constant-rate Adam: the weights after k of 6 steps are those of a 3-step tuning; 0 is the original."""
    generator = make_tiny_generator().requires_grad_(False)
    decoder = PerImageGenerator(generator)
    codes = generator.to_wplus(generator.mapping(torch.randn(2, generator.style_dim, generator=torch.Generator().manual_seed(2))))
    with torch.no_grad():
        targets = TOY.crop(generator(codes + 0.3 * torch.randn_like(codes), noise="const"))
    recipe = TuningRecipe(steps=6, lr=1e-2, mse_weight=1.0, lpips_weight=0.0, stop_lpips=0.0)
    points = {}
    whole = tune(decoder, codes, targets, recipe, TOY, None,
                 on_steps={k: (lambda weights, k=k: points.setdefault(k, weights)) for k in (0, 3, 6)})
    short = tune(decoder, codes, targets, TuningRecipe(3, 1e-2, 1.0, 0.0, 0.0), TOY, None)
    original = dict(generator.named_parameters())
    for name, value in whole.items():
        torch.testing.assert_close(points[6][name], value, rtol=0, atol=0)
        torch.testing.assert_close(points[3][name], short[name], rtol=0, atol=0)
        assert torch.equal(points[0][name], original[name].expand_as(value))


def test_tuned_generators_stay_in_memory_unless_kept(toy_images, tmp_path, capsys):
    base = ["invert", "--method", "pti", "--domain", "toy", "--images", str(toy_images), "--steps", "10",
            "--tune-steps", "5", "--batch-size", "8", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "state").exists()
    assert main(["generate", "--inversion", str(tmp_path / "plain"), "--out", str(tmp_path / "again")]) == 2
    assert "kept no tuned generators" in capsys.readouterr().err
    assert main([*base, "--keep-generators", "--out", str(tmp_path / "kept")]) == 0
    kept = sorted((tmp_path / "kept" / "state").glob("*.pt"))
    assert len(kept) == 16
    assert main(["generate", "--inversion", str(tmp_path / "kept"), "--out", str(tmp_path / "again")]) == 0
    again = np.stack([TOY.crop(torch.from_numpy(frame).permute(2, 0, 1)).numpy() for frame in read(tmp_path / "again")])
    reconstructed = read(tmp_path / "kept" / "images").transpose(0, 3, 1, 2)
    assert np.abs(again - reconstructed).max() <= 2 / 127.5  # float16 differences: within two grey levels


TUNE_STEPS = 5


def run_pti(out, *extra):
    return main(["run", "--domain", "toy", "--methods", "pti", "--n-images", "16", "--option", "pti.steps=10",
                 "--option", f"pti.tune_steps={TUNE_STEPS}", "--batch-size", "8", "--device", "cpu", "--out", str(out),
                 *extra])


def comparable(out):
    summary = json.loads((out / "summary.json").read_text())
    values = summary["methods"]["pti"]["values"]
    values.pop("seconds_per_image")
    return values


def test_a_run_killed_during_tuning_resumes_to_the_same_summary(tmp_path, monkeypatch):
    """Killed at the third tuning step of the second batch; the resumed run tunes only that batch."""
    assert run_pti(tmp_path / "whole") == 0
    real_call, tuning_steps = PerImageGenerator.__call__, []

    def counting(kill_at):
        def call(self, weights, codes, noise="const"):
            if any(value.requires_grad for value in weights.values()):  # a forward pass of the tuning
                tuning_steps.append(1)
                if len(tuning_steps) == kill_at:
                    raise KeyboardInterrupt
            return real_call(self, weights, codes, noise)
        return call

    with monkeypatch.context() as patch:
        patch.setattr(PerImageGenerator, "__call__", counting(kill_at=TUNE_STEPS + 3))
        assert run_pti(tmp_path / "cut") == 130
    assert len(tuning_steps) == TUNE_STEPS + 3
    tuning_steps.clear()
    with monkeypatch.context() as patch:
        patch.setattr(PerImageGenerator, "__call__", counting(kill_at=None))
        assert run_pti(tmp_path / "cut", "--resume") == 0
    assert len(tuning_steps) == TUNE_STEPS  # the first batch was kept
    assert comparable(tmp_path / "cut") == comparable(tmp_path / "whole")
    values = comparable(tmp_path / "whole")
    assert values["layer_spread"]["mean"] == pytest.approx(0, abs=1e-5)  # its codes are W
    assert len(list((tmp_path / "whole" / "methods" / "pti" / "edits").glob("*.png"))) == 16


def test_the_sweep_points_keep_no_generator_differences():
    """`invert_along` (run --sweep) saves no state, so even with keep_generators its points carry none."""
    images = from_uint8(toy_photos(2, TOY.resolution, split="test"))
    pti = build_method("pti", domain=TOY, device=torch.device("cpu"),
                       options={"steps": 2, "tune_steps": 2, "keep_generators": True})
    points = []
    pti.invert_along(images, (0, 2), lambda value, inversion: points.append((value, inversion)))
    assert [value for value, _ in points] == [0, 2]
    assert all(inversion.state == {} and inversion.transient for _, inversion in points)
    assert set(pti.invert(images).state)  # a plain inversion keeps them


@pytest.mark.parametrize("pivot", ["pti", "opt_wplus", "e5e"])
def test_a_pivot_is_opt_w_or_an_encoder(pivot):
    with pytest.raises(E4EBenchError, match=r"^pti: pivot .* choose from opt_w, e4e, psp, restyle_psp, restyle_e4e, hyperstyle$"):
        method_options(METHODS["pti"], TOY, {"pivot": pivot})
    assert method_options(METHODS["pti"], TOY, {"pivot": "e4e"}).pivot == "e4e"


def test_the_preflight_names_the_pivot_encoders_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "no_assets"))
    (tmp_path / "data").mkdir()
    assert main(["run", "--domain", "cars", "--methods", "pti", "--option", "pti.pivot=e4e", "--data",
                 str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 2
    assert "pti needs e4e-cars, lpips-alex" in capsys.readouterr().err
