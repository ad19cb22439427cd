"""HyperStyle (Alaluf et al. 2022): a W encoder's code, and per-image offsets to the generator's weights
that a hypernetwork refines over a few passes (official `models/hyperstyle.py`,
`utils/inference_utils.py: run_inversion`).

Pass 0 decodes the W encoder's codes with the original weights; pass t reads the image beside pass
t-1's reconstruction (cropped to the domain's content and area-pooled to the encoder input, as the
official cars crop and pool) and adds its offsets to the sum so far. The codes never change. Noise
is the generator's stored maps, as the official inference's `randomize_noise=False` (and its training).

`forward` is one training pass (the official model's forward): its gradients reach this pass's codes only,
as the official coach adds the new offsets to the previous ones detached.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from e4e_bench.networks.generator import Generator
from encoders.hypernetwork import SharedWeightsHyperNetResNet, layer_shapes
from encoders.inverter import latent_avg_rows

FrameToInput = Callable[[Tensor], Tensor]  # generator frames [B,3,S,S] -> encoder input [B,3,H,W]


class HyperStyle(nn.Module):
    """`hypernet`, `decoder` (the official `state_dict`), the frozen `w_encoder` beside them (its own file,
    kept out of `official_state`) and `latent_avg` `[n_latent, D]` (added to the W encoder's output)."""

    def __init__(self, hypernet: SharedWeightsHyperNetResNet, decoder: Generator, w_encoder: nn.Module,
                 latent_avg: Tensor):
        super().__init__()
        if hypernet.layers != tuple(layer_shapes(decoder)):
            raise ValueError(f"the hypernetwork predicts offsets for {len(hypernet.layers)} layers of other shapes "
                             f"than this {decoder.size} px generator's {len(decoder.modulated_layers())}")
        if w_encoder.style_dim != decoder.style_dim:
            raise ValueError(f"W encoder style_dim {w_encoder.style_dim} != generator style_dim {decoder.style_dim}")
        if w_encoder.n_styles < decoder.n_latent:
            raise ValueError(f"the W encoder gives {w_encoder.n_styles} codes, the generator needs {decoder.n_latent}")
        self.hypernet = hypernet
        self.decoder = decoder
        self.w_encoder = w_encoder.eval().requires_grad_(False)
        self.register_buffer("latent_avg", latent_avg_rows(latent_avg.float(), decoder.n_latent), persistent=False)
        self.layer_names = list(decoder.modulated_layers())

    def official_state(self, keep_vars: bool = False) -> dict[str, Tensor]:
        """`hypernet.*` and `decoder.*`: what the official checkpoints hold (the W encoder is its own file)."""
        return {key: value for key, value in self.state_dict(keep_vars=keep_vars).items()
                if not key.startswith("w_encoder.")}

    def load_official_state(self, state_dict: dict[str, Tensor]) -> None:
        """Load `official_state()`'s keys strictly; the W encoder keeps its weights."""
        own = {f"w_encoder.{key}": value for key, value in self.w_encoder.state_dict().items()}
        self.load_state_dict(state_dict | own, strict=True)

    def train(self, mode: bool = True) -> "HyperStyle":
        super().train(mode)
        self.w_encoder.eval()  # frozen, BatchNorm included, whatever the hypernetwork does
        return self

    @torch.no_grad()
    def w_codes(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> the W encoder's codes plus latent_avg, [B, n_latent, D]."""
        return self.w_encoder(images)[:, : self.decoder.n_latent] + self.latent_avg

    def offsets(self, codes: Tensor, count: Tensor | float) -> dict[str, Tensor]:
        """The weight offsets, by generator layer name, of `count` passes whose hypernetwork codes sum to `codes`."""
        return {self.layer_names[index]: value for index, value in self.hypernet.offsets(codes, count).items()}

    def decode(self, codes: Tensor, hyper_codes: Tensor | None = None, count: Tensor | float = 0) -> Tensor:
        """Frames [B, 3, S, S] of `codes` with the offsets of `count` passes summing to `hyper_codes` (None: none)."""
        offsets = None if hyper_codes is None else self.offsets(hyper_codes, count)
        return self.decoder(codes, noise="const", offsets=offsets)

    def forward(self, images: Tensor, codes: Tensor, previous: Tensor, total: Tensor | None, done: int
                ) -> tuple[Tensor, Tensor]:
        """Training pass `done + 1`: (frames [B, 3, S, S], the hypernetwork codes summed over the passes so far).

        `previous` is the last pass's reconstruction at the input size, `total` the codes of the `done` passes
        before (None for the first); their offsets are held fixed, so the gradients are the official coach's.
        """
        step_codes = self.hypernet(torch.cat([images, previous], dim=1))
        offsets = self.offsets(step_codes, 1)
        if total is not None:
            with torch.no_grad():
                before = self.offsets(total, done)
            offsets = {name: before[name] + value for name, value in offsets.items()}
            step_codes = total.detach() + step_codes
        return self.decoder(codes, noise="const", offsets=offsets), step_codes

    def iterate(self, images: Tensor, codes: Tensor, iterations: int, to_input: FrameToInput) -> Tensor:
        """The official inference loop, batched: the hypernetwork codes summed up to each pass,
        `[B, iterations, n_tuned, width]`. The last pass is not decoded here."""
        previous = to_input(self.decode(codes))
        total = None
        sums = []
        for step in range(1, iterations + 1):
            step_codes = self.hypernet(torch.cat([images, previous], dim=1))
            total = step_codes if total is None else total + step_codes
            sums.append(total)
            if step < iterations:
                previous = to_input(self.decode(codes, total, step))
        return torch.stack(sums, dim=1)
