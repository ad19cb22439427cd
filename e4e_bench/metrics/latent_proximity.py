"""How far a method's W+ codes sit from W: the e4e paper's W^k idea, made measurable.

- layer spread: per image, the mean over layers of ||w_l - mean_l'(w_l')||_2 (0 for W codes, whose
  rows are equal; e4e's small offsets keep it small, free W+ codes do not);
- Mahalanobis distance of every row to the W distribution, whose mean and covariance are estimated
  from mapped samples z ~ N(0, I) (10,000, seeded). For codes drawn from W itself E[d^2] = D, so the
  same distance for held-out mapped samples is reported as the reference.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from e4e_bench.networks.generator import Generator, sample_w
from e4e_bench.metrics.registry import MetricContext, register_metric

W_SAMPLES = 10_000
REFERENCE_SAMPLES = 2_000
SAMPLE_SEED = 0


def layer_spread(codes: torch.Tensor) -> torch.Tensor:
    """Per-image mean distance of each W+ row to the image's mean row, `[N]` for codes `[N, n_latent, D]`.

    In float64 the mean of equal float32 rows is exactly that row, so W codes score exactly 0.
    """
    exact = codes.double()
    return (exact - exact.mean(dim=1, keepdim=True)).norm(dim=2).mean(dim=1).to(codes.dtype)


@dataclass(frozen=True, eq=False)
class WDistribution:
    mean: torch.Tensor  # [D], float64
    whitening: torch.Tensor  # [D, D], float64: ||(w - mean) @ whitening|| is the Mahalanobis distance

    def mahalanobis(self, codes: torch.Tensor) -> torch.Tensor:
        """Distance of every row of `codes` (`[..., D]`) to the distribution, shape `codes.shape[:-1]`."""
        centred = codes.double() - self.mean.to(codes.device)
        return (centred @ self.whitening.to(codes.device)).norm(dim=-1)


def seeded_w(generator: Generator, n: int, seed: int) -> torch.Tensor:
    return sample_w(generator, n, torch.Generator(generator.device).manual_seed(seed))


def fit_w_distribution(samples: torch.Tensor) -> WDistribution:
    """Mean and covariance (maximum likelihood) of samples `[n, D]`; whitening by the covariance's eigenbasis."""
    samples = samples.double()
    mean = samples.mean(0)
    centred = samples - mean
    covariance = centred.T @ centred / len(samples)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    # A direction the mapping never varies along (rank deficiency) is floored rather than divided by ~0.
    floor = eigenvalues.max() * torch.finfo(torch.float64).eps * len(eigenvalues)
    return WDistribution(mean, eigenvectors / eigenvalues.clamp_min(floor).sqrt())


def w_distribution(generator: Generator) -> WDistribution:
    return fit_w_distribution(seeded_w(generator, W_SAMPLES, SAMPLE_SEED))


def reference_mahalanobis(distribution: WDistribution, generator: Generator) -> float:
    """The mean distance of held-out mapped samples: what codes drawn from W itself score."""
    return float(distribution.mahalanobis(seeded_w(generator, REFERENCE_SAMPLES, SAMPLE_SEED + 1)).mean())


@dataclass(frozen=True)
class ProximityResult:
    layer_spread: torch.Tensor  # [N]
    mahalanobis: torch.Tensor  # [N, n_latent]
    reference_mahalanobis: float  # mean distance of held-out mapped samples: what W itself scores

    def summary(self) -> dict[str, object]:
        return {
            "layer_spread": float(self.layer_spread.mean()),
            "mahalanobis": float(self.mahalanobis.mean()),
            "mahalanobis_per_layer": [float(v) for v in self.mahalanobis.mean(0)],
            "mahalanobis_w_reference": self.reference_mahalanobis,
            "protocol": PROTOCOL,
        }


LAYER_SPREAD_PROTOCOL = "mean over W+ rows of ||w_l - row mean||_2 per image, in float64 (exactly 0 for W codes)"
MAHALANOBIS_PROTOCOL = (
    f"per W+ row, the Mahalanobis distance to the W distribution (mean, ML covariance) of {W_SAMPLES:,} mapped "
    f"z ~ N(0,I), seed {SAMPLE_SEED}, averaged over rows per image; reference: the same for {REFERENCE_SAMPLES:,} "
    f"held-out mapped samples, seed {SAMPLE_SEED + 1}"
)
PROTOCOL = f"layer_spread: {LAYER_SPREAD_PROTOCOL}; mahalanobis: {MAHALANOBIS_PROTOCOL}"


@torch.no_grad()
def latent_proximity(codes: torch.Tensor, generator: Generator) -> ProximityResult:
    """Both proximity measures for codes `[N, n_latent, D]` of `generator`."""
    distribution = w_distribution(generator)
    codes = codes.to(generator.device)
    return ProximityResult(layer_spread(codes).cpu(), distribution.mahalanobis(codes).cpu(),
                           reference_mahalanobis(distribution, generator))


@register_metric("layer_spread", kind="latent", title="W+ spread", unit="L2 distance in W", protocol=LAYER_SPREAD_PROTOCOL)
def build_layer_spread(context: MetricContext):
    """`metric(codes [N, n_latent, D], generator) -> [N]`."""
    return lambda codes, generator: layer_spread(codes)


class WMahalanobis:
    """`metric(codes [N, n_latent, D], generator) -> [N]`: each image's mean over rows; the W fit and its
    reference are computed once per generator."""

    def __init__(self) -> None:
        self.fitted: weakref.WeakKeyDictionary[Generator, tuple[WDistribution, float]] = weakref.WeakKeyDictionary()

    def __call__(self, codes: torch.Tensor, generator: Generator) -> torch.Tensor:
        if generator not in self.fitted:
            distribution = w_distribution(generator)
            self.fitted[generator] = distribution, reference_mahalanobis(distribution, generator)
        return self.fitted[generator][0].mahalanobis(codes.to(generator.device)).mean(1).cpu()

    def summary_details(self) -> dict[str, float]:
        """The reference of the one generator scored (none when codes of several were mixed)."""
        references = [reference for _, reference in self.fitted.values()]
        return {"reference": references[0]} if len(references) == 1 else {}


@register_metric("w_mahalanobis", kind="latent", title="Mahal. to W", unit="Mahalanobis distance", protocol=MAHALANOBIS_PROTOCOL)
def build_w_mahalanobis(context: MetricContext):
    return WMahalanobis()
