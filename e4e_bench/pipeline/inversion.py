"""Inverting a folder of images with any method: codes, reconstructions, per-image decoder state,
batches kept for --resume, and the record that lets `generate`/`edit` decode it again.

An inversion folder holds `latents.npy`, `names.txt`, `images/<stem>.png`, `state/<stem>.pt`
(the method's per-image decoder state, when it keeps one on disk), `inversion.json` (the method,
its weights, options and fingerprint) and, when the caller did more with each batch while it was
in memory (a run's edits and LEC), `batch_results.pt` with those per-image values. While it runs,
each finished batch is saved in `.parts/NNNNNN.pt` with the files it covers and the fingerprint of
the method that inverted it; a resumed inversion reuses a part only when both match, and a
finished one only when its fingerprint does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from e4e_bench.checkpoints import load_file, save_checkpoint
from e4e_bench.data import load_images, save_images
from e4e_bench.domains import Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import write_text
from e4e_bench.latents import read_codes, read_state, write_codes, write_state
from e4e_bench.methods import Inversion, InversionMethod, build_method, images_for
from e4e_bench.pipeline.fingerprint import check_fingerprint, method_fingerprint
from e4e_bench.throughput.timing import Stopwatch

log = logging.getLogger(__name__)

PARTS = ".parts"
STATE = "state"
RECORD = "inversion.json"
BATCH_RESULTS = "batch_results.pt"
OUTPUTS = ("latents.npy", "names.txt", "images", STATE, RECORD, BATCH_RESULTS, PARTS)  # everything `invert_folder` writes into OUT
AFRESH = "rerun without --resume to start afresh, or write to another --out folder"
OnBatch = Callable[[list[str], Inversion], dict[str, torch.Tensor]]  # (stems, inversion) -> per-image values
MIN_TIMED_BATCHES = 2  # after the warm-up batch


@dataclass
class Inverted:
    """A folder's inversion: names and codes in memory, the decoder state on disk (`state_dir`)."""

    names: list[str]  # file stems, sorted file-name order
    codes: torch.Tensor  # [N, n_latent, style_dim], on the CPU
    state_dir: Path | None = None  # where `state/<stem>.pt` live (None: no state, or in-memory only)
    timings: list[tuple[int, float]] = field(default_factory=list)  # (images, synchronised seconds) per batch
    files: list[str] = field(default_factory=list)  # the image files inverted (unreadable ones included)
    batch_results: dict[str, torch.Tensor] | None = None  # the `on_batch` values in image order (None: no on_batch)

    def inversion(self, start: int = 0, stop: int | None = None) -> Inversion:
        """Codes and decoder state of images start..stop, on the CPU."""
        names = self.names[start:stop]
        state = read_state(self.state_dir, names) if self.state_dir is not None else {}
        return Inversion(self.codes[start:stop], state)

    def timing(self) -> tuple[float, float, int]:
        """(median, median absolute deviation) of the seconds per image of the timed batches, and their
        count: every batch but the first, which is left out as warm-up. NaNs when fewer than
        `MIN_TIMED_BATCHES` batches are timed: one batch says nothing about the spread."""
        per_image = torch.tensor([seconds / count for count, seconds in self.timings[1:] if count], dtype=torch.float64)
        if len(per_image) < MIN_TIMED_BATCHES:
            return math.nan, math.nan, len(per_image)
        median = per_image.quantile(0.5)  # the mean of the middle two for an even count, unlike Tensor.median
        return float(median), float((per_image - median).abs().quantile(0.5)), len(per_image)


def check_parts(parts: Path, fingerprint: dict[str, str]) -> None:
    """Before any work: every kept part must come from the set-up `fingerprint` describes."""
    for part in sorted(parts.glob("*.pt")):
        check_fingerprint(load_file(part).get("fingerprint", {}), fingerprint, part, AFRESH)


def claim_output(out: Path, resume: bool, overwrite: bool, fingerprint: dict[str, str]) -> None:
    """An output folder holds one inversion: an earlier one is continued (`resume`: only one made by
    the same set-up, finished or not), removed (`overwrite`: only the files an inversion writes),
    or refused, never mixed with a new one."""
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if not earlier:
        return
    if resume:
        if (out / RECORD).is_file():
            check_fingerprint(read_record(out)["fingerprint"], fingerprint, out / RECORD, AFRESH)
        elif (out / "latents.npy").exists():
            raise E4EBenchError(f"{out} holds an inversion without its {RECORD}, so it cannot be told whether it "
                                f"came from this set-up; {AFRESH}")
        check_parts(out / PARTS, fingerprint)
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


