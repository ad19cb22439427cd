"""e4e's latent-code discriminator, its logistic losses with lazy R1, and the pools of past codes.

Key names are the official ones (`mlp.{0,2,4,6}`, plain `nn.Linear`), so the discriminator state
in an official `--save_training_data` checkpoint loads strict (encoders.md §2.2, §4.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LatentCodesDiscriminator(nn.Module):
    """[Linear, LeakyReLU(0.2)] x (n_mlp - 1), then Linear(style_dim, 1): one logit per code."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: Tensor) -> Tensor:
        """[B, style_dim] -> [B, 1]."""
        return self.mlp(w)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Non-saturating logistic loss of the discriminator."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(discriminator: nn.Module, real_w: Tensor) -> Tensor:
    """mean_b ||d D(w_b) / d w_b||^2 on real codes (create_graph, so it can be minimised)."""
    real_w = real_w.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real_w).sum(), real_w, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def adversarial_loss(discriminator: nn.Module, codes: Tensor) -> Tensor:
    """Encoder side: mean over rows and batch of softplus(-D(w)) for codes `[B, rows, style_dim]`."""
    return F.softplus(-discriminator(codes.flatten(0, 1))).mean()


class LatentCodesPool:
    """A pool of past codes (a history buffer, as CycleGAN's image pool).

    `query` takes `[B, D]` or `[B, rows, D]` codes; from a multi-row item one random row stands
    for it. Until the pool is full every item is stored and returned; then each item is, with
    probability 1/2, swapped with a random stored one (the stored one is returned), else returned.
    All randomness comes from `rng`, so a resumed run continues the same stream.
    """

    def __init__(self, size: int):
        self.size = size
        self.codes: list[Tensor] = []

    def query(self, codes: Tensor, rng: torch.Generator) -> Tensor:
        if self.size == 0:
            return codes
        batch = codes.shape[0]
        if codes.ndim == 3:
            rows = torch.randint(codes.shape[1], (batch,), generator=rng, device=rng.device).to(codes.device)
            codes = codes[torch.arange(batch, device=codes.device), rows]
        codes = codes.detach()
        swap = (torch.rand(batch, generator=rng, device=rng.device) > 0.5).tolist()
        slot = torch.randint(self.size, (batch,), generator=rng, device=rng.device).tolist()
        out = []
        for i in range(batch):
            if len(self.codes) < self.size:
                self.codes.append(codes[i].clone())
                out.append(codes[i])
            elif swap[i]:
                out.append(self.codes[slot[i]])
                self.codes[slot[i]] = codes[i].clone()
            else:
                out.append(codes[i])
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "codes": torch.stack(self.codes) if self.codes else torch.empty(0)}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.codes = list(state["codes"].to(device).unbind(0)) if state["codes"].numel() else []
