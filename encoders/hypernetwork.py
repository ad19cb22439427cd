"""HyperStyle's hypernetwork (`SharedWeightsHyperNetResNet`, official `models/hypernetworks/`), with the
official module names, so `hypernet.*` of an official checkpoint loads strictly.

A ResNet-34 reads the image beside the current reconstruction; for each tuned generator layer a
refinement block turns its last map into a code of `width` values, and a head turns the code into
offsets for that layer's weights (the generator then convolves with `weight * (1 + offset)`).
The 3x3 layers of the official list `SHARED_LAYERS` share one head (`SharedWeightsHypernet`); the
others have their own, whose offsets are per (out, in) channel pair, repeated over the kernel.

Every head is affine in its code, so the offsets summed over T refinement steps are the head applied
to the codes' sum with its bias counted T times: `offsets(sum of codes, T)`. That sum, `width` values
per layer, is what an inversion keeps per image, not the offsets themselves (21.5 M values at cars size).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import EqualLinear, Generator
from encoders.map2style import HEAD_SLOPE
from encoders.resnet import STAGE_WIDTHS, ResNet34Backbone

SHARED_LAYERS = (0, 2, 3, 5, 6, 8, 9, 11, 12)  # official: the 512->512 3x3 convs of 4 to 64 px
INPUT_NC = 6  # image + current reconstruction
SPATIAL = 16  # the side of the backbone's last map for a 256x256 input: fixes each block's number of convs
WIDTH = 512  # the code of every refinement block (official `out_c`), and the shared head's z
REFINEMENT_INNER = 256
SHARED_INNER = 128


@dataclass(frozen=True)
class LayerShape:
    kernel: int
    in_channels: int
    out_channels: int
    to_rgb: bool


def layer_shapes(generator: Generator) -> list[LayerShape]:
    """Each modulated layer of `generator`, in HyperStyle's output order (`Generator.modulated_layers`)."""
    return [LayerShape(layer.conv.kernel_size, layer.conv.in_channels, layer.conv.out_channels, not layer.conv.demodulate)
            for layer in generator.modulated_layers().values()]


def default_tuned(shapes: Sequence[LayerShape]) -> tuple[int, ...]:
    """The official default: every layer but the toRGBs."""
    return tuple(index for index, shape in enumerate(shapes) if not shape.to_rgb)


def head_convs(in_channels: int, inner: int, width: int, first_stride: int, count: int) -> nn.Sequential:
    """`count` 3x3 convs with LeakyReLU(0.01): in -> inner (stride `first_stride`), inner -> inner, inner -> width
    (the others stride 2)."""
    layers: list[nn.Module] = []
    for index in range(count):
        source = in_channels if index == 0 else inner
        target = width if index == count - 1 else inner
        layers += [nn.Conv2d(source, target, 3, stride=first_stride if index == 0 else 2, padding=1),
                   nn.LeakyReLU(HEAD_SLOPE)]
    return nn.Sequential(*layers)


def as_counts(count: Tensor | float, codes: Tensor) -> Tensor:
    """A pass count for each row of `codes` (a number, or `[B]`), as `[B or 1, 1]`."""
    return torch.as_tensor(count, dtype=codes.dtype, device=codes.device).reshape(-1, 1)


def one_by_one(x: Tensor) -> Tensor:
    if x.shape[2:] != (1, 1):
        raise E4EBenchError(f"a HyperStyle refinement block left a {tuple(x.shape[2:])} map, expected 1x1: load "
                            "images at the domain's encoder input")
    return x.flatten(1)


class SharedWeightsHypernet(nn.Module):
    """The shared head: code z `[B, z]` -> a `[B, channels, channels, k, k]` kernel through a
    `[channels, z]` matrix per image: `((z w2 + b2) w1 + b1)`."""

    def __init__(self, kernel: int = 3, channels: int = 512, z_dim: int = WIDTH):
        super().__init__()
        self.kernel, self.channels, self.z_dim = kernel, channels, z_dim
        # Official initialisation: N(0, 1/40^2), folded into (-2, 2).
        self.w1 = nn.Parameter(torch.fmod(torch.randn(z_dim, channels * kernel * kernel) / 40, 2))
        self.b1 = nn.Parameter(torch.fmod(torch.randn(channels * kernel * kernel) / 40, 2))
        self.w2 = nn.Parameter(torch.fmod(torch.randn(z_dim, channels * z_dim) / 40, 2))
        self.b2 = nn.Parameter(torch.fmod(torch.randn(channels * z_dim) / 40, 2))

    def forward(self, z: Tensor, count: Tensor | float = 1.0) -> Tensor:
        """The kernels of `count` passes whose codes sum to `z` (`count` a number or `[B]`)."""
        count = as_counts(count, z)
        hidden = (z @ self.w2 + count * self.b2).view(len(z), self.channels, self.z_dim)
        kernels = hidden @ self.w1 + count[:, :, None] * self.b1
        # The official view: the [in, out*k*k] product read as [out, in, k, k].
        return kernels.view(len(z), self.channels, self.channels, self.kernel, self.kernel)


class HyperRefinementBlock(nn.Module):
    """A shared-head layer's block: convs to a 1x1 map, an EqualLinear, and the shared head."""

    def __init__(self, hypernet: SharedWeightsHypernet, in_channels: int = 512, inner: int = SHARED_INNER,
                 width: int = WIDTH, spatial: int = SPATIAL):
        super().__init__()
        self.convs = head_convs(in_channels, inner, width, first_stride=1, count=int(math.log2(spatial)) + 1)
        self.linear = EqualLinear(width, width)
        self.hypernet = hypernet  # registered under every block, as officially: its keys repeat

    def code(self, features: Tensor) -> Tensor:
        return self.linear(one_by_one(self.convs(features)))

    def offsets(self, code: Tensor, count: Tensor | float = 1.0) -> Tensor:
        return self.hypernet(code, count)


