"""`generate`: decode W or W+ codes with a generator checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from e4e_bench.checkpoints import load_generator
from e4e_bench.commands.method_options import positive_int
from e4e_bench.data import save_images
from e4e_bench.devices import resolve_device
from e4e_bench.errors import E4EBenchError
from e4e_bench.generator import NOISE_MODES, Generator

EXAMPLE = "example: python -m e4e_bench generate --generator stylegan2-car-config-f.pt --latents codes.npy --out images/"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="decode W / W+ codes to images",
        description="Decode codes [N, style_dim] (W) or [N, n_latent, style_dim] (W+) to DIR/00000.png ... "
        "at full generator resolution, uncropped.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--generator", type=Path, required=True, help="rosinality .pt or official e4e/pSp checkpoint")
    parser.add_argument("--latents", type=Path, required=True, help=".npy of codes")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--noise", choices=NOISE_MODES, default="const", help="const: the checkpoint's stored noise (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --noise random")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="codes decoded at once (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    parser.set_defaults(func=main)


def read_codes(path: Path, generator: Generator) -> torch.Tensor:
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise E4EBenchError(f"{path}: cannot read codes as a .npy array ({err})") from None
    shape = codes.shape
    d, n = generator.style_dim, generator.n_latent
    if not (len(shape) == 2 and shape[1] == d) and not (len(shape) == 3 and shape[1:] == (n, d)):
        raise E4EBenchError(f"{path}: codes have shape {list(shape)}; this generator takes [N, {d}] (W) or [N, {n}, {d}] (W+)")
    if not np.isfinite(codes).all():
        raise E4EBenchError(f"{path}: codes contain NaN or infinite values")
    return torch.from_numpy(codes.astype(np.float32))


def write_codes(codes: torch.Tensor, path: Path) -> None:
    """Codes as a float32 .npy, written under a temporary name, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, codes.detach().cpu().numpy().astype(np.float32))
    tmp.replace(path)


def decode_to_files(generator: Generator, codes: torch.Tensor, out: Path, noise: str, seed: int, batch_size: int) -> list[Path]:
    device = generator.device
    rng = torch.Generator(device).manual_seed(seed)
    paths = [out / f"{i:05d}.png" for i in range(len(codes))]
    with torch.inference_mode():
        for start in tqdm(range(0, len(codes), batch_size), desc="generate", unit="batch"):
            batch = codes[start : start + batch_size].to(device)
            save_images(generator(batch, noise=noise, rng=rng), paths[start : start + batch_size])
    return paths


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    generator, _ = load_generator(args.generator, device)
    codes = read_codes(args.latents, generator)
    paths = decode_to_files(generator, codes, args.out, args.noise, args.seed, args.batch_size)
    print(f"wrote {len(paths)} images to {args.out}")
    return 0
