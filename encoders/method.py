"""`e4e` and `psp` behind the `InversionMethod` interface: one encoder pass per batch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.generator import Generator
from encoders.checkpoint import ENCODER_CLASSES, MEAN_LATENT_SAMPLES, load_inverter
from encoders.inverter import Inverter


@dataclass
class EncoderMethod:
    """Inverts a batch with one forward pass of a trained e4e/pSp encoder (BatchNorm in eval mode)."""

    name: str
    inverter: Inverter
    input_size: tuple[int, int]  # (H, W) the images are loaded at: the domain's encoder input

    @property
    def generator(self) -> Generator:
        return self.inverter.decoder

    def invert(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> W+ codes [B, n_latent, style_dim] (latent_avg included)."""
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(f"{self.name} expects images of {self.input_size}, got {tuple(images.shape[-2:])}")
        device = self.inverter.decoder.device
        with torch.inference_mode():
            return self.inverter.codes(images.to(device))


def build_e4e(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
              device: torch.device, options: Mapping[str, Any] | None = None) -> EncoderMethod:
    return build_encoder_method("e4e", domain, checkpoint, generator, device, options or {})


def build_psp(*, domain: Domain, checkpoint: Path | None = None, generator: Path | None = None,
              device: torch.device, options: Mapping[str, Any] | None = None) -> EncoderMethod:
    return build_encoder_method("psp", domain, checkpoint, generator, device, options or {})


def build_encoder_method(method: str, domain: Domain, checkpoint: Path | None, generator: Path | None,
                         device: torch.device, options: Mapping[str, Any]) -> EncoderMethod:
    """The method from `checkpoint` (default: the domain's pretrained file); `generator` replaces its decoder.

    options["random_weights"]: an official-size encoder with random weights (throughput runs, no
    files needed), decoding with `generator` or a random generator of the domain's resolution.
    The projector options `invert` passes to every method do not apply to encoders and are ignored.
    """
    if options.get("random_weights"):
        inverter = random_inverter(method, domain, generator)
        return EncoderMethod(method, inverter.to(device).eval().requires_grad_(False), domain.encoder_input)
    path = checkpoint if checkpoint is not None else default_checkpoint(method, domain)
    inverter, _ = load_inverter(path, method)
    if generator is not None:
        decoder, _ = load_generator(generator)
        try:
            inverter = Inverter(inverter.encoder, decoder, inverter.latent_avg)
        except ValueError as err:
            raise E4EBenchError(f"--generator {generator} does not fit the encoder of {path} ({err})") from None
    if inverter.decoder.size != domain.resolution:
        raise E4EBenchError(f"{path} decodes {inverter.decoder.size} px images but domain {domain.name!r} needs "
                            f"{domain.resolution} px; pass the --domain the checkpoint was trained for")
    return EncoderMethod(method, inverter.to(device).eval(), domain.encoder_input)


def random_inverter(method: str, domain: Domain, generator: Path | None, seed: int = 0) -> Inverter:
    torch.manual_seed(seed)
    decoder = load_generator(generator)[0] if generator is not None else Generator(domain.resolution)
    encoder = ENCODER_CLASSES[method](decoder.n_latent, decoder.style_dim)
    return Inverter(encoder, decoder, decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator().manual_seed(seed)))


def default_checkpoint(method: str, domain: Domain) -> Path:
    asset = domain.encoder_checkpoint_asset(method)
    if asset is None:
        raise E4EBenchError(f"there is no pretrained {method} checkpoint for domain {domain.name!r}; pass "
                            f"--checkpoint PATH (e.g. one from `python -m e4e_bench train --method {method}`)")
    return asset_path(asset)
