"""pSp's GradualStyleEncoder: IR-SE backbone, a three-level feature pyramid, one map2style head per style."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from encoders.ir_se import STAGE_DEPTHS, IRSEBackbone
from encoders.map2style import GradualStyleBlock

# Styles [0, 3) read the coarse level (c3), [3, 7) the medium one (p2), the rest the fine one (p1).
COARSE_END = 3
MEDIUM_END = 7
# Nominal side of each level for a 256-px input; it sets each head's number of convs.
LEVEL_SPATIAL = (16, 32, 64)


def head_level(style_index: int) -> int:
    """Pyramid level (0 coarse, 1 medium, 2 fine) that style `style_index` is predicted from."""
    return 0 if style_index < COARSE_END else 1 if style_index < MEDIUM_END else 2


def upsample_add(top: Tensor, lateral: Tensor) -> Tensor:
    """FPN merge: `top` resized bilinearly (align_corners=True) to `lateral`'s exact size, plus `lateral`."""
    return F.interpolate(top, size=lateral.shape[2:], mode="bilinear", align_corners=True) + lateral


class GradualStyleEncoder(IRSEBackbone):
    """Images [B,3,H,W] in [-1,1] -> codes [B, n_styles, style_dim], each style predicted independently.

    The codes are offsets from the generator's average latent (the wrapper adds `latent_avg`).
    The pyramid has the width of the last stage (512 officially), which the lateral layers map to.
    """

    def __init__(
        self,
        n_styles: int,                                 # codes per image: 2*log2(generator size) - 2 (16 for 512 px)
        style_dim: int = 512,                          # width of one code (the generator's style_dim)
        num_layers: int = 50,                          # IR-SE depth: 50, 100 or 152
        input_nc: int = 3,                             # image channels
        stage_depths: tuple[int, ...] = STAGE_DEPTHS,  # IR-SE widths; the official ones unless testing
    ):
        super().__init__(num_layers, input_nc, stage_depths)
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.head_levels = tuple(head_level(i) for i in range(n_styles))
        pyramid_channels = stage_depths[3]
        self.styles = nn.ModuleList(
            GradualStyleBlock(pyramid_channels, style_dim, LEVEL_SPATIAL[level]) for level in self.head_levels
        )
        self.latlayer1 = nn.Conv2d(stage_depths[2], pyramid_channels, kernel_size=1)
        self.latlayer2 = nn.Conv2d(stage_depths[1], pyramid_channels, kernel_size=1)

    def levels(self, images: Tensor, deepest: int) -> list[Tensor]:
        """Pyramid levels 0..`deepest`: c3 [B,512,H/16,W/16], p2 [.., H/8, W/8], p1 [.., H/4, W/4]."""
        c1, c2, c3 = self.pyramid(images)
        levels = [c3]
        if deepest >= 1:
            levels.append(upsample_add(c3, self.latlayer1(c2)))
        if deepest >= 2:
            levels.append(upsample_add(levels[1], self.latlayer2(c1)))
        return levels

    def forward(self, images: Tensor) -> Tensor:
        levels = self.levels(images, self.head_levels[-1])
        return torch.stack([head(levels[level]) for head, level in zip(self.styles, self.head_levels)], dim=1)

    def extra_repr(self) -> str:
        return (f"n_styles={self.n_styles}, style_dim={self.style_dim}, num_layers={self.num_layers}, "
                f"stage_depths={self.stage_depths}")
