"""Inverting a folder of images with any method: codes, reconstructions, and batches kept for --resume.

Each finished batch is saved in `OUT/.parts/NNNNNN.pt` with the files it covers and the
fingerprint of the method that inverted it; a resumed run reuses a part only when both match.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from e4e_bench.checkpoints import load_file, save_checkpoint
from e4e_bench.data import load_images, save_images
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.pipeline.fingerprint import check_fingerprint, method_fingerprint
from e4e_bench.io import write_text
from e4e_bench.latents import write_codes
from e4e_bench.methods import InversionMethod, images_for, invert_with_noise
from e4e_bench.throughput.timing import Stopwatch

log = logging.getLogger(__name__)

PARTS = ".parts"
OUTPUTS = ("latents.npy", "names.txt", "images", "noise", PARTS)  # everything `invert_folder` writes into OUT
AFRESH = "rerun without --resume to start afresh, or write to another --out folder"


@dataclass
class Inverted:
    names: list[str]  # file stems, sorted file-name order
    codes: torch.Tensor  # [N, n_latent, style_dim], on the CPU
    timings: list[tuple[int, float]] = field(default_factory=list)  # (images, synchronised seconds) per batch

    def seconds_per_image(self) -> float:
        """Inversion time per image, the first batch left out as warm-up when there are others."""
        timed = self.timings[1:] or self.timings
        images = sum(count for count, _ in timed)
        return sum(seconds for _, seconds in timed) / images if images else math.nan


def check_parts(parts: Path, fingerprint: dict[str, str]) -> None:
    """Before any work: every kept part must come from the set-up `fingerprint` describes."""
    for part in sorted(parts.glob("*.pt")):
        check_fingerprint(load_file(part).get("fingerprint", {}), fingerprint, part, AFRESH)


def claim_output(out: Path, resume: bool, overwrite: bool) -> None:
    """An output folder holds one inversion: an earlier one is continued (`resume`), removed
    (`overwrite`: only the files an inversion writes), or refused, never mixed with a new one."""
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if not earlier or resume:
        return
    if not overwrite:
        raise E4EBenchError(f"{out} holds an earlier inversion ({', '.join(earlier)}); pass --resume to continue it, "
                            "--overwrite to replace it, or choose another --out")
    for name in earlier:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def kept_part(part: Path, files: list[str]) -> dict | None:
    """The part's contents when it exists and covers exactly `files`."""
    if not part.is_file():
        return None
    done = load_file(part)
    return done if done["files"] == files else None


def invert_folder(
    method: InversionMethod,
    domain: Domain,
    images_dir: Path,
    out: Path,
    batch_size: int,
    resume: bool = False,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
) -> Inverted:
    """Invert every image of a folder in batches into `out` (reconstructions, noise maps, kept parts);
    an earlier inversion in `out` is continued with `resume`, replaced with `overwrite`, else refused.

    `shard=(rank, world_size)` inverts only every world_size-th batch, from `rank` on (the ranks of
    a torchrun job share the work); the result then holds that share. Calling again with
    `resume=True` and no shard gathers every rank's kept parts without recomputing them.
    """
    rank, world_size = shard
    paths = images_for(method, images_dir)
    claim_output(out, resume, overwrite)
    parts = out / PARTS
    fingerprint = method_fingerprint(method, domain)
    if resume:
        check_parts(parts, fingerprint)
    names, codes, timings, failed = [], [], [], 0
    batches = range(0, len(paths), batch_size)
    for index, start in enumerate(tqdm(batches, desc=f"invert {method.name}", unit="batch", disable=not progress)):
        if index % world_size != rank:
            continue
        batch_paths = paths[start : start + batch_size]
        files = [p.name for p in batch_paths]
        part = parts / f"{index:06d}.pt"
        done = kept_part(part, files) if resume else None
        if done is not None:
            names += done["names"]
            codes.append(done["codes"])
            timings.append((len(done["names"]), done["seconds"]))
            failed += len(batch_paths) - len(done["names"])
            continue
        loaded = load_images(batch_paths, method.input_size)
        failed += len(loaded.failed)
        if not loaded.paths:
            continue
        images = loaded.images.to(method.generator.device)
        with Stopwatch(images.device) as watch:
            batch_codes, noise = invert_with_noise(method, images)
        seconds = watch.seconds
        if not torch.isfinite(batch_codes).all():
            raise E4EBenchError(f"{method.name} produced NaN codes for {', '.join(p.name for p in loaded.paths)}")
        with torch.inference_mode():
            reconstructions = domain.crop(method.generator(batch_codes, noise=noise))
        stems = [p.stem for p in loaded.paths]
        save_images(reconstructions, [out / "images" / f"{stem}.png" for stem in stems])
        if not isinstance(noise, str):
            for i, stem in enumerate(stems):
                save_checkpoint({"noise": [n[i : i + 1].cpu() for n in noise]}, out / "noise" / f"{stem}.pt")
        batch_codes = batch_codes.detach().float().cpu()
        save_checkpoint({"files": files, "names": stems, "codes": batch_codes, "fingerprint": fingerprint,
                         "seconds": seconds}, part)
        names += stems
        codes.append(batch_codes)
        timings.append((len(stems), seconds))
    if failed:
        log.warning("%d of %d images in %s could not be read and were skipped", failed, len(paths), images_dir)
    if not names and world_size == 1:
        raise E4EBenchError(f"none of the images in {images_dir} could be read")
    return Inverted(names, torch.cat(codes) if codes else torch.empty(0), timings)


def invert_images(method: InversionMethod, paths: list[Path], batch_size: int, progress: bool = True) -> Inverted:
    """Codes of image files in memory, batch by batch (nothing written); unreadable files are skipped."""
    names, codes = [], []
    for start in tqdm(range(0, len(paths), batch_size), desc=f"invert {method.name}", unit="batch", disable=not progress):
        loaded = load_images(paths[start : start + batch_size], method.input_size)
        if loaded.paths:
            names += [p.stem for p in loaded.paths]
            codes.append(method.invert(loaded.images.to(method.generator.device)).float().cpu())
    if not names:
        raise E4EBenchError(f"none of the {len(paths)} images could be read, e.g. {paths[0]}")
    return Inverted(names, torch.cat(codes))


def write_inversion(result: Inverted, out: Path) -> None:
    """`out/latents.npy` and `out/names.txt`; the kept parts are no longer needed."""
    write_codes(result.codes, out / "latents.npy")
    write_text(out / "names.txt", "".join(f"{name}\n" for name in result.names))
    shutil.rmtree(out / PARTS, ignore_errors=True)
