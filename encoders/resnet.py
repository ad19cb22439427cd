"""The ResNet-34 backbone of ReStyle's non-face encoders, with the official module names.

torchvision's ResNet-34 stages (`layer1..layer4`) flattened into one `body` of 16 BasicBlocks
after a stem `conv1`, `bn1`, `relu` whose activation is a PReLU and which has no max-pool: the
body ends at stride 16 (a 16x16 map for 256x256 inputs). The names are the checkpoint keys
(`conv1.weight`, `body.3.downsample.0.weight`, ...), so official files load strictly.
"""
from __future__ import annotations

import itertools
import re

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

BLOCKS_PER_STAGE = (3, 4, 6, 3)
STAGE_WIDTHS = (64, 128, 256, 512)


def downsample(in_channels: int, width: int, stride: int) -> nn.Module | None:
    """torchvision's projection shortcut (1x1 conv + BN) where a block changes width or stride."""
    if in_channels == width and stride == 1:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(width))


def stage_starts() -> list[int]:
    """Index in `body` of the first block of each stage: [0, 3, 7, 13]."""
    return [0, *itertools.accumulate(BLOCKS_PER_STAGE[:-1])]


def torchvision_to_body(state_dict: dict) -> dict:
    """torchvision ResNet-34 keys (`layer2.1.conv1.weight`) -> this backbone's (`body.4.conv1.weight`)."""
    starts = stage_starts()

    def rename(key: str) -> str:
        match = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", key)
        return key if match is None else f"body.{starts[int(match[1]) - 1] + int(match[2])}.{match[3]}"

    return {rename(key): value for key, value in state_dict.items()}


class ResNet34Backbone(nn.Module):
    """Stem and body of ReStyle's `ResNetBackboneEncoder`: [B, input_nc, H, W] -> [B, widths[3], H/16, W/16]."""

    def __init__(
        self,
        input_nc: int = 6,                             # image + previous reconstruction
        stage_depths: tuple[int, ...] = STAGE_WIDTHS,  # widths of the stem/stage 1 and stages 2, 3, 4
    ):
        super().__init__()
        if len(stage_depths) != 4:
            raise ValueError(f"ResNet-34 takes 4 stage widths, got {stage_depths}")
        self.input_nc = input_nc
        self.stage_depths = tuple(stage_depths)
        self.conv1 = nn.Conv2d(input_nc, stage_depths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_depths[0])
        self.relu = nn.PReLU(stage_depths[0])
        blocks = []
        in_channels = stage_depths[0]
        for stage, (width, count) in enumerate(zip(stage_depths, BLOCKS_PER_STAGE)):
            stride = 1 if stage == 0 else 2
            blocks.append(BasicBlock(in_channels, width, stride, downsample(in_channels, width, stride)))
            blocks += [BasicBlock(width, width) for _ in range(count - 1)]
            in_channels = width
        self.body = nn.Sequential(*blocks)

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.relu(self.bn1(self.conv1(x))))
