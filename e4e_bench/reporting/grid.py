"""Image grids for samples and qualitative figures."""

from __future__ import annotations

import torch


def image_grid(images: torch.Tensor, columns: int) -> torch.Tensor:
    """`[N, C, H, W]` -> one `[C, rows * H, columns * W]` image, row-major; missing cells are black (-1)."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    cells = torch.full((rows * columns, c, h, w), -1.0, dtype=images.dtype, device=images.device)
    cells[:n] = images
    return cells.view(rows, columns, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, rows * h, columns * w)
