"""Codes on disk: reading W / W+ `.npy` files for a generator, writing them, decoding them to PNGs,
and the noise maps a projection optimised (`OUT/noise/<stem>.pt` of `invert`) to decode them with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.data import save_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator, NoiseSpec
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


def read_noise(folder: Path, names: list[str], generator: Generator) -> list[torch.Tensor]:
    """The noise maps `folder/<name>.pt` ({"noise": [maps...]}, as `invert` writes them) of `names`,
    stacked per layer: `[len(names), 1, r, r]` for each of the generator's noise inputs."""
    shapes = [tuple(buffer.shape[1:]) for buffer in generator.noise_buffers()]
    maps = []
    for name in names:
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise E4EBenchError(f"{path} does not exist: the noise folder must hold one file per code, as `invert` writes it")
        stored = read_checkpoint(path).get("noise")
        if not isinstance(stored, list) or [tuple(m.shape[1:]) for m in stored] != shapes or any(len(m) != 1 for m in stored):
            raise E4EBenchError(f"{path}: not the noise maps of this generator ({len(shapes)} maps of shapes "
                                f"{', '.join('x'.join(map(str, s)) for s in shapes)}, one per file)")
        maps.append(stored)
    return [torch.cat(layer) for layer in zip(*maps)]


def inversion_noise(folder: Path, count: int, generator: Generator) -> list[torch.Tensor]:
    """The noise maps in the `noise/` folder of an inversion, in the row order of its codes: the
    order of `names.txt` beside the folder, which must name `count` images."""
    if not folder.is_dir():
        raise E4EBenchError(f"--noise {folder}: not a folder; give const, random, none or the noise/ folder of an inversion")
    names_file = folder.parent / "names.txt"
    if not names_file.is_file():
        raise E4EBenchError(f"--noise {folder}: no names.txt in {folder.parent}; give the noise/ folder of an `invert` output")
    names = names_file.read_text().splitlines()
    if len(names) != count:
        raise E4EBenchError(f"--noise {folder}: {names_file} names {len(names)} images but the codes have {count} rows; "
                            "use the latents.npy of the same inversion")
    return read_noise(folder, names, generator)


def noise_from(source: str | Path, count: int, generator: Generator) -> NoiseSpec:
    """What `--noise` names: a generator noise mode as it is, or an inversion's noise folder read for `count` codes."""
    return source if isinstance(source, str) else inversion_noise(source, count, generator)


def decode_to_files(
    generator: Generator, codes: torch.Tensor, out: Path, noise: NoiseSpec = "const", seed: int = 0, batch_size: int = 8
) -> list[Path]:
    """Decode codes to `out/00000.png ...` at full generator resolution, uncropped; `seed` drives `noise="random"`;
    `noise` may also be per-code maps (`[N, 1, r, r]` per layer, e.g. from `inversion_noise`)."""
    device = generator.device
    rng = torch.Generator(device).manual_seed(seed)
    paths = [out / f"{i:05d}.png" for i in range(len(codes))]
    with torch.inference_mode():
        for start in tqdm(range(0, len(codes), batch_size), desc="generate", unit="batch"):
            batch = codes[start : start + batch_size].to(device)
            maps = noise if isinstance(noise, str) else [n[start : start + batch_size].to(device) for n in noise]
            save_images(generator(batch, noise=maps, rng=rng), paths[start : start + batch_size])
    return paths
