"""HyperStyle's W encoder (`WEncoder`, official `models/encoders/w_encoder.py`): one W code per image.

The IR-SE-50 stem and body of pSp/e4e, the last map averaged to a vector and one EqualLinear: the
same code for every layer. The authors trained it with the e4e code base, one latent instead of 18;
its files use the official e4e layout with `opts['encoder_type'] = 'WEncoder'`.
"""
from __future__ import annotations

from torch import Tensor

from e4e_bench.networks.generator import EqualLinear
from encoders.ir_se import STAGE_DEPTHS, IRSEBackbone


class WEncoder(IRSEBackbone):
    """`input_layer`, `body.0-23`, `linear`: [B, 3, H, W] -> [B, n_styles, style_dim], every row the same."""

    def __init__(self, n_styles: int, style_dim: int = 512, num_layers: int = 50, input_nc: int = 3,
                 stage_depths: tuple[int, ...] = STAGE_DEPTHS):
        super().__init__(num_layers, input_nc, stage_depths)
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.linear = EqualLinear(self.stage_depths[3], style_dim)

    def forward(self, x: Tensor) -> Tensor:
        code = self.linear(self.features(x).mean(dim=(2, 3)))
        return code[:, None].expand(-1, self.n_styles, -1)

    def extra_repr(self) -> str:
        return f"n_styles={self.n_styles}, style_dim={self.style_dim}, stage_depths={self.stage_depths}"
