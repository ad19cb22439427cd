"""FID: the Fréchet distance against closed forms and pytorch-fid, features, caching, missing weights."""

import stat

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy.stats import ortho_group

from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics import get_metric
from e4e_bench.metrics.fid import (
    covariance_factor,
    frechet_distance,
    frechet_distance_factored,
    random_inception_state,
    statistics,
)
from tests.metrics_helpers import distort, random_context, smooth_images


def test_frechet_distance_of_commuting_gaussians_has_a_closed_form():
    rng = np.random.default_rng(0)
    basis = ortho_group.rvs(6, random_state=1)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    sigma1, sigma2 = basis @ np.diag(a) @ basis.T, basis @ np.diag(b) @ basis.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0, abs=1e-10)


@pytest.mark.parametrize("count", [40, 9])  # more and fewer samples than dimensions
def test_frechet_distance_matches_pytorch_fid_on_sample_statistics(count):
    rng = np.random.default_rng(count)
    real = rng.normal(size=(60, 16))
    fake = rng.normal(size=(count, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    (mu1, sigma1), (mu2, sigma2) = statistics(real), statistics(fake)
    expected = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_factored(mu1, sigma1, mu2, covariance_factor(fake)) == pytest.approx(expected, rel=1e-6)


def test_statistics_that_are_not_covariances_are_an_error_not_a_complex_number():
    identity, flipped = np.eye(2), np.diag([-1.0, 1.0])
    with pytest.raises(E4EBenchError, match="imaginary"):
        frechet_distance(np.zeros(2), flipped, np.zeros(2), identity)


def low_rank_frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two small feature sets: Tr sqrtm(S1 S2) is the nuclear norm of A B^T for centred, scaled A, B."""
    centred_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    nuclear = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    gap = a.mean(0) - b.mean(0)
    return gap @ gap + np.square(centred_a).sum() + np.square(centred_b).sum() - 2 * nuclear


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A random state dict in the layout of pt_inception-2015-12-05-6726825d.pth."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "pt_inception.pth"
    torch.save(random_inception_state(), path)
    return path


def test_fid_features_statistics_and_real_set_cache(inception_weights, tmp_path, umask):
    real, fake = smooth_images(2, 32, 32), distort(smooth_images(2, 32, 32), 0.3)
    context = random_context(
        pretrained=True, weights={"inception-fid": inception_weights}, cache_dir=tmp_path, real_fingerprint="set-a"
    )
    metric = get_metric("fid").build(context)
    assert metric.wants("real")
    with torch.inference_mode():
        metric.add("real", real)
        metric.add("fake", fake)
        result = metric.result()
        first = metric.network((real[:1] + 1) / 2)[0].flatten(1).double()  # pytorch-fid takes [0,1] images
    features = [torch.cat(metric.features[side]).numpy() for side in ("real", "fake")]
    np.testing.assert_allclose(features[0][:1], first.numpy(), rtol=1e-5, atol=1e-6)
    assert result.value == pytest.approx(low_rank_frechet_distance(*features), rel=1e-5) and result.value > 0
    assert result.details["n_real"] == 2 and "fewer than 2048" in result.details["warning"]
    [cache] = tmp_path.iterdir()
    assert cache.suffix == ".npz" and stat.S_IMODE(cache.stat().st_mode) == 0o666 & ~umask

    cached = get_metric("fid").build(context)
    assert not cached.wants("real") and cached.wants("fake")
    with torch.inference_mode():
        cached.add("fake", fake)
        assert cached.result().value == pytest.approx(result.value, rel=1e-6)
    other_set = get_metric("fid").build(random_context(**{**context.__dict__, "real_fingerprint": "set-b"}))
    assert other_set.wants("real")


def test_fid_without_weights_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    with pytest.raises(E4EBenchError, match="assets fetch inception-fid"):
        get_metric("fid").build(random_context(pretrained=True))
