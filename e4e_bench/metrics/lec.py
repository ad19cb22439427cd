"""Latent Editing Consistency (e4e `metrics/LEC.py`) for any InversionMethod.

Per image: w = E(x); the edited code w + F*d is decoded with the image's own decoder state (for an
encoder the generator's stored noise, for a projection its optimised noise maps), brought
to the encoder's input (the domain's crop, then area-averaged as e4e's `face_pool`; not clamped or
quantised), re-encoded, the edit undone (- F*d), and the L2 norm of the difference over the whole
`[n_latent, D]` code taken. As e4e: the per-image values are averaged per batch of 8 in file order
(an incomplete last batch is dropped), batch means outside [1st percentile ('lower'), 99th
percentile ('higher')] are discarded, and LEC is the mean of the rest. Lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from e4e_bench.domains import Domain
from e4e_bench.editing.directions import Direction, parse_direction
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import CodesFirstMethod, Inversion, InversionMethod
from e4e_bench.metrics.registry import MetricContext, MetricResult, register_metric

PROTOCOL_BATCH_SIZE = 8


@dataclass(frozen=True)
class LecResult:
    lec: float
    per_image: torch.Tensor  # [N] distances, input order
    codes: torch.Tensor  # [N, n_latent, D]: the scored codes (full batches), on the CPU
    batch_means: np.ndarray  # [N // batch_size]
    kept_batches: int
    protocol: str


def protocol_text(direction: Direction, factor: float, batch_size: int) -> str:
    return (
        f"LEC (e4e metrics/LEC.py): edit {direction.spec} additively ({direction.rule}) by factor {factor:g}, "
        f"decode with each image's own decoder state, crop and area-resize to the encoder input, re-encode, undo the edit; "
        f"L2 over the whole code per image; means per batch of {batch_size} (drop_last, file order); "
        f"batch means within [1st 'lower', 99th 'higher'] percentile averaged"
    )


@torch.inference_mode()
def edit_distances(
    method: InversionMethod, inversion: Inversion, direction: Direction, factor: float, domain: Domain
) -> torch.Tensor:
    """||w - (E(G(w + F*d)) - F*d)|| per image `[B]` for the method's own inversion (codes `w` `[B, n_latent, D]`)."""
    inversion = inversion.to(method.generator.device)
    edited_frames = method.decode(inversion, direction.add(inversion.codes, factor))
    edited = domain.resize_frames(edited_frames, method.input_size)
    recoded = method.invert_codes(edited) if isinstance(method, CodesFirstMethod) else method.invert(edited).codes
    return (inversion.codes - direction.add(recoded, -factor)).flatten(1).norm(dim=1)


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
    inversion: Inversion,
    direction: Direction,
    factor: float,
    domain: Domain,
    batch_size: int = PROTOCOL_BATCH_SIZE,
) -> LecResult:
    """LEC from the inversion `method` made of images in file order (e.g. a run's).

    Only the images of full protocol batches are edited and re-encoded; the rest are never scored.
    """
    if len(inversion) < batch_size:
        raise E4EBenchError(
            f"LEC needs at least one full batch of {batch_size} images, got {len(inversion)}; add images or lower --batch-size"
        )
    scored = len(inversion) // batch_size * batch_size
    per_image = torch.cat([edit_distances(method, inversion[start : start + batch_size], direction, factor, domain).cpu()
                           for start in range(0, scored, batch_size)])
    lec, batch_means, kept = aggregate(per_image, batch_size)
    return LecResult(lec, per_image, inversion.codes[:scored].cpu(), batch_means, kept,
                     protocol_text(direction, factor, batch_size))


class LecMetric:
    """The registry's `method` metric: `per_image(method, inversion)` for each batch of the method's
    inversion while its decoder state is in memory, then `result(per_image)` over all, in file order."""

    def __init__(self, context: MetricContext, direction: str | None, factor: float | None, batch_size: int):
        if context.domain is None:
            raise E4EBenchError("LEC needs a domain (the crop between generator and encoder); pass --domain")
        self.domain = context.domain
        if direction is None and self.domain.default_edit is None:
            raise E4EBenchError(f"domain {self.domain.name} has no default edit for LEC; name a direction")
        self.spec = direction if direction is not None else self.domain.default_edit
        self.edit_name = self.domain.default_edit_name if direction is None else None  # the domain's benchmark edit
        self.factor = factor if factor is not None else self.domain.default_edit_factor
        self.batch_size = batch_size
        self.direction: Direction | None = None  # parsed for the first method's generator

    def per_image(self, method: InversionMethod, inversion: Inversion) -> torch.Tensor:
        """Distances `[B]` on the CPU."""
        if self.direction is None:
            self.direction = parse_direction(self.spec, method.generator)
        return edit_distances(method, inversion, self.direction, self.factor, self.domain).cpu()

    def result(self, per_image: torch.Tensor) -> MetricResult:
        """LEC of the images of full protocol batches; the rest are not scored."""
        lec, batch_means, kept = aggregate(per_image, self.batch_size)
        scored = per_image[: len(batch_means) * self.batch_size]
        protocol = protocol_text(self.direction, self.factor, self.batch_size)
        return MetricResult(
            lec,
            {
                "per_image": scored.tolist(),
                "std": float(scored.std(unbiased=False)),  # over images; LEC itself is a mean of batch means
                "n_images": len(scored),
                "n_batches": len(batch_means),
                "kept_batches": kept,
                "protocol": protocol + (f"; edit {self.edit_name}" if self.edit_name else ""),
            },
        )


@register_metric(
    "lec",
    kind="method",
    title="LEC",
    unit="L2 distance in W+",
    in_run=True,
    on_edits=True,
    protocol="LEC as e4e metrics/LEC.py (the direction, factor and batch size are named in each result's protocol)",
)
def build_lec(
    context: MetricContext, *, direction: str | None = None, factor: float | None = None,
    batch_size: int = PROTOCOL_BATCH_SIZE
) -> LecMetric:
    """The domain's benchmark edit unless `direction` (a SPEC) and `factor` are given."""
    return LecMetric(context, direction, factor, batch_size)
