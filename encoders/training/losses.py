"""The encoder's training objective: L2, LPIPS, identity/MoCo similarity, w-norm, delta-reg, adversarial.

Formulas follow the official criteria (encoders.md §4.4, metrics.md §5-6). Every image term sees
the reconstruction at the training input size, after the domain crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.faces.crop import arcface_input, face_box
from encoders.training.latent_discriminator import adversarial_loss
from encoders.training.options import TrainOptions

IR_SE50_ASSET = "arcface-ir-se50"
# The ID loss's fixed FFHQ-alignment face box, in a 256x256 frame: rows 35:223, columns 32:220.
class ArcFaceSimilarity(nn.Module):
    """Unit ArcFace embeddings of the face box pooled to 112x112 (criteria/id_loss.py)."""

    def __init__(self, arcface: nn.Module):
        super().__init__()
        self.arcface = arcface

    def forward(self, images: Tensor) -> Tensor:
        return self.arcface(arcface_input(images))


def similarity_loss(features: nn.Module, reconstructions: Tensor, targets: Tensor) -> Tensor:
    """mean_b (1 - <f(y_hat_b), f(y_b)>) with unit features and f(y) held fixed."""
    with torch.no_grad():
        target_features = features(targets)
    return (1 - (features(reconstructions) * target_features).sum(1)).mean()


def delta_regulariser(codes: Tensor, stage: int, p: int) -> Tensor:
    """sum_{i=1..stage} mean_b ||w_i - w_0||_p: the offsets in force, unsquared, per sample."""
    offsets = codes[:, 1:stage + 1] - codes[:, :1]
    return torch.linalg.vector_norm(offsets, ord=p, dim=2).mean(0).sum()


def w_norm(codes: Tensor, latent_avg: Tensor | None) -> Tensor:
    """sum_b ||W_b - latent_avg||_F / B (pSp's WNormLoss)."""
    if latent_avg is not None:
        codes = codes - latent_avg
    return torch.linalg.vector_norm(codes.flatten(1), dim=1).mean()


def similarity_networks(opts: TrainOptions, domain: Domain) -> dict[str, str]:
    """Which similarity network each weighted term needs: {'id' or 'moco': 'arcface' or 'moco'}.

    e4e's `id_lambda` weighs the domain's network (ArcFace for faces, MoCo elsewhere: the official
    coach switches on dataset_type); pSp's `id_lambda` is always ArcFace and `moco_lambda` MoCo.
    """
    wanted = {}
    if opts.id_lambda > 0:
        network = domain.identity if opts.method == "e4e" else "arcface"
        if network is None:
            raise E4EBenchError(f"domain {domain.name!r} has no similarity network; pass --id-lambda 0")
        wanted["id"] = network
    if opts.moco_lambda > 0:
        wanted["moco"] = "moco"
    return wanted


@dataclass
class LossNetworks:
    """The frozen networks the image terms use; None where the term's weight is 0."""

    lpips: nn.Module | None = None
    similarity: dict[str, nn.Module] | None = None


class EncoderObjective(nn.Module):
    """Weighted sum of the official terms; returns (total, {term: detached value})."""

    def __init__(self, opts: TrainOptions, networks: LossNetworks):
        super().__init__()
        self.opts = opts
        self.lpips = networks.lpips
        self.similarity = nn.ModuleDict(networks.similarity or {})

    def forward(
        self,
        reconstructions: Tensor,  # [B,3,H,W], the decoder output pooled and cropped to the input size
        targets: Tensor,  # [B,3,H,W], the input images
        codes: Tensor,  # [B, n_styles, D], encoder output + latent_avg (what the decoder saw)
        latent_avg: Tensor | None,  # [n_styles, D] or None
        stage: int | None = None,  # e4e progressive stage, None when not training progressively
        discriminator: nn.Module | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        o = self.opts
        terms: dict[str, tuple[float, Tensor]] = {}
        terms["l2"] = (o.l2_lambda, F.mse_loss(reconstructions, targets))
        if self.lpips is not None:
            terms["lpips"] = (o.lpips_lambda, self.lpips(reconstructions, targets).mean())
        if o.lpips_lambda_crop > 0:
            terms["lpips_crop"] = (o.lpips_lambda_crop,
                                   self.lpips(face_box(reconstructions), face_box(targets)).mean())
        if o.l2_lambda_crop > 0:
            terms["l2_crop"] = (o.l2_lambda_crop, F.mse_loss(face_box(reconstructions), face_box(targets)))
        for name, network in self.similarity.items():
            weight = o.id_lambda if name == "id" else o.moco_lambda
            terms[name] = (weight, similarity_loss(network, reconstructions, targets))
        if o.w_norm_lambda > 0:
            terms["w_norm"] = (o.w_norm_lambda, w_norm(codes, latent_avg))
        if stage is not None:
            terms["delta_reg"] = (o.delta_norm_lambda, delta_regulariser(codes, stage, o.delta_norm))
        if discriminator is not None:
            rows = codes if stage is None else codes[:, :stage + 1]
            terms["adversarial"] = (o.w_discriminator_lambda, adversarial_loss(discriminator, rows))
        total = sum(weight * value for weight, value in terms.values())
        return total, {name: value.detach() for name, (_, value) in terms.items()}
