"""pSp/e4e's fixed face box: where identity networks look on FFHQ-aligned faces (no detector)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FACE_BOX_256 = (35, 223, 32, 220)  # top, bottom, left, right at 256x256 (pSp/e4e criteria/id_loss.py)
ARCFACE_SIZE = 112


def face_box(images: torch.Tensor) -> torch.Tensor:
    """The face box of `[..., H, W]` images, scaled from 256x256 to their size."""
    height, width = images.shape[-2:]
    top, bottom, left, right = FACE_BOX_256
    return images[..., top * height // 256 : bottom * height // 256, left * width // 256 : right * width // 256]


def arcface_input(images: torch.Tensor) -> torch.Tensor:
    """The face box area-averaged to ArcFace's 112x112 input."""
    return F.adaptive_avg_pool2d(face_box(images), (ARCFACE_SIZE, ARCFACE_SIZE))