def finished_inversion(out: Path, files: list[str], with_results: bool) -> Inverted | None:
    """The finished inversion in `out` (its set-up already checked by `claim_output`), which must be
    of the same image files: a folder that has changed since is refused, not half reused. One
    without the batch results asked for (`with_results`) is not finished for this caller."""
    if not (out / RECORD).is_file() or not (out / "latents.npy").is_file():
        return None
    if with_results and not (out / BATCH_RESULTS).is_file():
        return None
    record = read_record(out)
    if record.get("files") != files:
        raise E4EBenchError(f"{out} holds a finished inversion of other images ({len(record.get('files') or [])} files, "
                            f"this folder has {len(files)}); {AFRESH}")
    codes = torch.from_numpy(np.load(out / "latents.npy"))
    names = (out / "names.txt").read_text().splitlines()
    results = load_file(out / BATCH_RESULTS) if with_results else None
    return Inverted(names, codes, out / STATE, [tuple(t) for t in record.get("timings", [])], files, results)


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
    on_batch: OnBatch | None = None,
) -> Inverted:
    """Invert every image of a folder in batches into `out` (reconstructions, decoder state, kept parts);
    an earlier inversion in `out` is continued with `resume` (a finished one is returned as it is),
    replaced with `overwrite`, else refused. `on_batch(stems, inversion)` does the caller's work on
    each batch while its transient state is in memory; its per-image values are kept with the batch.

    `shard=(rank, world_size)` inverts only every world_size-th batch, from `rank` on (the ranks of
    a torchrun job share the work); the result then holds that share. Calling again with
    `resume=True` and no shard gathers every rank's kept parts without recomputing them.
    """
    rank, world_size = shard
    paths = images_for(method, images_dir)
    fingerprint = method_fingerprint(method, domain)
    claim_output(out, resume, overwrite, fingerprint)
    if resume and (done := finished_inversion(out, [p.name for p in paths], on_batch is not None)) is not None:
        return done  # on every rank of a torchrun job, so that none redoes its share
    parts = out / PARTS
    names, codes, timings, results, failed = [], [], [], [], 0
    batches = range(0, len(paths), batch_size)
    for index, start in enumerate(tqdm(batches, desc=f"invert {method.name}", unit="batch", disable=not progress)):
        if index % world_size != rank:
            continue
        batch_paths = paths[start : start + batch_size]
        files = [p.name for p in batch_paths]
        part = parts / f"{index:06d}.pt"
        done = kept_part(part, files) if resume else None
        if done is not None and (on_batch is None or "results" in done):
            names += done["names"]
            codes.append(done["codes"])
            results.append(done.get("results", {}))
            timings.append((len(done["names"]), done["seconds"]))
            failed += len(batch_paths) - len(done["names"])
            continue
        loaded = load_images(batch_paths, method.input_size)
        failed += len(loaded.failed)
        if not loaded.paths:
            continue
        images = loaded.images.to(method.generator.device)
        with Stopwatch(images.device) as watch:
            inversion = method.invert(images)
        check_codes(method, inversion, loaded.paths)
        with torch.inference_mode():
            reconstructions = domain.crop(method.decode(inversion))
        stems = [p.stem for p in loaded.paths]
        save_images(reconstructions, [out / "images" / f"{stem}.png" for stem in stems])
        write_state(out / STATE, stems, inversion.state)
        batch_results = {k: v.cpu() for k, v in on_batch(stems, inversion).items()} if on_batch is not None else {}
        batch_codes = inversion.detached().codes
        save_checkpoint({"files": files, "names": stems, "codes": batch_codes, "fingerprint": fingerprint,
                         "seconds": watch.seconds} | ({"results": batch_results} if on_batch is not None else {}), part)
        names += stems
        codes.append(batch_codes)
        timings.append((len(stems), watch.seconds))
        results.append(batch_results)
    if failed:
        log.warning("%d of %d images in %s could not be read and were skipped", failed, len(paths), images_dir)
    if not names and world_size == 1:
        raise E4EBenchError(f"none of the images in {images_dir} could be read")
    joined = None
    if on_batch is not None:
        joined = {key: torch.cat([batch[key] for batch in results]) for key in (results[0] if results else {})}
    return Inverted(names, torch.cat(codes) if codes else torch.empty(0), out / STATE, timings,
                    [p.name for p in paths], joined)


def check_codes(method: InversionMethod, inversion: Inversion, paths: list[Path]) -> None:
    """A method's codes for the images `paths` must have the generator's shape and be finite."""
    expected = (len(paths), method.generator.n_latent, method.generator.style_dim)
    if tuple(inversion.codes.shape) != expected:
        raise E4EBenchError(f"{method.name} returned codes of shape {list(inversion.codes.shape)} for a batch of "
                            f"{len(paths)}; expected {list(expected)}")
    if not torch.isfinite(inversion.codes).all():
        raise E4EBenchError(f"{method.name} produced NaN codes for {', '.join(p.name for p in paths)}")


