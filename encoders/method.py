"""`e4e` and `psp` behind the `InversionMethod` interface (one encoder pass per batch), and the\nloading every encoder method shares."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.methods import METHODS, Inversion, WeightSource
from e4e_bench.methods.decoding import decode_with_noise
from e4e_bench.seeding import seeded_initialisation
from encoders.checkpoint import ENCODERS, MEAN_LATENT_SAMPLES, encoder_type_for, load_inverter
from encoders.inverter import Inverter


@dataclass(frozen=True)
class EncoderOptions:
    """e4e and pSp take no inversion options: one forward pass, BatchNorm in eval mode."""


def check_input_size(name: str, images: Tensor, size: tuple[int, int]) -> None:
    """An encoder reads images at its domain's encoder input `size` (H, W); anything else is refused."""
    if tuple(images.shape[-2:]) != size:
        raise E4EBenchError(f"{name} takes images of {size[0]}x{size[1]} (H x W), "
                            f"got {images.shape[-2]}x{images.shape[-1]}; load them at the domain's encoder input")


def first_row(codes: Tensor) -> Tensor:
    """e4e's base code: row 0 is w, every other row w plus its offset."""
    return codes[:, :1]


def row_mean(codes: Tensor) -> Tensor:
    """pSp's codes have no base: the mean of their rows."""
    return codes.mean(dim=1, keepdim=True)


@dataclass
class EncoderMethod:
    """Inverts a batch with one forward pass of a trained e4e/pSp encoder (BatchNorm in eval mode).

    Its dial scales each row's deviation from a centre (e4e: its base code w, so 0 is W and 1 its
    W^k code; pSp: the mean of the rows): `codes(s) = centre + s * (codes - centre)`.
    """

    name: str
    inverter: Inverter
    input_size: tuple[int, int]  # (H, W) the images are loaded at: the domain's encoder input
    source: WeightSource
    options: EncoderOptions = EncoderOptions()
    dial_centre: Callable[[Tensor], Tensor] = first_row  # codes [B, n, D] -> the centre [B, 1, D] the dial scales from

    @property
    def generator(self) -> Generator:
        return self.inverter.decoder

    def invert(self, images: Tensor) -> Inversion:
        """[B, 3, H, W] in [-1, 1] -> W+ codes [B, n_latent, style_dim] (latent_avg included), no decoder state."""
        check_input_size(self.name, images, self.input_size)
        device = self.inverter.decoder.device
        with torch.inference_mode():
            return Inversion(self.inverter.codes(images.to(device)))

    def invert_along(self, images: Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        codes = self.invert(images).codes
        centre = self.dial_centre(codes).expand_as(codes)
        for value in values:
            on_point(value, Inversion(torch.lerp(centre, codes, value)))  # exact at 0 and 1

    def decode(self, inversion: Inversion, codes: Tensor | None = None) -> Tensor:
        return decode_with_noise(self.generator, inversion, codes)


def build_e4e(**keywords) -> EncoderMethod:
    return build_encoder_method("e4e", first_row, **keywords)


def build_psp(**keywords) -> EncoderMethod:
    return build_encoder_method("psp", row_mean, **keywords)


def build_encoder_method(method: str, dial_centre: Callable[[Tensor], Tensor], *, domain: Domain,
                         options: EncoderOptions, **weights) -> EncoderMethod:
    inverter, source = encoder_inverter(method, domain, **weights)
    return EncoderMethod(method, inverter, domain.encoder_input, source, options, dial_centre)


def encoder_inverter(method: str, domain: Domain, *, checkpoint: Path | None, generator: Path | None,
                     device: torch.device, random_weights: bool, seed: int) -> tuple[Inverter, WeightSource]:
    """`method`'s inverter from `checkpoint` (default: the domain's pretrained file), in eval mode on
    `device`; `generator` replaces its decoder.

    `random_weights`: an official-size encoder with weights drawn from `seed` (throughput runs, no
    files needed), decoding with `generator` or a random generator of the domain's resolution.
    """
    if random_weights:
        inverter = random_inverter(method, domain, generator, seed)
        return inverter.to(device).eval().requires_grad_(False), WeightSource(generator=generator, random_seed=seed)
    path = checkpoint if checkpoint is not None else default_checkpoint(method, domain)
    inverter, _ = load_inverter(path, method)
    if generator is not None:
        decoder, _ = load_generator(generator)
        try:
            inverter = type(inverter)(inverter.encoder, decoder, inverter.latent_avg)
        except ValueError as err:
            raise E4EBenchError(f"--generator {generator} does not fit the encoder of {path} ({err})") from None
    if inverter.decoder.size != domain.resolution:
        raise E4EBenchError(f"{path} decodes {inverter.decoder.size} px images but domain {domain.name!r} needs "
                            f"{domain.resolution} px; pass the --domain the checkpoint was trained for")
    return inverter.to(device).eval(), WeightSource(checkpoint=path, generator=generator)


def random_inverter(method: str, domain: Domain, generator: Path | None, seed: int = 0) -> Inverter:
    """The official architecture of `method` on `domain` (ReStyle: IR-SE-50 for faces, else ResNet-34)."""
    entry = ENCODERS[encoder_type_for(method, resnet=domain.name != "faces")]
    with seeded_initialisation(seed):
        decoder = load_generator(generator)[0] if generator is not None else Generator(**domain.generator_kwargs)
        encoder = entry.encoder(decoder.n_latent, decoder.style_dim)
    return entry.inverter(encoder, decoder,
                          decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator().manual_seed(seed)))


def default_checkpoint(method: str, domain: Domain) -> Path:
    asset = METHODS[method].checkpoint_assets.get(domain.name)
    if asset is None:
        raise E4EBenchError(f"there is no pretrained {method} checkpoint for domain {domain.name!r}; pass "
                            f"--checkpoint PATH (e.g. one from `python -m e4e_bench train --method {method}`)")
    return asset_path(asset)
