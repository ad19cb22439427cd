"""Fréchet Inception distance with pytorch-fid's network and statistics.

Features: pytorch-fid 0.3.0 ``InceptionV3`` (TF 2015-12-05 weights, 2048-d pool3), [0,1] input,
torch bilinear resize to 299 (no antialias) inside the network. Statistics: float64 mean and
unbiased covariance. The real set's statistics are cached on disk under a key built from the
content hash of its files and this protocol, so an edited file never hits a stale entry.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torchvision

from e4e_bench.assets import sha256_of
from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import atomic_write
from e4e_bench.metrics.registry import MetricContext, MetricResult, register_metric

log = logging.getLogger(__name__)

FID_ASSET = "inception-fid"
FEATURE_DIMS = 2048
NEGATIVE_TOLERANCE = 1e-6  # relative; eigenvalues of a PSD product are >= 0 up to rounding
PROTOCOL = (
    "FID, pytorch-fid 0.3.0 InceptionV3 (TF inception-2015-12-05 weights), pool3 2048-d, [0,1] input, "
    "bilinear resize to 299 without antialias; real-set statistics cached by content hash"
)


def random_inception_state() -> dict[str, torch.Tensor]:
    """Random weights with the FID network's keys (its patched blocks keep torchvision's names).

    He-normal convolutions keep activations at unit scale through the untrained BatchNorms
    (running variance 1); PyTorch's default init shrinks them to ~1e-8 by pool3.
    """
    network = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return network.state_dict()


def build_inception(weights: Path | None, device: torch.device) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 for 2048-d features from the ``weights`` file, or random when None."""
    import pytorch_fid.inception  # imported only when the network is built

    state = read_checkpoint(weights) if weights is not None else random_inception_state()
    # pytorch-fid offers no weights argument; it fetches through this module global at build time.
    with mock.patch.object(pytorch_fid.inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        network = pytorch_fid.inception.InceptionV3(
            [pytorch_fid.inception.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIMS]],
            resize_input=True,
            normalize_input=True,
            requires_grad=False,
            use_fid_inception=True,
        )
    return network.eval().to(device)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (rounding negatives clipped)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(eigenvalues.clip(min=0))) @ eigenvectors.T


def covariance_factor(features: np.ndarray) -> np.ndarray:
    """F with F^T F = np.cov(features): the centred features when there are fewer rows than dims."""
    count, dims = features.shape
    if count <= dims:
        return (features - features.mean(axis=0)) / np.sqrt(count - 1)
    return psd_sqrt(np.cov(features, rowvar=False))


def trace_sqrt_product(sigma: np.ndarray, factor: np.ndarray) -> float:
    """Tr sqrtm(sigma @ F^T F) as the summed square roots of the eigenvalues of the symmetric F sigma F^T.

    The same number as pytorch-fid's ``scipy.linalg.sqrtm(s1 @ s2)`` trace, without its unstable
    non-symmetric square root (complex parts, eps retry on singular products, minutes at 2048-d).
    """
    eigenvalues = np.linalg.eigvalsh(factor @ sigma @ factor.T)
    worst = eigenvalues.min(initial=0.0)
    if worst < -NEGATIVE_TOLERANCE * max(np.abs(eigenvalues).max(initial=0.0), 1.0):
        raise E4EBenchError(
            f"FID is undefined: the covariance product has a negative eigenvalue ({worst:.3g}), "
            "so its square root is imaginary; the statistics are not covariances (stale or corrupt cache?)"
        )
    return float(np.sqrt(eigenvalues.clip(min=0)).sum())


def frechet_distance_factored(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, factor2: np.ndarray) -> float:
    """d^2 = |mu1-mu2|^2 + Tr S1 + Tr S2 - 2 Tr sqrtm(S1 S2), with S2 = factor2^T factor2."""
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.square(factor2).sum() - 2 * trace_sqrt_product(sigma1, factor2))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    return frechet_distance_factored(mu1, sigma1, mu2, psd_sqrt(sigma2))


class FrechetInceptionDistance:
    """Set metric; the real side is skipped when its statistics are already cached."""

    def __init__(self, context: MetricContext):
        weights = context.weights_file(FID_ASSET) if context.pretrained else None
        self.network = build_inception(weights, context.device)
        self.features: dict[str, list[torch.Tensor]] = {"real": [], "fake": []}
        self.cache_file = self._cache_file(context, weights)
        self.cached = self._read_cache()

    @staticmethod
    def _cache_file(context: MetricContext, weights: Path | None) -> Path | None:
        """Keyed by the real files' content, the protocol and the weights' content; random weights never cache."""
        if context.cache_dir is None or context.real_fingerprint is None or weights is None:
            return None
        key = hashlib.sha256(f"{context.real_fingerprint}|{PROTOCOL}|{sha256_of(weights)}".encode()).hexdigest()[:32]
        return Path(context.cache_dir) / f"fid-real-{key}.npz"

    def _read_cache(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        if self.cache_file is None or not self.cache_file.is_file():
            return None
        with np.load(self.cache_file) as stored:
            log.info("FID: real-set statistics from %s", self.cache_file)
            return stored["mu"], stored["sigma"], int(stored["n"])

    def _write_cache(self, mu: np.ndarray, sigma: np.ndarray, n: int) -> None:
        with atomic_write(self.cache_file) as stream:
            np.savez(stream, mu=mu, sigma=sigma, n=n)

    def wants(self, side: str) -> bool:
        return not (side == "real" and self.cached is not None)

    def add(self, side: str, images: torch.Tensor) -> None:
        unit = ((images + 1) / 2).clamp(0, 1)
        self.features[side].append(self.network(unit)[0].flatten(1).double().cpu())

    def _real_statistics(self) -> tuple[np.ndarray, np.ndarray, int]:
        if self.cached is not None:
            return self.cached
        features = self._features("real")
        mu, sigma = statistics(features)
        if self.cache_file is not None:
            self._write_cache(mu, sigma, len(features))
        return mu, sigma, len(features)

    def _features(self, side: str) -> np.ndarray:
        count = sum(len(batch) for batch in self.features[side])
        if count < 2:
            raise E4EBenchError(f"FID needs at least 2 {side} images; got {count}")
        return torch.cat(self.features[side]).numpy()

    def result(self) -> MetricResult:
        mu_real, sigma_real, n_real = self._real_statistics()
        fake = self._features("fake")
        details = {"n_real": n_real, "n_fake": len(fake)}
        if min(n_real, len(fake)) < FEATURE_DIMS:
            details["warning"] = (
                f"fewer than {FEATURE_DIMS} images in a set: the covariance is rank-deficient and FID is biased; "
                "compare only numbers taken with the same N"
            )
            log.warning("FID: %s", details["warning"])
        value = frechet_distance_factored(mu_real, sigma_real, fake.mean(axis=0), covariance_factor(fake))
        return MetricResult(value, details)


@register_metric("fid", kind="set", title="FID", in_run=True, on_edits=True, protocol=PROTOCOL, assets=(FID_ASSET,))
def build_fid(context: MetricContext) -> FrechetInceptionDistance:
    return FrechetInceptionDistance(context)