class RefinementBlock(nn.Module):
    """A layer's own block: convs, then a 1x1 conv to one offset per (out, in) pair (per weight for a toRGB),
    read from the average of the map (a toRGB's block reads a 1x1 map, unpooled)."""

    def __init__(self, shape: LayerShape, in_channels: int = 512, inner: int = REFINEMENT_INNER, width: int = WIDTH,
                 spatial: int = SPATIAL):
        super().__init__()
        self.shape = shape
        pools = int(math.log2(spatial)) - 1 - (shape.kernel == 3)
        self.convs = head_convs(in_channels, inner, width, first_stride=2, count=pools + 1)
        values = shape.in_channels * shape.out_channels
        conv = nn.Conv2d(width, values, kernel_size=1)
        # Never called as a whole (`code` pools, `offsets` applies the conv as a matrix to summed codes); the
        # Sequential gives the official key names, `output.0` or `output.1`.
        self.output = nn.Sequential(conv) if shape.to_rgb else nn.Sequential(nn.AdaptiveAvgPool2d(1), conv)

    def code(self, features: Tensor) -> Tensor:
        x = self.convs(features)
        return one_by_one(x) if self.shape.to_rgb else x.mean(dim=(2, 3))

    def offsets(self, code: Tensor, count: Tensor | float = 1.0) -> Tensor:
        conv = self.output[-1]
        values = code @ conv.weight.flatten(1).t() + as_counts(count, code) * conv.bias
        shape = self.shape
        if shape.to_rgb:
            return values.view(-1, shape.out_channels, shape.in_channels, shape.kernel, shape.kernel)
        pairs = values.view(-1, shape.out_channels, shape.in_channels, 1, 1)
        return pairs.expand(-1, -1, -1, shape.kernel, shape.kernel)


class SharedWeightsHyperNetResNet(ResNet34Backbone):
    """`conv1`, `bn1`, `relu`, `body.0-15`, `shared_weight_hypernet`, `refinement_blocks.{i}` for each tuned
    layer i (the others hold no module, as officially).

    `forward` gives each tuned layer's code, `[B, n_tuned, width]`; `offsets(codes, count)` the offsets of
    each tuned layer, by layer index.
    """

    def __init__(self, layers: Sequence[LayerShape], tuned: Sequence[int] | None = None, input_nc: int = INPUT_NC,
                 stage_depths: tuple[int, ...] = STAGE_WIDTHS, width: int = WIDTH,
                 refinement_inner: int = REFINEMENT_INNER, shared_inner: int = SHARED_INNER):
        super().__init__(input_nc, stage_depths)
        self.layers = tuple(layers)
        # Indices past the generator's layers are ignored, as officially: its default list names 23 and 24,
        # which a 512 px generator (23 layers) does not have.
        requested = sorted(set(default_tuned(layers) if tuned is None else tuned))
        self.tuned = tuple(index for index in requested if index < len(layers))
        if not self.tuned or requested[0] < 0:
            raise ValueError(f"layers to tune must be among 0..{len(layers) - 1}, got {requested}")
        self.width = width
        shared_shape = layers[SHARED_LAYERS[0]]
        self.shared = tuple(i for i in SHARED_LAYERS if i < len(layers) and layers[i] == shared_shape)
        features = stage_depths[3]
        self.shared_weight_hypernet = SharedWeightsHypernet(shared_shape.kernel, shared_shape.out_channels, width)
        self.refinement_blocks = nn.ModuleList(
            None if index not in self.tuned
            else HyperRefinementBlock(self.shared_weight_hypernet, features, shared_inner, width) if index in self.shared
            else RefinementBlock(layers[index], features, refinement_inner, width)
            for index in range(len(layers)))

    def forward(self, x: Tensor) -> Tensor:
        """[B, 6, H, W] (image, reconstruction) -> this pass's codes, `[B, n_tuned, width]`."""
        features = self.features(x)
        return torch.stack([self.refinement_blocks[index].code(features) for index in self.tuned], dim=1)

    def offsets(self, codes: Tensor, count: Tensor | float = 1.0) -> dict[int, Tensor]:
        """The offsets of `count` passes whose codes sum to `codes`, `{layer index: [B, out, in, k, k]}`."""
        return {index: self.refinement_blocks[index].offsets(codes[:, slot], count)
                for slot, index in enumerate(self.tuned)}

    def extra_repr(self) -> str:
        return f"tuned={list(self.tuned)}, shared={list(self.shared)}, width={self.width}"


def hypernet_config(state_dict: dict[str, Tensor]) -> dict:
    """The tuned layers (those with a block) and the heads' widths of the hypernetwork that owns `state_dict`
    (keys without `hypernet.`); the backbone's are read as a ResNet-34 encoder's."""
    tuned = sorted({int(key.split(".")[1]) for key in state_dict if key.startswith("refinement_blocks.")})
    if not tuned:
        raise ValueError("no refinement_blocks.* keys")
    shared = [i for i in tuned if f"refinement_blocks.{i}.hypernet.w1" in state_dict]
    own = [i for i in tuned if i not in shared]
    try:
        config = dict(tuned=tuned, width=state_dict["shared_weight_hypernet.w1"].shape[0])
        if own:
            config["refinement_inner"] = state_dict[f"refinement_blocks.{own[0]}.convs.0.weight"].shape[0]
        if shared:
            config["shared_inner"] = state_dict[f"refinement_blocks.{shared[0]}.convs.0.weight"].shape[0]
    except KeyError as err:
        raise ValueError(f"missing {err.args[0]!r}") from None
    return config
