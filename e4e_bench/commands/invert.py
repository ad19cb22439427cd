"""`invert`: images -> W+ codes and reconstructions, for any registered method."""

from __future__ import annotations

import argparse
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from e4e_bench.checkpoints import load_file, save_checkpoint
from e4e_bench.commands.generate import write_codes
from e4e_bench.commands.method_options import add_projector_options, positive_int, projector_options
from e4e_bench.data import load_images, save_images
from e4e_bench.devices import resolve_device
from e4e_bench.domains import DOMAINS, Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import METHODS, InversionMethod, build_method, images_for, invert_with_noise

log = logging.getLogger(__name__)

EXAMPLE = (
    "examples:\n"
    "  python -m e4e_bench invert --method e4e --checkpoint e4e_cars_encode.pt --domain cars --images cars/ --out inv/\n"
    "  python -m e4e_bench invert --method opt_w --generator stylegan2-car-config-f.pt --domain cars --images cars/ --out w/ --steps 200"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "invert",
        help="invert images with e4e, pSp, opt_w or opt_wplus",
        description="Writes OUT/latents.npy (float32 [N, n_latent, style_dim], the codes fed to the generator, "
        "latent_avg included, rows in sorted file-name order), OUT/names.txt and OUT/images/<stem>.png "
        "(reconstructions at full generator resolution, cropped to the domain).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_method_arguments(parser)
    parser.add_argument("--images", type=Path, required=True, help="folder of png/jpg/webp images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images inverted at once (default 8)")
    parser.add_argument("--resume", action="store_true", help="keep batches already inverted in OUT")
    parser.set_defaults(func=main)


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """--method, --domain, --checkpoint, --generator, --device and the projector options."""
    parser.add_argument("--method", required=True, choices=sorted(METHODS), help="inversion method")
    parser.add_argument("--domain", choices=sorted(DOMAINS), help="default: read from an e4e/pSp checkpoint")
    parser.add_argument("--checkpoint", type=Path, help="e4e/pSp checkpoint (brings its own decoder)")
    parser.add_argument("--generator", type=Path, help="generator checkpoint; overrides an encoder checkpoint's decoder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    add_projector_options(parser)


DATASET_DOMAINS = {"ffhq": "faces", "celeba": "faces", "car": "cars", "horse": "horse", "church": "church"}


def resolve_domain(args: argparse.Namespace) -> Domain:
    if args.domain is not None:
        return get_domain(args.domain)
    if args.checkpoint is not None:
        opts = load_file(args.checkpoint).get("opts", {})
        dataset = str(opts.get("dataset_type", ""))
        for key, domain in DATASET_DOMAINS.items():
            if key in dataset:
                return get_domain(domain)
    raise E4EBenchError("cannot tell the domain of these images; pass --domain (" + ", ".join(DOMAINS) + ")")


def method_from_args(args: argparse.Namespace, domain: Domain) -> InversionMethod:
    method = build_method(
        args.method,
        domain=domain,
        checkpoint=args.checkpoint,
        generator=args.generator,
        device=resolve_device(args.device),
        options=projector_options(args),
    )
    if method.generator.size != domain.resolution:
        raise E4EBenchError(
            f"the {args.method} generator makes {method.generator.size} px images but domain {domain.name!r} "
            f"needs {domain.resolution} px; pass the generator of that domain or the right --domain"
        )
    return method


@dataclass
class Inverted:
    names: list[str]
    codes: torch.Tensor  # [N, n_latent, style_dim], on the CPU


def invert_folder(
    method: InversionMethod, domain: Domain, images_dir: Path, out: Path, batch_size: int, resume: bool = False
) -> Inverted:
    """Invert every image of a folder in batches; each finished batch is kept in OUT/.parts for --resume."""
    paths = images_for(method, images_dir)
    parts = out / ".parts"
    if parts.exists() and not resume:
        for stale in parts.glob("*.pt"):
            stale.unlink()
    names, codes, failed = [], [], 0
    batches = range(0, len(paths), batch_size)
    for index, start in enumerate(tqdm(batches, desc=f"invert {method.name}", unit="batch")):
        batch_paths = paths[start : start + batch_size]
        part = parts / f"{index:06d}.pt"
        if resume and part.is_file():
            done = load_file(part)
            if done["files"] == [p.name for p in batch_paths]:
                names += done["names"]
                codes.append(done["codes"])
                failed += len(batch_paths) - len(done["names"])
                continue
        loaded = load_images(batch_paths, method.input_size)
        failed += len(loaded.failed)
        if not loaded.paths:
            continue
        batch_codes, noise = invert_with_noise(method, loaded.images.to(method.generator.device))
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
        save_checkpoint({"files": [p.name for p in batch_paths], "names": stems, "codes": batch_codes}, part)
        names += stems
        codes.append(batch_codes)
    if failed:
        log.warning("%d of %d images in %s could not be read and were skipped", failed, len(paths), images_dir)
    if not names:
        raise E4EBenchError(f"none of the images in {images_dir} could be read")
    return Inverted(names, torch.cat(codes))


def write_inversion(result: Inverted, out: Path) -> None:
    write_codes(result.codes, out / "latents.npy")
    (out / "names.txt").write_text("".join(f"{name}\n" for name in result.names))
    shutil.rmtree(out / ".parts", ignore_errors=True)


def main(args: argparse.Namespace) -> int:
    domain = resolve_domain(args)
    method = method_from_args(args, domain)
    result = invert_folder(method, domain, args.images, args.out, args.batch_size, args.resume)
    write_inversion(result, args.out)
    print(f"inverted {len(result.names)} images with {method.name}: {args.out / 'latents.npy'} {list(result.codes.shape)}")
    return 0
