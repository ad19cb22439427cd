"""Test images and contexts shared by the metric tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from e4e_bench.metrics import MetricContext


def smooth_images(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """[-1,1] images with structure at several scales (upsampled noise plus fine noise)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(height // 8, 2), max(width // 8, 2), generator=generator)
    images = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    images = images + 0.1 * torch.randn(count, 3, height, width, generator=generator)
    return (images * 2 - 1).clamp(-1, 1)


def distort(images: torch.Tensor, amount: float, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (images + amount * torch.randn(images.shape, generator=generator)).clamp(-1, 1)


def random_context(**fields) -> MetricContext:
    """CPU, random network weights, no cache."""
    return MetricContext(**({"pretrained": False} | fields))
