"""`hyperstyle` behind the `InversionMethod` interface: the W encoder's codes, and each image's weight
offsets kept as the hypernetwork's summed codes (a few kB per image; `encoders/hypernetwork.py`).

Reconstructions, edits (the codes edited, the image's offsets kept, as the official editing scripts
do) and `generate` decode with the image's offsets; LEC re-inverts the edited image, whose codes come
from the W encoder alone.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from e4e_bench.assets import asset_path, resolve_file
from e4e_bench.checkpoints import load_generator
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, WeightSource
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import Generator
from e4e_bench.seeding import seeded_initialisation
from encoders.checkpoint import MEAN_LATENT_SAMPLES
from encoders.hyperstyle import HyperStyle
from encoders.hyperstyle_checkpoint import load_hyperstyle
from encoders.hypernetwork import SharedWeightsHyperNetResNet, layer_shapes
from encoders.method import check_input_size, default_checkpoint
from encoders.w_encoder import WEncoder

OFFICIAL_ITERATIONS = 5  # scripts/inference.py --n_iters_per_batch
HYPER_CODES = "hyperstyle.codes"  # [B, n_tuned, width]: the hypernetwork's codes summed over the passes
PASSES = "hyperstyle.passes"  # [B]: how many passes they sum
W_ENCODER_ASSETS = {"faces": "hyperstyle-w-encoder-faces", "cars": "hyperstyle-w-encoder-cars", "toy": "toy-w-encoder"}


@dataclass(frozen=True)
class HyperStyleOptions:
    iterations: int = option(OFFICIAL_ITERATIONS, "hypernetwork passes per image (official inference: 5)")
    w_encoder: str = option("", "the W encoder file or asset name: the official W encoder of the domain, or any e4e "
                            "checkpoint (its class is read off its weights); default: the domain's registered one")

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise E4EBenchError(f"--iterations must be at least 1, got {self.iterations}")

    def required_assets(self, domain: Domain | None = None) -> tuple[str, ...]:
        if self.w_encoder or domain is None or domain.name not in W_ENCODER_ASSETS:
            return ()
        return (W_ENCODER_ASSETS[domain.name],)


@dataclass
class HyperStyleMethod:
    name: str
    model: HyperStyle
    domain: Domain
    source: WeightSource
    options: HyperStyleOptions

    @property
    def input_size(self) -> tuple[int, int]:
        return self.domain.encoder_input

    @property
    def generator(self) -> Generator:
        return self.model.decoder

    @functools.cached_property
    def to_input(self):
        """Generator frames -> the hypernetwork's input: the domain's content, area-pooled to `input_size`."""
        return functools.partial(self.domain.resize_frames, size=self.input_size)

    def _images(self, images: Tensor) -> Tensor:
        check_input_size(self.name, images, self.input_size)
        return images.to(self.generator.device)

    def invert_codes(self, images: Tensor) -> Tensor:
        """The W encoder's codes alone (the passes never change them)."""
        with torch.inference_mode():
            return self.model.w_codes(self._images(images))

    def _passes(self, images: Tensor, iterations: int) -> tuple[Tensor, Tensor]:
        images = self._images(images)
        with torch.inference_mode():
            codes = self.model.w_codes(images)
            return codes, self.model.iterate(images, codes, iterations, self.to_input)

    def invert(self, images: Tensor) -> Inversion:
        codes, sums = self._passes(images, self.options.iterations)
        return self._at(codes, sums, self.options.iterations)

    def invert_along(self, images: Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        """The dial is the number of passes: 0 is the W encoder alone; the points come from one loop."""
        if any(value != int(value) or not 0 <= value <= self.options.iterations for value in values):
            raise E4EBenchError(f"{self.name}'s dial values are pass counts from 0 to its {self.options.iterations} "
                                f"iterations; got {', '.join(f'{v:g}' for v in values)}")
        codes, sums = self._passes(images, max(1, int(max(values))))
        for value in values:
            on_point(value, self._at(codes, sums, int(value)))

    @staticmethod
    def _at(codes: Tensor, sums: Tensor, passes: int) -> Inversion:
        if passes == 0:
            return Inversion(codes)
        counts = torch.full((len(codes),), float(passes), device=codes.device)
        return Inversion(codes, {HYPER_CODES: sums[:, passes - 1], PASSES: counts})

    def decode(self, inversion: Inversion, codes: Tensor | None = None) -> Tensor:
        codes = inversion.codes if codes is None else codes
        with torch.inference_mode():
            if HYPER_CODES not in inversion.state:
                return self.model.decode(codes)
            return self.model.decode(codes, inversion.state[HYPER_CODES].to(codes), inversion.state[PASSES].to(codes))


def build_hyperstyle(*, domain: Domain, checkpoint: Path | None, generator: Path | None, device: torch.device,
                     options: HyperStyleOptions, random_weights: bool, seed: int) -> HyperStyleMethod:
    """From `checkpoint` and `options.w_encoder` (defaults: the domain's registered files); `generator` replaces
    its decoder. `random_weights`: the official architecture with weights drawn from `seed`."""
    if random_weights:
        model = random_hyperstyle(domain, generator, seed)
        source = WeightSource(generator=generator, random_seed=seed)
    else:
        path = checkpoint if checkpoint is not None else default_checkpoint("hyperstyle", domain)
        model = load_hyperstyle(path, w_encoder_path(options, domain))
        if generator is not None:
            try:
                model = HyperStyle(model.hypernet, load_generator(generator)[0], model.w_encoder, model.latent_avg)
            except ValueError as err:
                raise E4EBenchError(f"--generator {generator} does not fit the HyperStyle checkpoint {path} ({err})"
                                    ) from None
        if model.decoder.size != domain.resolution:
            raise E4EBenchError(f"{path} decodes {model.decoder.size} px images but domain {domain.name!r} needs "
                                f"{domain.resolution} px; pass the --domain the checkpoint was trained for")
        source = WeightSource(checkpoint=path, generator=generator)
    return HyperStyleMethod("hyperstyle", model.to(device).eval().requires_grad_(False), domain, source, options)


def w_encoder_path(options: HyperStyleOptions, domain: Domain) -> Path:
    if options.w_encoder:
        return resolve_file(options.w_encoder)
    if domain.name not in W_ENCODER_ASSETS:
        raise E4EBenchError(f"there is no registered HyperStyle W encoder for domain {domain.name!r}; pass "
                            "--w-encoder FILE (an e4e checkpoint serves, e.g. from `train --method e4e`)")
    return asset_path(W_ENCODER_ASSETS[domain.name])


def random_hyperstyle(domain: Domain, generator: Path | None, seed: int = 0) -> HyperStyle:
    """The official architecture on `domain`: every non-toRGB layer tuned, IR-SE-50 WEncoder."""
    with seeded_initialisation(seed):
        decoder = load_generator(generator)[0] if generator is not None else Generator(**domain.generator_kwargs)
        hypernet = SharedWeightsHyperNetResNet(layer_shapes(decoder))
        w_encoder = WEncoder(decoder.n_latent, decoder.style_dim)
    latent_avg = decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator().manual_seed(seed))
    return HyperStyle(hypernet, decoder, w_encoder, latent_avg)
