"""Codes on disk: reading W / W+ `.npy` files for a generator, writing them, decoding them to PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from e4e_bench.data import save_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.generator import Generator
from e4e_bench.io import atomic_write


def read_codes(path: Path, generator: Generator) -> torch.Tensor:
    """W codes `[N, style_dim]` or W+ codes `[N, n_latent, style_dim]` of `generator`, float32 on the CPU."""
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise E4EBenchError(f"{path}: cannot read codes as a .npy array ({err})") from None
    if not isinstance(codes, np.ndarray):
        raise E4EBenchError(f"{path}: is a .npz archive; codes must be one .npy array")
    if codes.dtype.kind not in "fiu":  # strings, complex numbers, booleans, records
        raise E4EBenchError(f"{path}: codes are of type {codes.dtype}; expected real numbers (float32)")
    shape = codes.shape
    d, n = generator.style_dim, generator.n_latent
    if not (len(shape) == 2 and shape[1] == d) and not (len(shape) == 3 and shape[1:] == (n, d)):
        raise E4EBenchError(f"{path}: codes have shape {list(shape)}; this generator takes [N, {d}] (W) or [N, {n}, {d}] (W+)")
    if shape[0] == 0:
        raise E4EBenchError(f"{path}: holds no codes (shape {list(shape)})")
    if not np.isfinite(codes).all():
        raise E4EBenchError(f"{path}: codes contain NaN or infinite values")
    return torch.from_numpy(codes.astype(np.float32))


def write_codes(codes: torch.Tensor, path: Path) -> None:
    """Codes as a float32 .npy, written atomically."""
    with atomic_write(path) as stream:
        np.save(stream, codes.detach().cpu().numpy().astype(np.float32))


def decode_to_files(
    generator: Generator, codes: torch.Tensor, out: Path, noise: str = "const", seed: int = 0, batch_size: int = 8
) -> list[Path]:
    """Decode codes to `out/00000.png ...` at full generator resolution, uncropped; `seed` drives `noise="random"`."""
    device = generator.device
    rng = torch.Generator(device).manual_seed(seed)
    paths = [out / f"{i:05d}.png" for i in range(len(codes))]
    with torch.inference_mode():
        for start in tqdm(range(0, len(codes), batch_size), desc="generate", unit="batch"):
            batch = codes[start : start + batch_size].to(device)
            save_images(generator(batch, noise=noise, rng=rng), paths[start : start + batch_size])
    return paths
