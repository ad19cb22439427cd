"""InterFaceGAN directions: a hyperplane normal in W, added to the codes as w + S*n.

e4e ships `age.pt` and `smile.pt` as `[1, 512]` (one vector for every W+ row) and `pose.pt` as
`[1, 18, 512]` (one vector per row); InterFaceGAN itself ships `.npy` boundaries `[1, 512]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from e4e_bench.checkpoints import read_tensor
from e4e_bench.errors import E4EBenchError


def read_boundary(path: Path) -> torch.Tensor:
    """The raw array stored in an InterFaceGAN boundary file (`.npy`, or a torch file holding one tensor)."""
    if not path.is_file():
        raise E4EBenchError(f"InterFaceGAN direction file {path} does not exist; pass an existing .pt or .npy file")
    if path.suffix != ".npy":
        return read_tensor(path).float()
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False)).float()
    except (OSError, ValueError) as err:
        raise E4EBenchError(f"{path} is not a readable .npy array ({err}); re-save the direction with numpy.save") from None


def boundary_offset(boundary: torch.Tensor, n_latent: int, style_dim: int, source: Path) -> torch.Tensor:
    """The per-row step `[n_latent, style_dim]` of a boundary shaped `[D]`, `[1, D]`, `[n, D]` or `[1, n, D]`."""
    rows = boundary.squeeze(0) if boundary.dim() in (2, 3) and boundary.shape[0] == 1 else boundary
    if rows.dim() == 1:
        rows = rows.unsqueeze(0)
    if rows.dim() != 2 or rows.shape[-1] != style_dim or rows.shape[0] not in (1, n_latent):
        raise E4EBenchError(
            f"InterFaceGAN direction {source} has shape {list(boundary.shape)}; this generator needs "
            f"[1, {style_dim}] or [1, {n_latent}, {style_dim}]"
        )
    return rows.expand(n_latent, style_dim).clone()
