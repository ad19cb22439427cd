"""Latent Editing Consistency (e4e `metrics/LEC.py`) for any InversionMethod.

Per image: w = E(x); the edited code w + F*d is decoded with the generator's stored noise, brought
to the encoder's input (the domain's crop, then area-averaged as e4e's `face_pool`; not clamped or
quantised), re-encoded, the edit undone (- F*d), and the L2 norm of the difference over the whole
`[n_latent, D]` code taken. As e4e: the per-image values are averaged per batch of 8 in file order
(an incomplete last batch is dropped), batch means outside [1st percentile ('lower'), 99th
percentile ('higher')] are discarded, and LEC is the mean of the rest. Lower is better.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from e4e_bench.domains import Domain
from e4e_bench.editing.directions import Direction, parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import InversionMethod
from e4e_bench.metrics.registry import MetricContext, MetricResult, register_metric

PROTOCOL_BATCH_SIZE = 8


@dataclass(frozen=True)
class LecResult:
    lec: float
    per_image: torch.Tensor  # [N] distances, input order
    codes: torch.Tensor  # [N, n_latent, D]: the method's codes of the unedited images, on the CPU
    batch_means: np.ndarray  # [N // batch_size]
    kept_batches: int
    protocol: str


def protocol_text(direction: Direction, factor: float, batch_size: int) -> str:
    return (
        f"LEC (e4e metrics/LEC.py): edit {direction.spec} additively ({direction.rule}) by factor {factor:g}, "
        f"decode with const noise, crop and area-resize to the encoder input, re-encode, undo the edit; "
        f"L2 over the whole code per image; means per batch of {batch_size} (drop_last, file order); "
        f"batch means within [1st 'lower', 99th 'higher'] percentile averaged"
    )


@torch.inference_mode()
def edit_distances(
    method: InversionMethod, images: torch.Tensor, direction: Direction, factor: float, domain: Domain
) -> tuple[torch.Tensor, torch.Tensor]:
    """(||w - (E(G(w + F*d)) - F*d)|| per image `[B]`, w) for images `[B, 3, H, W]` at `method.input_size`."""
    codes = method.invert(images)
    edited_frames = method.generator(direction.add(codes, factor), noise="const")
    recoded = method.invert(domain.resize_frames(edited_frames, method.input_size))
    return (codes - direction.add(recoded, -factor)).flatten(1).norm(dim=1), codes


def aggregate(per_image: torch.Tensor, batch_size: int = PROTOCOL_BATCH_SIZE) -> tuple[float, np.ndarray, int]:
    """(LEC, batch means, batches kept) from per-image distances in file order."""
    n_batches = len(per_image) // batch_size
    if n_batches == 0:
        raise E4EBenchError(
            f"LEC needs at least one full batch of {batch_size} images, got {len(per_image)}; add images or lower --batch-size"
        )
    batch_means = per_image[: n_batches * batch_size].double().view(n_batches, batch_size).mean(1).cpu().numpy()
    low = np.percentile(batch_means, 1, method="lower")
    high = np.percentile(batch_means, 99, method="higher")
    kept = batch_means[(batch_means >= low) & (batch_means <= high)]
    return float(kept.mean()), batch_means, len(kept)


def latent_editing_consistency(
    method: InversionMethod,
    batches: Iterable[torch.Tensor],
    direction: Direction,
    factor: float,
    domain: Domain,
    batch_size: int = PROTOCOL_BATCH_SIZE,
) -> LecResult:
    """LEC over image batches (any size; the protocol's batches of `batch_size` are formed afterwards)."""
    distances, codes = [], []
    for images in batches:
        batch_distances, batch_codes = edit_distances(method, images, direction, factor, domain)
        distances.append(batch_distances.cpu())
        codes.append(batch_codes.cpu())
    if not distances:
        raise E4EBenchError("LEC got no images; check the image folder")
    per_image = torch.cat(distances)
    lec, batch_means, kept = aggregate(per_image, batch_size)
    return LecResult(lec, per_image, torch.cat(codes), batch_means, kept, protocol_text(direction, factor, batch_size))


class LecMetric:
    """The registry's `method` metric: `metric(method, batches) -> MetricResult` (per-image values in details)."""

    def __init__(self, context: MetricContext, direction: str, factor: float, batch_size: int):
        if context.domain is None:
            raise E4EBenchError("LEC needs a domain (the crop between generator and encoder); pass --domain")
        self.domain = context.domain
        self.spec, self.factor, self.batch_size = direction, factor, batch_size

    def __call__(self, method: InversionMethod, batches: Iterable[torch.Tensor]) -> MetricResult:
        direction = parse_direction(self.spec, method.generator)
        result = latent_editing_consistency(method, batches, direction, self.factor, self.domain, self.batch_size)
        return MetricResult(
            result.lec,
            {
                "per_image": result.per_image.tolist(),
                "n_batches": len(result.batch_means),
                "kept_batches": result.kept_batches,
                "protocol": result.protocol,
            },
        )


@register_metric(
    "lec",
    kind="method",
    protocol="LEC as e4e metrics/LEC.py (the direction, factor and batch size are named in each result's protocol)",
)
def build_lec(
    context: MetricContext, *, direction: str, factor: float, batch_size: int = PROTOCOL_BATCH_SIZE
) -> LecMetric:
    return LecMetric(context, direction, factor, batch_size)
