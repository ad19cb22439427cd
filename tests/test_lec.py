import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from e4e_bench import cli, methods
from e4e_bench.domains import Domain
from e4e_bench.editing import parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.metrics.evaluate import Evaluation
from e4e_bench.metrics.latent_proximity import layer_spread
from e4e_bench.metrics.lec import aggregate, latent_editing_consistency
from e4e_bench.metrics.registry import MetricContext, get_metric
from tests.conftest import TINY_CARS, make_tiny_generator, rosinality_checkpoint, write_images

N_TABLE = 10


class LookupMethod:
    """Inverts only what its own generator made: every decoded frame is recorded (a forward hook) with
    its code, and `invert` returns the code of the nearest recorded frame, plus optional Gaussian noise."""

    name = "lookup"

    def __init__(self, generator: Generator, domain: Domain, noise_std: float = 0.0):
        self.generator, self.domain, self.noise_std = generator, domain, noise_std
        self.input_size = domain.encoder_input
        self.frames, self.codes = [], []
        self.rng = torch.Generator().manual_seed(123)
        generator.register_forward_hook(self._record)

    def _record(self, module, args, output):
        self.codes.append(module.to_wplus(args[0]).clone())
        self.frames.append(self.domain.resize_frames(output, self.input_size).flatten(1))

    def invert(self, images: torch.Tensor) -> methods.Inversion:
        nearest = torch.cdist(images.flatten(1), torch.cat(self.frames)).argmin(dim=1)
        codes = torch.cat(self.codes)[nearest]
        return methods.Inversion(codes + self.noise_std * torch.randn(codes.shape, generator=self.rng))

    def decode(self, inversion: methods.Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(inversion.codes if codes is None else codes, noise="const")


def decode_table(method: LookupMethod) -> torch.Tensor:
    """The encoder inputs of N_TABLE frames decoded from seeded W codes (recorded by the method)."""
    z = torch.randn(N_TABLE, method.generator.style_dim, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        return method.domain.resize_frames(method.generator(method.generator.mapping(z)), method.input_size)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    pass


def build_lookup(*, domain, checkpoint, generator, device, options, random_weights, seed):
    """Registry factory for the CLI test: the images it knows are the `decode_table` frames."""
    from e4e_bench.checkpoints import load_generator

    method = LookupMethod(load_generator(generator, device)[0], domain)
    decode_table(method)
    return method


@pytest.fixture
def cars_like(tiny_domain) -> Domain:
    return TINY_CARS


def test_lec_is_zero_for_a_method_that_inverts_its_generator_exactly(cars_like):
    method = LookupMethod(make_tiny_generator(), cars_like)
    images = decode_table(method)
    direction = parse_direction("sefa:0", method.generator)
    result = latent_editing_consistency(method, method.invert(images), direction, 3.0, cars_like, batch_size=3)
    assert len(result.per_image) == 9 and len(result.batch_means) == 3  # 10 // 3 batches: the last image is dropped
    assert result.lec < 1e-4
    assert "sefa:0" in result.protocol and "factor 3" in result.protocol


def test_lec_of_a_noisy_method_is_the_noise_norm_over_the_whole_code(cars_like):
    method = LookupMethod(make_tiny_generator(), cars_like, noise_std=0.1)
    images = decode_table(method)
    direction = parse_direction("sefa:1:0:3", method.generator)
    result = latent_editing_consistency(method, method.invert(images), direction, 2.0, cars_like, batch_size=2)
    # w'' - w is the re-encoding's noise alone: its norm over n_latent x D entries is about 0.1 * sqrt(n * D).
    expected = 0.1 * math.sqrt(method.generator.n_latent * method.generator.style_dim)
    assert result.lec == pytest.approx(expected, rel=0.1)


def test_aggregation_drops_the_last_batch_and_the_outer_percentiles():
    per_image = torch.cat([torch.arange(1.0, 201.0).repeat_interleave(8), torch.tensor([1e6, 1e6, 1e6])])
    lec, batch_means, kept = aggregate(per_image, batch_size=8)
    assert len(batch_means) == 200  # the 3 leftover images are dropped
    assert kept == 198  # np.percentile(1, 'lower') = 2 and (99, 'higher') = 199 remove 1 and 200
    assert lec == pytest.approx(100.5)


def test_aggregation_matches_the_e4e_recipe_on_random_values():
    rng = np.random.default_rng(0)
    per_image = rng.lognormal(size=8 * 300 + 5)
    batch_means = per_image[: 8 * 300].reshape(300, 8).mean(1)
    low, high = np.percentile(batch_means, 1, method="lower"), np.percentile(batch_means, 99, method="higher")
    expected = batch_means[(batch_means >= low) & (batch_means <= high)].mean()
    assert aggregate(torch.from_numpy(per_image))[0] == pytest.approx(expected, rel=1e-12)


def test_too_few_images_for_one_batch_is_a_user_error():
    with pytest.raises(E4EBenchError, match="at least one full batch of 8"):
        aggregate(torch.ones(7))


def test_registered_lec_metric_reports_value_and_protocol(cars_like):
    method = LookupMethod(make_tiny_generator(), cars_like, noise_std=0.05)
    images = decode_table(method)
    metric = get_metric("lec").build(MetricContext(domain=cars_like), direction="sefa:0", factor=1.0, batch_size=5)
    inversion = method.invert(images)
    result = metric.result(torch.cat([metric.per_image(method, inversion[:7]), metric.per_image(method, inversion[7:])]))
    assert result.value > 0 and result.details["n_batches"] == 2 and len(result.details["per_image"]) == N_TABLE


@pytest.fixture
def lookup_registered():
    entry = methods.MethodEntry("lookup", "tests.test_lec:build_lookup", "tests.test_lec:NoOptions",
                                "nearest recorded frame of its own generator")
    with methods.METHODS.registered("lookup", entry):
        yield


def test_lec_cli_end_to_end(tmp_path, tiny_domain, lookup_registered, capsys):
    generator = make_tiny_generator()
    torch.save(rosinality_checkpoint(generator), tmp_path / "g.pt")
    write_images(tmp_path / "images", decode_table(LookupMethod(generator, tiny_domain)))

    argv = ["lec", "--method", "lookup", "--domain", tiny_domain.name, "--generator", str(tmp_path / "g.pt"),
            "--images", str(tmp_path / "images"), "--direction", "sefa:0", "--factor", "3", "--batch-size", "4",
            "--device", "cpu"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lec"] < 1e-4 and report["n_batches"] == 2
    assert report["n_images"] == 8  # the two images past the last full batch are never inverted (drop_last)
    assert "L2 over the whole code" in report["protocol"]
    assert len(report["latent_proximity"]["mahalanobis_per_layer"]) == generator.n_latent

    assert cli.main(argv[:-6] + ["--direction", "sefa:99", "--factor", "3", "--device", "cpu"]) == 2
    assert "SeFa has" in capsys.readouterr().err
    assert cli.main(argv[:-3] + ["16", "--device", "cpu"]) == 2
    assert "at least one full batch of 16" in capsys.readouterr().err


def test_lec_cli_with_an_optimization_baseline(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, capsys):
    argv = ["lec", "--method", "opt_w", "--domain", tiny_domain.name, "--generator", str(tiny_generator_ckpt),
            "--images", str(generated_images), "--direction", "sefa:0", "--factor", "2", "--batch-size", "2",
            "--steps", "2", "--lpips-weight", "0", "--mse-weight", "1", "--no-optimize-noise", "--device", "cpu"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "opt_w" and report["n_batches"] == 2 and 0 < report["lec"] < float("inf")
    assert report["latent_proximity"]["layer_spread"] < 1e-5  # projection into W: every row is the same


def test_one_driver_feeds_latent_and_method_metrics_from_the_callers_codes(cars_like):
    method = LookupMethod(make_tiny_generator(), cars_like, noise_std=0.05)
    inversion = method.invert(decode_table(method))
    codes = inversion.codes
    specs = [get_metric("layer_spread"), get_metric("lec")]
    lec_options = {"direction": "sefa:0", "factor": 1.0, "batch_size": 5}
    evaluation = Evaluation(specs, MetricContext(domain=cars_like), options={"lec": lec_options})
    names = [f"{i:03d}" for i in range(N_TABLE)]
    noise_state = method.rng.get_state()  # the re-encodings draw the same noise in both computations
    evaluation.add_codes(names, codes, method.generator)
    evaluation.add_method(method, inversion)
    summary = evaluation.summary()
    method.rng.set_state(noise_state)
    direct = latent_editing_consistency(method, inversion, parse_direction("sefa:0", method.generator), 1.0, cars_like, 5)
    assert summary.metrics["lec"].value == direct.lec  # the same path, given the caller's codes, no inversion
    assert summary.metrics["layer_spread"].details["n"] == N_TABLE
    assert evaluation.per_image_table()["003"]["layer_spread"] == pytest.approx(float(layer_spread(codes[3:4])))


def test_a_bare_direction_file_is_an_interfacegan_direction(tmp_path, tiny_domain, lookup_registered, capsys):
    generator = make_tiny_generator()
    torch.save(rosinality_checkpoint(generator), tmp_path / "g.pt")
    write_images(tmp_path / "images", decode_table(LookupMethod(generator, tiny_domain)))
    torch.save(torch.randn(1, generator.style_dim, generator=torch.Generator().manual_seed(2)), tmp_path / "d.pt")
    argv = ["lec", "--method", "lookup", "--domain", tiny_domain.name, "--generator", str(tmp_path / "g.pt"),
            "--images", str(tmp_path / "images"), "--factor", "3", "--batch-size", "4", "--device", "cpu"]
    reports = []
    for direction in (str(tmp_path / "d.pt"), f"interfacegan:{tmp_path / 'd.pt'}"):
        assert cli.main([*argv, "--direction", direction]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["lec"] == reports[1]["lec"]
