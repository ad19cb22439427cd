"""The projectors' noise-map prior: a multi-scale autocorrelation penalty and per-image renormalisation.

Both work per image (dims 1..3 of each `[B, 1, H, W]` map), unlike rosinality's projector, which
takes means over the whole batch and so couples the images optimised together.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

_PER_IMAGE = (1, 2, 3)


def noise_regularization(noises: list[Tensor]) -> Tensor:
    """Sum over maps and pyramid levels of the squared one-pixel autocorrelations along x and y -> `[B]`.

    Each map is average-pooled 2x2 after every level until a level of size <= 8 has been counted.
    """
    penalty = noises[0].new_zeros(noises[0].shape[0])
    for noise in noises:
        while True:
            penalty = penalty + (noise * noise.roll(1, dims=3)).mean(dim=_PER_IMAGE) ** 2
            penalty = penalty + (noise * noise.roll(1, dims=2)).mean(dim=_PER_IMAGE) ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return penalty


@torch.no_grad()
def normalize_noise_(noises: list[Tensor]) -> None:
    """In place: each image's map to zero mean and unit (unbiased) std."""
    for noise in noises:
        mean = noise.mean(dim=_PER_IMAGE, keepdim=True)
        std = noise.std(dim=_PER_IMAGE, keepdim=True)
        noise.sub_(mean).div_(std)
