"""`pti`: Pivotal Tuning Inversion (Roich et al. 2021): a W pivot, then the generator tuned around it.

The pivot is our W projection with PTI's settings (the official `w_projector.py`: 450 steps, 600
samples for the mean, a peak learning rate of 0.01, which is what its loop sets each step whatever
Adam was built with), repeated to the generator's own number of W+ rows (the official code
hard-codes 18), or another registered method's codes (`pivot=e4e`, the official `first_inv_type`).
Then every synthesis parameter is tuned per image (`baselines/tuning.py`) with MSE + LPIPS-AlexNet,
constant noise, stopping at LPIPS 0.06, with the official locality regulariser on request (off by
default, as official: `Locality`). The codes are the pivots; each image's decoder state is its tuned
weights, held in memory only (`Inversion.transient`) unless `keep_generators`, which keeps their
float16 differences to the original weights on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.method import ProjectionOptions, build_projection, image_seeds
from baselines.projector import latent_statistics
from baselines.tuning import (Locality, LocalityRecipe, PerImageGenerator, TuningRecipe, Weights, tune,
                              tuned_names)
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import METHODS, Inversion, InversionMethod, WeightSource, build_method
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import Generator
from e4e_bench.networks.lpips_net import build_lpips

DIFFERENCE = "difference."  # state key prefix: a tuned parameter's float16 difference to the original
LOCALITY_STREAM = 0x10CA1  # mixed into the base seed, so the regulariser's samples are not the projector's draws


@dataclass(frozen=True)
class PTIOptions(ProjectionOptions):
    """The pivot's projection settings (PTI's defaults) and the tuning's."""

    steps: int = option(450, "the W pivot's projection steps (official w_projector: 450)")
    lr: float = option(0.01, "the pivot's peak learning rate (the official loop's effective 0.01)")
    w_avg_samples: int = option(600, "mapped samples for the pivot's start and latent noise (official: 600)")
    pivot: str = option("opt_w", "where the pivot comes from: opt_w (W projection with the options above) or a "
                        "registered encoder's codes with its domain checkpoint (e.g. e4e, the official 'w+' pivot)")
    tune_steps: int = option(350, "generator tuning steps at most (official: 350)")
    tune_lr: float = option(3e-4, "Adam learning rate of the tuning (official: 3e-4)")
    tune_mse_weight: float = option(1.0, "weight of the pixel MSE in the tuning loss")
    tune_lpips_weight: float = option(1.0, "weight of LPIPS-AlexNet in the tuning loss; its backbone comes from "
                                      "`python -m e4e_bench assets fetch lpips-alex`; 0 runs offline without it")
    stop_lpips: float = option(0.06, "an image stops tuning once its LPIPS is at or below this (with LPIPS on)")
    locality_regularize: bool = option(False, "the official locality regulariser (official: off): the tuned generator "
                                       "must decode a code near the pivot as the original does")
    locality_alpha: float = option(30.0, "the regulariser's code: this far from the pivot toward a sample at "
                                   "truncation 0.5 (official: 30)")
    locality_l2_weight: float = option(0.1, "weight of the regulariser's pixel MSE (official: 0.1)")
    locality_lpips_weight: float = option(0.1, "weight of the regulariser's LPIPS-AlexNet (official: 0.1; the "
                                          "tuning's network)")
    locality_interval: int = option(1, "the regulariser runs every this many tuning steps (official: 1)")
    keep_generators: bool = option(False, "keep each image's tuned weights on disk as float16 differences to the "
                                   "original (generate/edit --inversion need them); off: only the pivots are kept")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tune_steps < 0:
            raise E4EBenchError(f"tune_steps must be >= 0, got {self.tune_steps}")
        for name in ("tune_lr", "tune_mse_weight", "tune_lpips_weight"):
            if not getattr(self, name) >= 0.0:
                raise E4EBenchError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tune_steps and self.tune_mse_weight == 0.0 and self.tune_lpips_weight == 0.0:
            raise E4EBenchError("tune_mse_weight and tune_lpips_weight are both 0: set one above 0, or tune_steps=0")
        for name in ("locality_alpha", "locality_l2_weight", "locality_lpips_weight"):
            if not getattr(self, name) >= 0.0:
                raise E4EBenchError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.locality_interval < 1:
            raise E4EBenchError(f"locality_interval must be >= 1, got {self.locality_interval}")
        if self.locality_regularize and self.locality_l2_weight == 0.0 and self.locality_lpips_weight == 0.0:
            raise E4EBenchError("locality_l2_weight and locality_lpips_weight are both 0: set one above 0, or turn "
                                "locality_regularize off")
        if self.pivot != "opt_w" and self.pivot not in pivot_encoders():
            raise E4EBenchError(f"pivot {self.pivot!r} is neither opt_w nor an encoder; choose from "
                                f"{', '.join(('opt_w', *pivot_encoders()))}")

    @property
    def recipe(self) -> TuningRecipe:
        return TuningRecipe(self.tune_steps, self.tune_lr, self.tune_mse_weight, self.tune_lpips_weight, self.stop_lpips)

    @property
    def locality(self) -> LocalityRecipe | None:
        if not self.locality_regularize:
            return None
        return LocalityRecipe(self.locality_alpha, self.locality_l2_weight, self.locality_lpips_weight,
                              self.locality_interval)

    @property
    def uses_lpips(self) -> bool:
        """Whether the tuning needs LPIPS-AlexNet: for its own loss or for the regulariser's."""
        return self.tune_lpips_weight > 0 or (self.locality_regularize and self.locality_lpips_weight > 0)

    def required_assets(self, domain: Domain | None = None) -> tuple[str, ...]:
        """The pivot's files (opt_w: its LPIPS backbone; an encoder: its checkpoint for `domain`), then
        the tuning's."""
        if self.pivot == "opt_w":
            pivot = super().required_assets()
        else:
            asset = METHODS[self.pivot].checkpoint_assets.get(domain.name) if domain is not None else None
            pivot = (asset,) if asset is not None else ()  # none registered: building the pivot says how to get one
        return pivot + (("lpips-alex",) if self.uses_lpips and self.lpips_pretrained else ())


