"""Pixel and perceptual distortion between an image and its reconstruction: L2 and LPIPS."""

from __future__ import annotations

import functools

import torch

from e4e_bench.networks.lpips_net import BACKBONE_ASSETS, build_lpips
from e4e_bench.metrics.registry import MetricContext, register_metric

def mean_squared_error(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return (real - fake).square().flatten(1).mean(dim=1)


@register_metric(
    "l2",
    kind="paired",
    title="L2",
    unit="MSE of [-1, 1] RGB",
    in_run=True,
    per_step=True,
    protocol="per-pixel MSE of [-1,1] RGB images (4x the [0,1] MSE, as e4e/pSp report it)",
)
def build_l2(context: MetricContext):
    return mean_squared_error


class LpipsDistance:
    """Per-image LPIPS of a frozen ``lpips.LPIPS`` network on [-1,1] images, no resize."""

    def __init__(self, net: str, context: MetricContext):
        backbone_file = context.weights_file(BACKBONE_ASSETS[net]) if context.pretrained else None
        self.network = build_lpips(net, pretrained=context.pretrained, device=context.device, backbone_file=backbone_file)

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.network(real, fake).flatten()


# name: (backbone, its words, table title, scored by `run`); AlexNet is the papers' LPIPS
LPIPS_BACKBONES = {"lpips": ("alex", "AlexNet", "LPIPS", True), "lpips_vgg": ("vgg", "VGG-16", "LPIPS-VGG", False)}

for _name, (_net, _label, _title, _in_run) in LPIPS_BACKBONES.items():
    register_metric(
        _name,
        kind="paired",
        title=_title,
        unit="LPIPS distance",
        in_run=_in_run,
        protocol=f"LPIPS v0.1, {_label} backbone, lpips 0.1.4 linear heads, [-1,1] inputs not resized by LPIPS itself",
        assets=(BACKBONE_ASSETS[_net],),
    )(functools.partial(LpipsDistance, _net))
