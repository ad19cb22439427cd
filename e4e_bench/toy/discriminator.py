"""StyleGAN2's residual discriminator (config-e/f), built from the generator's equalised layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from e4e_bench.networks.generator import SQRT2, Blur, EqualLinear, scaled_leaky_relu


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate; `stride=2` is preceded by a FIR blur."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True, blur_taps: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activate = activate
        self.downsample = downsample
        if downsample:
            pad = len(blur_taps) - 2 + kernel_size - 1
            self.blur = Blur(blur_taps, pad=((pad + 1) // 2, pad // 2))
            self.stride, self.padding = 2, 0
        else:
            self.stride, self.padding = 1, kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = self.blur(x)
        linear_bias = None if self.activate else self.bias
        out = F.conv2d(x, self.weight * self.scale, linear_bias, stride=self.stride, padding=self.padding)
        if self.activate:
            bias = self.bias if self.bias is not None else torch.zeros(out.shape[1], device=out.device)
            return scaled_leaky_relu(out, bias)
        return out


class ResBlock(nn.Module):
    """Two 3x3 convolutions (the second halving the size) plus a 1x1 downsampled skip, scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3, downsample=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """Images `[B, 3, size, size]` -> one realness logit per image `[B, 1]`."""

    def __init__(
        self,
        size: int,  # input resolution, a power of two >= 8
        channels: dict[int, int],  # feature maps per resolution, 4 .. size
        stddev_group: int = 4,  # images per minibatch-standard-deviation group
    ):
        super().__init__()
        log_size = int(math.log2(size))
        self.init_kwargs = dict(size=size, channels={int(k): int(v) for k, v in channels.items()}, stddev_group=stddev_group)
        blocks: list[nn.Module] = [EqualConv2d(3, channels[size], 1)]
        for res in (2**i for i in range(log_size, 2, -1)):
            blocks.append(ResBlock(channels[res], channels[res // 2]))
        self.convs = nn.Sequential(*blocks)
        self.stddev_group = stddev_group
        self.final_conv = EqualConv2d(channels[4] + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 16, channels[4], activate=True),
            EqualLinear(channels[4], 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.convs(images)
        out = torch.cat([out, self._minibatch_stddev(out)], dim=1)
        return self.final_linear(self.final_conv(out).flatten(1))

    def _minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """One feature map: the std over each group of images, averaged over channels and pixels."""
        batch, _, height, width = x.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            group = 1
        grouped = x.view(group, batch // group, -1)
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1)  # [batch // group]
        return std.repeat(group).view(batch, 1, 1, 1).expand(batch, 1, height, width)