def pivot_encoders() -> list[str]:
    """The registered methods a pivot may come from besides opt_w: the encoders (those that take a checkpoint).
    The registry is read here, when an option names one, not when the options are imported."""
    return [name for name, entry in METHODS.items() if entry.takes_checkpoint]


@dataclass
class PTIMethod:
    name: str
    generator: Generator
    input_size: tuple[int, int]
    options: PTIOptions
    domain: Domain
    pivots: InversionMethod  # gives the pivot codes
    decoder: PerImageGenerator
    lpips: torch.nn.Module | None
    source: WeightSource
    center: Tensor | None  # the locality regulariser's truncation centre (None: the regulariser is off)
    resizes_inputs: bool = False

    def invert_codes(self, images: Tensor) -> Tensor:
        """The pivots alone (LEC's re-inversion needs no tuning: it never changes the codes)."""
        if tuple(images.shape[-2:]) != tuple(self.pivots.input_size):  # an encoder's own input size
            images = F.interpolate(images, size=self.pivots.input_size, mode="bilinear", antialias=True)
        return self.pivots.invert(images).codes

    def invert(self, images: Tensor) -> Inversion:
        codes = self.invert_codes(images)
        return self._tuned(codes, self._tune(codes, images))

    def invert_along(self, images: Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        """The dial is the tuning's step count: each image's generator after each of `values` steps of one
        tuning (0: the pivot decoded by the original generator)."""
        if any(value != int(value) or not 0 <= value <= self.options.tune_steps for value in values):
            raise E4EBenchError(f"pti's dial values are tuning step counts from 0 to its {self.options.tune_steps}; "
                                f"got {', '.join(f'{v:g}' for v in values)}")
        codes = self.invert_codes(images)

        def point(value: float) -> Callable[[Weights], None]:  # no kept state: the sweep saves none
            return lambda weights: on_point(value, Inversion(codes, transient=weights))

        self._tune(codes, images, on_steps={int(value): point(value) for value in values})

    def _tune(self, codes: Tensor, images: Tensor, on_steps: dict[int, Callable[[Weights], None]] | None = None
              ) -> Weights:
        locality = None
        if self.options.locality is not None:  # each image's samples from its own seed, as the projector's
            seeds = image_seeds(images, self.options.seed ^ LOCALITY_STREAM)
            locality = Locality(self.options.locality, self.center, seeds)
        return tune(self.decoder, codes, images, self.options.recipe, self.domain, self.lpips, progress=True,
                    on_steps=on_steps, locality=locality)

    def _tuned(self, codes: Tensor, weights: Weights) -> Inversion:
        state = self._differences(weights) if self.options.keep_generators else {}
        return Inversion(codes, state, transient=weights)

    def decode(self, inversion: Inversion, codes: Tensor | None = None) -> Tensor:
        codes = inversion.codes if codes is None else codes
        return self.decoder(self._weights(inversion), codes)

    def _differences(self, tuned: Weights) -> dict[str, Tensor]:
        original = dict(self.generator.named_parameters())
        return {DIFFERENCE + name: (value - original[name]).half() for name, value in tuned.items()}

    def _weights(self, inversion: Inversion) -> Weights:
        if inversion.transient:
            return inversion.transient
        names = tuned_names(self.generator)
        if not all(DIFFERENCE + name in inversion.state for name in names):
            raise E4EBenchError("this pti inversion kept no tuned generators, so its images cannot be decoded again; "
                                "invert with --keep-generators (run: --option pti.keep_generators=true)")
        original = dict(self.generator.named_parameters())
        return {name: original[name] + inversion.state[DIFFERENCE + name].to(original[name]) for name in names}


def build_pti(*, domain: Domain, checkpoint: Path | None, generator: Path | None, device: torch.device,
              options: PTIOptions, random_weights: bool, seed: int) -> PTIMethod:
    """`pivot=opt_w` projects with `options`' projector settings; another method is built with its own
    defaults and the domain's registered checkpoint, and its generator is the one tuned."""
    if options.pivot == "opt_w":
        pivots = build_projection("pti", "w", domain=domain, checkpoint=None, generator=generator, device=device,
                                  options=options, random_weights=random_weights, seed=seed)
    else:
        pivots = build_method(options.pivot, domain=domain, checkpoint=checkpoint, generator=generator, device=device,
                              random_weights=random_weights, seed=seed)
    decoder = pivots.generator
    lpips = None
    if options.uses_lpips:
        lpips = build_lpips("alex", pretrained=options.lpips_pretrained and not random_weights, device=device)
    center = latent_statistics(decoder, options.w_avg_samples).mean[None] if options.locality_regularize else None
    return PTIMethod("pti", decoder, domain.frame_size, options, domain, pivots, PerImageGenerator(decoder), lpips,
                     pivots.source, center)

