"""ReStyle's encoders: every style read from the backbone's last map, from a 6-channel input (the
image and the current reconstruction). The class names are the official `encoder_type`s.

IR-SE-50 for faces, ResNet-34 for the other domains; the pSp variant predicts each style on its
own, the e4e variant one base code plus progressive offsets. Each head is a map2style block for a
nominal 16x16 map (four stride-2 convs) whatever the backbone's width. The codes are offsets: the
iteration adds them to the previous codes (to latent_avg at the first step).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from encoders.e4e_encoder import ProgressiveOffsets
from encoders.ir_se import STAGE_DEPTHS, IRSEBackbone
from encoders.map2style import GradualStyleBlock
from encoders.resnet import STAGE_WIDTHS, ResNet34Backbone

INPUT_NC = 6  # image + reconstruction (the average image at the first step)
HEAD_SPATIAL = 16  # the side of the last map for a 256x256 input


class LastMapStyles:
    """Mixed in before a backbone with `features(x)`: adds `n_styles` heads that all read its last map."""

    def add_heads(self, n_styles: int, style_dim: int) -> None:
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.styles = nn.ModuleList(
            GradualStyleBlock(self.stage_depths[3], style_dim, HEAD_SPATIAL) for _ in range(n_styles))

    def forward(self, x: Tensor) -> Tensor:
        """[B, 6, H, W] -> [B, n_styles, style_dim]."""
        features = self.features(x)
        return torch.stack([head(features) for head in self.styles], dim=1)

    def extra_repr(self) -> str:
        return f"n_styles={self.n_styles}, style_dim={self.style_dim}, stage_depths={self.stage_depths}"


class LastMapProgressiveStyles(ProgressiveOffsets, LastMapStyles):
    """The e4e variant: w0 from head 0, offsets 1..stage from the others, all on the last map."""

    def add_heads(self, n_styles: int, style_dim: int) -> None:
        super().add_heads(n_styles, style_dim)
        self.stage = self.last_stage

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        return self.progressive_codes(lambda index: features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stage={self.stage}"


class BackboneEncoder(LastMapStyles, IRSEBackbone):
    """ReStyle-pSp for faces: IR-SE-50 (`input_layer`, `body.0-23`) and `styles.*`."""

    def __init__(self, n_styles: int, style_dim: int = 512, num_layers: int = 50, input_nc: int = INPUT_NC,
                 stage_depths: tuple[int, ...] = STAGE_DEPTHS):
        IRSEBackbone.__init__(self, num_layers, input_nc, stage_depths)
        self.add_heads(n_styles, style_dim)


class ProgressiveBackboneEncoder(LastMapProgressiveStyles, IRSEBackbone):
    """ReStyle-e4e for faces: the same modules and keys as `BackboneEncoder`."""

    def __init__(self, n_styles: int, style_dim: int = 512, num_layers: int = 50, input_nc: int = INPUT_NC,
                 stage_depths: tuple[int, ...] = STAGE_DEPTHS):
        IRSEBackbone.__init__(self, num_layers, input_nc, stage_depths)
        self.add_heads(n_styles, style_dim)


class ResNetBackboneEncoder(LastMapStyles, ResNet34Backbone):
    """ReStyle-pSp beyond faces: ResNet-34 (`conv1`, `bn1`, `relu`, `body.0-15`) and `styles.*`."""

    def __init__(self, n_styles: int, style_dim: int = 512, input_nc: int = INPUT_NC,
                 stage_depths: tuple[int, ...] = STAGE_WIDTHS):
        ResNet34Backbone.__init__(self, input_nc, stage_depths)
        self.add_heads(n_styles, style_dim)


class ResNetProgressiveBackboneEncoder(LastMapProgressiveStyles, ResNet34Backbone):
    """ReStyle-e4e beyond faces: the same modules and keys as `ResNetBackboneEncoder`."""

    def __init__(self, n_styles: int, style_dim: int = 512, input_nc: int = INPUT_NC,
                 stage_depths: tuple[int, ...] = STAGE_WIDTHS):
        ResNet34Backbone.__init__(self, input_nc, stage_depths)
        self.add_heads(n_styles, style_dim)
