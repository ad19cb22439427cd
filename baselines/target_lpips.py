"""LPIPS distance to fixed targets, with the targets' features computed once instead of at every step.

`lpips.LPIPS.forward` runs the backbone on both inputs; in a projection one side never changes, and
its forward pass is a quarter of the LPIPS cost of a step (the other side also runs backward).
The arithmetic is the package's: ScalingLayer, backbone taps, channel unit-normalisation (eps 1e-10),
squared difference, the 1x1 linear heads, spatial mean, sum over taps.
"""

import lpips as lpips_package
import torch
from torch import Tensor


class TargetLPIPS:
    """`distance(images) -> [B]` equals `net(images, targets).flatten()` for an `lpips.LPIPS` net."""

    def __init__(self, net: lpips_package.LPIPS, targets: Tensor):
        if not net.lpips or net.spatial or net.version != "0.1":
            raise ValueError("TargetLPIPS needs an LPIPS v0.1 net with linear heads and spatial=False")
        self.net = net
        with torch.no_grad():
            self.target_features = [lpips_package.normalize_tensor(f) for f in self._features(targets)]

    def _features(self, images: Tensor) -> list[Tensor]:
        return list(self.net.net(self.net.scaling_layer(images)))

    def __call__(self, images: Tensor) -> Tensor:
        distance = images.new_zeros(images.shape[0])
        for lin, feature, target in zip(self.net.lins, self._features(images), self.target_features):
            difference = (lpips_package.normalize_tensor(feature) - target) ** 2
            distance = distance + lin(difference).mean(dim=(1, 2, 3))
        return distance
