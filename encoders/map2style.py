"""map2style: the pSp/e4e head that turns one feature map into one style vector."""
from __future__ import annotations

import math

from torch import Tensor, nn

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import EqualLinear

# Slope of the heads' activations: nn.LeakyReLU's default, not StyleGAN's 0.2.
HEAD_SLOPE = 0.01


class GradualStyleBlock(nn.Module):
    """log2(spatial) stride-2 3x3 convs with LeakyReLU(0.01), then EqualLinear: [B,C,h,w] -> [B,out].

    `spatial` is the nominal side of the level the head reads (16, 32 or 64 for a 256-px input);
    it fixes the number of convs and so the checkpoint keys `convs.{0,2,4,..}` and `linear`.
    The convs must bring the map to 1x1, as they do for the 256x256 and 192x256 inputs.
    """

    def __init__(
        self,
        in_channels: int,   # channels of the pyramid level (512)
        out_channels: int,  # style_dim
        spatial: int,       # nominal side of the level: a power of two
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(int(math.log2(spatial))):
            layers.append(nn.Conv2d(in_channels if index == 0 else out_channels, out_channels,
                                    kernel_size=3, stride=2, padding=1))
            layers.append(nn.LeakyReLU(HEAD_SLOPE))
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)
        if x.shape[2:] != (1, 1):
            raise E4EBenchError(f"map2style head left a {tuple(x.shape[2:])} map, expected 1x1: the encoder input "
                                "is larger than the head was built for; load images at the domain's encoder input")
        return self.linear(x.flatten(1))
