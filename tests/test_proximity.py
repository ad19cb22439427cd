import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from e4e_bench.networks.generator import Generator
from e4e_bench.metrics.latent_proximity import (
    fit_w_distribution,
    latent_proximity,
    layer_spread,
    seeded_w,
)
from e4e_bench.metrics.registry import MetricContext, get_metric

STYLE_DIM = 16


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(8, style_dim=STYLE_DIM, n_mlp=2, channels={4: 4, 8: 4}).eval()


def test_layer_spread_is_zero_in_w_and_the_mean_row_distance_otherwise():
    w = torch.randn(3, STYLE_DIM)
    assert torch.all(layer_spread(w[:, None].expand(-1, 6, -1)) < 1e-6)
    # Exactly 0 for any row count, as a table needs to tell "0 by construction" from "small".
    for rows in (3, 7, 14, 18):
        assert torch.equal(layer_spread(w[:, None].expand(-1, rows, -1) * 0.1), torch.zeros(3))
    codes = torch.zeros(1, 2, STYLE_DIM)
    codes[0, 1, 0] = 4.0  # rows 0 and 1 are each 2 from their mean
    torch.testing.assert_close(layer_spread(codes), torch.tensor([2.0]))


def test_mahalanobis_matches_scipy_with_the_ml_covariance():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    distribution = fit_w_distribution(torch.from_numpy(samples))
    precision = np.linalg.inv(np.cov(samples, rowvar=False, bias=True))
    points = rng.normal(size=(4, 5)) * 3
    expected = [scipy_mahalanobis(p, samples.mean(0), precision) for p in points]
    np.testing.assert_allclose(distribution.mahalanobis(torch.from_numpy(points)).numpy(), expected, rtol=1e-8)
    # The fitting samples' mean squared distance is the dimension exactly.
    squared = distribution.mahalanobis(torch.from_numpy(samples)).square().mean()
    assert float(squared) == pytest.approx(5.0, rel=1e-9)


def test_w_codes_are_near_w_and_wide_wplus_codes_are_not(generator):
    w = seeded_w(generator, 64, seed=7)
    in_w = latent_proximity(w[:, None].expand(-1, generator.n_latent, -1), generator)
    spread = w[:, None] + 3.0 * torch.randn(64, generator.n_latent, STYLE_DIM, generator=torch.Generator().manual_seed(8))
    off_w = latent_proximity(spread, generator)

    assert torch.all(in_w.layer_spread < 1e-6) and torch.all(off_w.layer_spread > 1)
    assert in_w.mahalanobis.shape == (64, generator.n_latent)
    assert abs(in_w.summary()["mahalanobis"] - in_w.reference_mahalanobis) < 0.2 * in_w.reference_mahalanobis
    assert off_w.summary()["mahalanobis"] > 2 * in_w.reference_mahalanobis


def test_registered_latent_metrics_give_one_value_per_image(generator):
    context = MetricContext()
    codes = seeded_w(generator, 5, seed=3)[:, None].expand(-1, generator.n_latent, -1)
    spread = get_metric("layer_spread").build(context)(codes, generator)
    distance = get_metric("w_mahalanobis").build(context)(codes, generator)
    assert spread.shape == distance.shape == (5,)
    torch.testing.assert_close(distance, latent_proximity(codes, generator).mahalanobis.mean(1))



def test_the_mahalanobis_metric_reports_what_w_itself_scores(generator):
    metric = get_metric("w_mahalanobis").build(MetricContext())
    codes = seeded_w(generator, 5, seed=3)[:, None].expand(-1, generator.n_latent, -1)
    metric(codes, generator)
    reference = metric.summary_details()["reference"]
    assert reference == pytest.approx(latent_proximity(codes, generator).reference_mahalanobis, rel=1e-9)
    # Samples of the fitted distribution have E[d^2] = D: their mean distance is just under sqrt(D).
    assert 0.9 * STYLE_DIM**0.5 < reference < STYLE_DIM**0.5
