"""IR-SE residual backbone with TreB1eN's InsightFace module names.

The names (`input_layer.{0,1,2}`, `body.{u}.res_layer.{0..5}`, `body.{u}.shortcut_layer.{0,1}`,
`output_layer.*`) are the checkpoint keys, so `model_ir_se50.pth` (ArcFace) initialises
`input_layer` and `body` of every encoder built on `IRSEBackbone`, and loads strict into `ArcFaceIRSE`.
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Units per stage for the depths TreB1eN defines; every stage starts with a stride-2 unit.
UNITS_PER_STAGE = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_DEPTHS = (64, 128, 256, 512)
SE_REDUCTION = 16


class SEModule(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class Subsample(nn.Module):
    """The parameter-free shortcut of a unit whose width does not change.

    Equal to TreB1eN's MaxPool2d(kernel_size=1, stride): a kernel-1 max pool only picks every
    stride-th pixel, which a strided view does without a copy.
    """

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :: self.stride, :: self.stride]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class BottleneckIRSE(nn.Module):
    """out = res_layer(x) + shortcut_layer(x), with no activation after the sum."""

    def __init__(
        self,
        in_channels: int,  # channels of x
        depth: int,        # channels of the output
        stride: int,       # 2 for the first unit of a stage, else 1
    ):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(depth),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def valid_stage_depths(stage_depths: tuple[int, ...]) -> bool:
    """4 strictly increasing widths, the first at least SE_REDUCTION (so every SE gate has a channel)."""
    # Widening at every stage is what puts the shortcut convs (and their keys) at each stage's first unit.
    return len(stage_depths) == 4 and stage_depths[0] >= SE_REDUCTION and list(stage_depths) == sorted(set(stage_depths))


def body_units(num_layers: int, stage_depths: tuple[int, ...] = STAGE_DEPTHS) -> list[tuple[int, int, int]]:
    """(in_channels, depth, stride) of every unit of IR-SE-`num_layers`, in body order."""
    if num_layers not in UNITS_PER_STAGE:
        raise ValueError(f"IR-SE depth must be one of {sorted(UNITS_PER_STAGE)}, got {num_layers}")
    if not valid_stage_depths(stage_depths):
        raise ValueError(f"stage_depths must be 4 increasing widths from at least {SE_REDUCTION}, got {stage_depths}")
    units = []
    in_channels = stage_depths[0]
    for depth, count in zip(stage_depths, UNITS_PER_STAGE[num_layers]):
        units.append((in_channels, depth, 2))
        units += [(depth, depth, 1)] * (count - 1)
        in_channels = depth
    return units


def num_layers_from_units(n_units: int) -> int | None:
    """The IR-SE depth whose body has `n_units` units (24 -> 50), or None."""
    return next((layers for layers, stages in UNITS_PER_STAGE.items() if sum(stages) == n_units), None)


def stage_starts(num_layers: int) -> list[int]:
    """Index of the first (stride-2) unit of each stage: [0, 3, 7, 21] for IR-SE-50."""
    return [0, *itertools.accumulate(UNITS_PER_STAGE[num_layers][:-1])]


class IRSEBackbone(nn.Module):
    """Stem and body; `pyramid` returns the outputs of stages 2, 3 and 4 (strides 4, 8, 16).

    `stage_depths` other than the official (64, 128, 256, 512) keep every key name and only
    change shapes: small test and toy encoders with the official layout.
    """

    def __init__(
        self,
        num_layers: int = 50,                          # 50, 100 or 152
        input_nc: int = 3,                             # image channels
        stage_depths: tuple[int, ...] = STAGE_DEPTHS,  # output channels of the stem/stage 1 and stages 2, 3, 4
    ):
        super().__init__()
        self.num_layers = num_layers
        self.input_nc = input_nc
        self.stage_depths = tuple(stage_depths)
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, stage_depths[0], kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(stage_depths[0]),
            nn.PReLU(stage_depths[0]),
        )
        self.body = nn.Sequential(*(BottleneckIRSE(*unit) for unit in body_units(num_layers, self.stage_depths)))
        stage_ends = [end - 1 for end in itertools.accumulate(UNITS_PER_STAGE[num_layers])]
        # For IR-SE-50 these are units 6, 20 and 23, where the official encoders tap c1, c2, c3.
        self.tap_units = tuple(stage_ends[1:])

    def features(self, x: Tensor) -> Tensor:
        """[B,input_nc,H,W] -> the body's last map [B,512,H/16,W/16] (official widths)."""
        return self.body(self.input_layer(x))

    def pyramid(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[B,input_nc,H,W] -> (c1 [B,128,H/4,W/4], c2 [B,256,H/8,W/8], c3 [B,512,H/16,W/16]) (official widths)."""
        x = self.input_layer(x)
        taps = []
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in self.tap_units:
                taps.append(x)
        c1, c2, c3 = taps
        return c1, c2, c3


class ArcFaceIRSE(IRSEBackbone):
    """TreB1eN's ArcFace `Backbone(input_size, num_layers, 'ir_se')`: l2-normalised 512-d embeddings.

    The pSp/e4e ID loss uses `ArcFaceIRSE(112, 50, drop_ratio=0.6)` with the weights of
    `model_ir_se50.pth`, in eval mode, on 112x112 face crops.
    """

    def __init__(
        self,
        input_size: int = 112,     # 112 or 224: the square input the embedding layer expects
        num_layers: int = 50,
        drop_ratio: float = 0.6,   # dropout before the embedding layer (training only)
        affine: bool = True,       # affine final BatchNorm1d (False for CurricularFace-style IR nets)
    ):
        if input_size not in (112, 224):
            raise ValueError(f"ArcFace input_size must be 112 or 224, got {input_size}")
        super().__init__(num_layers)
        self.input_size = input_size
        final_side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(STAGE_DEPTHS[-1]),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(STAGE_DEPTHS[-1] * final_side * final_side, 512),
            nn.BatchNorm1d(512, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        """[B,3,input_size,input_size] in [-1,1] -> [B,512] unit vectors."""
        return F.normalize(self.output_layer(self.features(x)), dim=1, eps=0.0)
