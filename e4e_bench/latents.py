"""Codes on disk: reading W / W+ `.npy` files for a generator, writing them, decoding them to PNGs,
and the per-image decoder state of an inversion (`OUT/state/<stem>.pt` of `invert`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from e4e_bench.checkpoints import read_checkpoint, save_checkpoint
from e4e_bench.data import save_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
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


def write_state(folder: Path, names: list[str], state: dict[str, torch.Tensor]) -> None:
    """Per-image decoder state as `folder/<name>.pt`, each `{"state": {key: [1, ...]}}`; nothing for an empty state.
    Each row is copied out of the batch: a saved view would carry the whole batch's storage into every file."""
    for i, name in enumerate(names):
        if state:
            save_checkpoint({"state": {key: value[i : i + 1].detach().cpu().clone() for key, value in state.items()}},
                            folder / f"{name}.pt")


def read_state(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """The decoder state `write_state` kept for `names`, stacked per key `[len(names), ...]`; {} when
    the inversion kept none (no `folder`)."""
    if not folder.is_dir():
        return {}
    states = []
    for name in names:
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise E4EBenchError(f"{path} does not exist: {folder} must hold one file per code, as `invert` writes it")
        stored = read_checkpoint(path).get("state")
        if not isinstance(stored, dict) or not all(isinstance(v, torch.Tensor) and len(v) == 1 for v in stored.values()):
            raise E4EBenchError(f"{path}: not the decoder state of one image (a {{'state': {{key: [1, ...]}}}} file)")
        if states and set(stored) != set(states[0]):
            raise E4EBenchError(f"{path} holds {', '.join(sorted(stored))} but {folder / names[0]}.pt holds "
                                f"{', '.join(sorted(states[0]))}; the folder mixes two inversions")
        states.append(stored)
    return {key: torch.cat([s[key] for s in states]) for key in states[0]}


def decode_to_files(decode: Callable[[int, int], torch.Tensor], count: int, out: Path, batch_size: int = 8) -> list[Path]:
    """`out/00000.png ...` of `count` codes at full generator resolution, uncropped; `decode(start, stop)`
    gives the frames of codes start..stop."""
    paths = [out / f"{i:05d}.png" for i in range(count)]
    with torch.inference_mode():
        for start in tqdm(range(0, count, batch_size), desc="decode", unit="batch"):
            stop = min(start + batch_size, count)
            save_images(decode(start, stop), paths[start:stop])
    return paths


def generator_batches(generator: Generator, codes: torch.Tensor, noise: str = "const", seed: int = 0):
    """`decode(start, stop)`: frames of `codes[start:stop]` by a bare generator, `noise` a mode (`seed` drives random)."""
    rng = torch.Generator(generator.device).manual_seed(seed)
    return lambda start, stop: generator(codes[start:stop].to(generator.device), noise=noise, rng=rng)
