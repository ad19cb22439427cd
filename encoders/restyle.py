"""ReStyle's iterative refinement (Alaluf et al. 2021): the encoder sees the image beside the current
reconstruction and adds its output to the current codes.

Step 0 reads the image beside the average image G(latent_avg) and starts from latent_avg; step t
reads the image beside step t-1's reconstruction, cropped to the domain's content and area-pooled
to the encoder input (cars: rows 64:448 of 512, pooled to 192x256), decoded with the generator's
stored noise as the official inference does.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from e4e_bench.networks.generator import NoiseSpec
from encoders.inverter import Inverter

FrameToInput = Callable[[Tensor], Tensor]  # generator frames [B,3,S,S] -> encoder input [B,3,H,W]


class ReStyleInverter(Inverter):
    """An Inverter whose encoder reads [image, reconstruction] and predicts a correction.

    Same state (`encoder.*`, `decoder.*`, `latent_avg` beside them) as the single-pass one;
    `latent_avg` is required: it is the first step's starting point.
    """

    def __init__(self, encoder, decoder, latent_avg: Tensor):
        if latent_avg is None:
            raise ValueError("ReStyle starts from latent_avg; pass the generator's average latent")
        super().__init__(encoder, decoder, latent_avg)

    def codes(self, images: Tensor, previous: Tensor, codes: Tensor | None = None) -> Tensor:
        """One step: `codes` (default latent_avg) + E([images, previous]), [B, n_latent, style_dim]."""
        offsets = self.encoder(torch.cat([images, previous], dim=1))[:, : self.n_latent]
        return offsets + (self.latent_avg if codes is None else codes)

    def forward(self, images: Tensor, previous: Tensor, codes: Tensor | None = None, noise: NoiseSpec = "const",
                rng: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One step and its decoding: (frames [B,3,S,S] at full resolution, uncropped; codes)."""
        codes = self.codes(images, previous, codes)
        return self.decoder(codes, noise=noise, rng=rng), codes

    def average_image(self, to_input: FrameToInput) -> Tensor:
        """G(latent_avg) with the stored noise, as the encoder reads it: [1, 3, H, W]."""
        return to_input(self.decoder(self.latent_avg[None], noise="const"))

    def iterate(self, images: Tensor, average_image: Tensor, iterations: int, to_input: FrameToInput) -> Tensor:
        """The official inference loop, batched: the codes after each step, [B, iterations, n_latent, style_dim].

        The last step's codes are not decoded here (whoever needs the image decodes them).
        """
        previous = average_image.expand(images.shape[0], -1, -1, -1)
        codes = None
        trajectory = []
        for step in range(iterations):
            codes = self.codes(images, previous, codes)
            trajectory.append(codes)
            if step + 1 < iterations:
                previous = to_input(self.decoder(codes, noise="const"))
        return torch.stack(trajectory, dim=1)
