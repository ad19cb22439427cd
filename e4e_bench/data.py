"""Image folders in, image files out.

Reading follows the official e4e/pSp transforms on PIL images (bilinear Resize, ToTensor,
Normalize(0.5, 0.5)), so encoders see the same tensors as in the official scripts. A file that
cannot be read is reported by name, skipped and counted; it never stops a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import atomic_write

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)  # what an unreadable file raises


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder (not recursive), sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise E4EBenchError(f"image folder {folder} does not exist or is not a folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise E4EBenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def read_rgb(path: Path) -> Image.Image:
    """Decode an image fully and convert it to RGB (with a warning when it was not RGB)."""
    with Image.open(path) as image:
        image.load()
        if image.mode != "RGB":
            log.warning("%s: converting %s image to RGB", path, image.mode)
            return image.convert("RGB")
        return image.copy()


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 RGB -> float [3, H, W] in [-1, 1], computed as ToTensor + Normalize(0.5, 0.5)."""
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    return (x - 0.5) / 0.5


@dataclass
class LoadedImages:
    images: torch.Tensor  # [N, 3, H, W] in [-1, 1]
    paths: list[Path]  # the files behind each row
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) of skipped files


def load_images(paths: Sequence[Path], size: tuple[int, int]) -> LoadedImages:
    """Read files and resize them to (H, W) with PIL bilinear; unreadable files are skipped."""
    tensors, kept, failed = [], [], []
    height, width = size
    for path in paths:
        try:
            image = read_rgb(path)
        except READ_ERRORS as err:
            log.warning("skipping %s: cannot read image (%s)", path, err)
            failed.append((path, str(err)))
            continue
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        tensors.append(pil_to_tensor(image))
        kept.append(path)
    images = torch.stack(tensors) if tensors else torch.empty(0, 3, height, width)
    return LoadedImages(images, kept, failed)


def readable_images(paths: Sequence[Path]) -> tuple[list[Path], dict[str, str]]:
    """The files that decode, and file name -> reason for those that do not, named in one warning: a run
    sets them aside once rather than have each stage that loads the folder warn again. None readable is an error."""
    readable, unreadable = [], {}
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
            readable.append(path)
        except READ_ERRORS as err:
            unreadable[path.name] = str(err)
    if unreadable:
        folder = Path(paths[0]).parent
        if not readable:
            raise E4EBenchError(f"none of the {len(paths)} images in {folder} can be read, e.g. {paths[0].name}: "
                                f"{unreadable[paths[0].name]}")
        log.warning("%d of %d images in %s cannot be read and are left out: %s", len(unreadable), len(paths), folder,
                    some_of([f"{name} ({reason})" for name, reason in unreadable.items()]))
    return readable, unreadable


def by_stem(paths: Sequence[Path]) -> dict[str, Path]:
    """Files by name without extension, which names their outputs and pairs them; two files with one
    stem (``a.png`` and ``a.jpg``) would be mixed up, so they are an error naming both."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise E4EBenchError(f"{found[path.stem]} and {path} have the same name without extension, which names "
                                "outputs and pairs images; rename or remove one of them")
        found[path.stem] = path
    return found


def some_of(names: Sequence[str], shown: int = 5) -> str:
    """The first `shown` names and how many more there are, for messages about many files."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


FAR_FROM_ASPECT = 0.25  # e4e/pSp and the metrics stretch anything; beyond 25% wider or taller, say so


def off_aspect(paths: Sequence[Path], size: tuple[int, int], tolerance: float) -> list[str]:
    """``name (HxW)`` of the images more than `tolerance` wider or taller than the (H, W) frame; reads headers only."""
    height, width = size
    wrong = []
    for path in paths:
        try:
            with Image.open(path) as image:
                w, h = image.size
        except (OSError, UnidentifiedImageError, ValueError):
            continue  # reported and skipped when the image is loaded
        ratio = (w / h) / (width / height)
        if max(ratio, 1 / ratio) > 1 + tolerance:
            wrong.append(f"{path.name} ({h}x{w})")
    return wrong


def check_aspect(paths: Sequence[Path], size: tuple[int, int], tolerance: float = 0.01) -> None:
    """Refuse, before any work, images whose aspect ratio is not that of (H, W): they belong to another domain."""
    wrong = off_aspect(paths, size, tolerance)
    if wrong:
        height, width = size
        raise E4EBenchError(
            f"{some_of(wrong)} in {Path(paths[0]).parent} do not have the aspect ratio of this domain's {height}x{width} "
            "frame (sizes are H x W); crop them to the domain's frame or pick the right --domain"
        )


def warn_stretched(paths: Sequence[Path], size: tuple[int, int]) -> None:
    """One warning naming the images far from the (H, W) frame's aspect ratio, which resizing will stretch."""
    far = off_aspect(paths, size, FAR_FROM_ASPECT)
    if far:
        height, width = size
        log.warning("%d of %d images in %s are far from the aspect ratio of the %dx%d frame (H x W) and are stretched "
                    "to it, as the official pipelines do: %s", len(far), len(paths), Path(paths[0]).parent, height,
                    width, some_of(far))


def from_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1], the inverse of `to_uint8` on its grid: x / 127.5 - 1."""
    return pixels.float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8, as clamp(-1, 1) -> (x + 1) * 127.5 -> round."""
    return ((images.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_images(images: torch.Tensor, paths: Sequence[Path]) -> None:
    """Write [-1, 1] images as PNGs, each atomically."""
    pixels = to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
    for array, path in zip(pixels, paths, strict=True):
        with atomic_write(path) as stream:
            Image.fromarray(array).save(stream, format="PNG")


class ImageFolder(torch.utils.data.Dataset):
    """Images of a folder at a fixed (H, W), for training loops; unreadable files are dropped up front."""

    def __init__(self, paths: Sequence[Path], size: tuple[int, int]):
        self.size = size
        self.paths = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    image.verify()
                self.paths.append(path)
            except (OSError, UnidentifiedImageError, ValueError) as err:
                log.warning("skipping %s: cannot read image (%s)", path, err)
        if not self.paths:
            folder = Path(paths[0]).parent if paths else "the data folder"
            raise E4EBenchError(f"none of the images in {folder} can be read")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        loaded = load_images([path], self.size)
        if loaded.failed:
            raise E4EBenchError(f"{path}: {loaded.failed[0][1]}")
        return loaded.images[0]
