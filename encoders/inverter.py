"""The encoder + generator wrapper of the official pSp/e4e code: codes = encoder(x) + latent_avg, then decode."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from e4e_bench.networks.generator import Generator, NoiseSpec


def latent_avg_rows(latent_avg: Tensor, n_latent: int) -> Tensor:
    """`latent_avg` as [n_latent, D]: [D] and [1, D] are broadcast, [n >= n_latent, D] keeps its first rows."""
    rows = latent_avg.unsqueeze(0) if latent_avg.ndim == 1 else latent_avg
    if rows.ndim != 2 or (rows.shape[0] != 1 and rows.shape[0] < n_latent):
        raise ValueError(f"latent_avg must be [D], [1, D] or [n >= {n_latent}, D], got {list(latent_avg.shape)}")
    return rows[:n_latent].expand(n_latent, -1).clone()


class Inverter(nn.Module):
    """pSp's wrapper without `face_pool`: images -> W+ codes (latent_avg included) -> reconstructions.

    `state_dict()` holds exactly `encoder.*` and `decoder.*`, the official `state_dict` layout;
    `latent_avg` is a non-persistent buffer, stored at the top level of checkpoints as officially.
    Encoders that emit more codes than the generator reads (18 for a 512-px generator) are cut to
    `n_latent`, as the official cars inference does.
    """

    def __init__(
        self,
        encoder: nn.Module,            # images -> [B, n_styles, style_dim] offsets, with n_styles and style_dim
        decoder: Generator,            # the generator the codes belong to
        latent_avg: Tensor | None,     # [D], [1, D] or [n, D]; None when the encoder predicts absolute codes
    ):
        super().__init__()
        if encoder.style_dim != decoder.style_dim:
            raise ValueError(f"encoder style_dim {encoder.style_dim} != generator style_dim {decoder.style_dim}")
        if encoder.n_styles < decoder.n_latent:
            raise ValueError(f"encoder predicts {encoder.n_styles} codes, the generator needs {decoder.n_latent}")
        self.encoder = encoder
        self.decoder = decoder
        if latent_avg is not None and latent_avg.shape[-1] != decoder.style_dim:
            raise ValueError(f"latent_avg has width {latent_avg.shape[-1]}, the generator's style_dim is {decoder.style_dim}")
        rows = None if latent_avg is None else latent_avg_rows(latent_avg.float(), decoder.n_latent)
        self.register_buffer("latent_avg", rows, persistent=False)

    @property
    def n_latent(self) -> int:
        return self.decoder.n_latent

    @property
    def encoder_input_channels(self) -> int:
        """Channels the encoder reads (the official `opts['input_nc']`)."""
        return self.encoder.input_nc

    def codes(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, n_latent, style_dim], the codes fed to the generator."""
        codes = self.encoder(images)[:, : self.n_latent]
        return codes if self.latent_avg is None else codes + self.latent_avg

    def forward(self, images: Tensor, noise: NoiseSpec = "const", rng: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(reconstructions [B, 3, size, size] at full generator resolution, uncropped; codes)."""
        codes = self.codes(images)
        return self.decoder(codes, noise=noise, rng=rng), codes