def inverted_batches(method: InversionMethod, paths: list[Path], batch_size: int,
                     progress: bool = True) -> Iterator[tuple[list[str], Inversion]]:
    """Names and inversion of each batch of image files, in memory with its transient state (nothing
    written); unreadable files are skipped."""
    readable = 0
    for start in tqdm(range(0, len(paths), batch_size), desc=f"invert {method.name}", unit="batch", disable=not progress):
        loaded = load_images(paths[start : start + batch_size], method.input_size)
        if loaded.paths:
            readable += len(loaded.paths)
            yield [p.stem for p in loaded.paths], method.invert(loaded.images.to(method.generator.device))
    if not readable:
        raise E4EBenchError(f"none of the {len(paths)} images could be read, e.g. {paths[0]}")


def write_inversion(result: Inverted, method: InversionMethod, domain: Domain, out: Path) -> None:
    """`out/latents.npy`, `out/names.txt` and `out/inversion.json`; the kept parts are no longer needed."""
    write_codes(result.codes, out / "latents.npy")
    write_text(out / "names.txt", "".join(f"{name}\n" for name in result.names))
    source = method.source
    record = {
        "method": method.name,
        "domain": domain.name,
        "checkpoint": None if source.checkpoint is None else str(Path(source.checkpoint).resolve()),
        "generator": None if source.generator is None else str(Path(source.generator).resolve()),
        "random_seed": source.random_seed,
        "options": dataclasses.asdict(method.options),
        "fingerprint": method_fingerprint(method, domain),
        "timings": result.timings,
        "files": result.files,
    }
    if result.batch_results is not None:
        save_checkpoint(result.batch_results, out / BATCH_RESULTS)
    write_text(out / RECORD, json.dumps(record, indent=2, default=str) + "\n")
    shutil.rmtree(out / PARTS, ignore_errors=True)


def read_record(folder: Path) -> dict:
    path = folder / RECORD
    if not path.is_file():
        raise E4EBenchError(f"{folder} holds no {RECORD}: give the --out folder of `invert` (or a run's methods/<method>/)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise E4EBenchError(f"{path}: not valid JSON ({err})") from None


def rebuild_method(folder: Path, device: torch.device) -> InversionMethod:
    """The method that made the inversion in `folder`, built again from its record (same files, options)."""
    record = read_record(folder)
    random_seed = record["random_seed"]
    domain = get_domain(record["domain"])
    method = build_method(
        record["method"], domain=domain, device=device, options=record["options"],
        checkpoint=None if record["checkpoint"] is None else Path(record["checkpoint"]),
        generator=None if record["generator"] is None else Path(record["generator"]),
        random_weights=random_seed is not None, seed=random_seed or 0)
    # the files at the recorded paths must still be the ones the inversion was made with
    check_fingerprint(record["fingerprint"], method_fingerprint(method, domain), folder / RECORD,
                      "invert the images again with the files you have now")
    return method


def read_inversion(folder: Path, method: InversionMethod, latents: Path | None = None) -> tuple[list[str], Inversion]:
    """The names and inversion stored in `folder`; `latents` replaces its codes (e.g. edited ones,
    one row per name, in the order of its names.txt)."""
    names = (folder / "names.txt").read_text().splitlines() if (folder / "names.txt").is_file() else []
    codes = method.generator.to_wplus(read_codes(latents or folder / "latents.npy", method.generator))
    if len(codes) != len(names):
        raise E4EBenchError(f"{latents or folder / 'latents.npy'} has {len(codes)} codes but {folder / 'names.txt'} "
                            f"names {len(names)} images; use codes of the same inversion, one row per image")
    return names, Inversion(codes, read_state(folder / STATE, names))


def inversion_decoder(folder: Path, device: torch.device, latents: Path | None = None,
                      ) -> tuple[InversionMethod, Inversion]:
    """The method and stored inversion of `folder` (codes from `latents` if given), for decoding again."""
    method = rebuild_method(folder, device)
    return method, read_inversion(folder, method, latents)[1]


def decode_batches(method: InversionMethod, inversion: Inversion, codes: torch.Tensor):
    """`decode(start, stop)`: frames of `codes[start:stop]`, each decoded with its image's own state."""
    device = method.generator.device
    return lambda start, stop: method.decode(inversion[start:stop].to(device), codes[start:stop].to(device))
