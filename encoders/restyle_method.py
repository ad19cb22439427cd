"""`restyle_psp` and `restyle_e4e` behind the `InversionMethod` interface: the batched official loop."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import Inversion, WeightSource
from e4e_bench.methods.contract import TRAJECTORY
from e4e_bench.methods.decoding import decode_with_noise
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import Generator
from encoders.method import check_input_size, encoder_inverter
from encoders.restyle import ReStyleInverter

OFFICIAL_ITERATIONS = 5  # scripts/inference_iterative.py --n_iters_per_batch


@dataclass(frozen=True)
class ReStyleOptions:
    iterations: int = option(OFFICIAL_ITERATIONS, "refinement steps per image (official inference: 5); the codes of "
                             "every step are kept, so quality can be scored against the number of steps")

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise E4EBenchError(f"--iterations must be at least 1, got {self.iterations}")


@dataclass
class ReStyleMethod:
    """Inverts a batch with `options.iterations` refinement steps (BatchNorm in eval mode, stored noise).

    The average image is decoded once, when the method is built.
    """

    name: str
    inverter: ReStyleInverter
    domain: Domain
    source: WeightSource
    options: ReStyleOptions
    average_image: Tensor = field(init=False)

    def __post_init__(self) -> None:
        with torch.inference_mode():
            self.average_image = self.inverter.average_image(self.to_input)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.domain.encoder_input

    @property
    def generator(self) -> Generator:
        return self.inverter.decoder

    @functools.cached_property
    def to_input(self):
        """Generator frames -> the encoder's input: the domain's content, area-pooled to `input_size`."""
        return functools.partial(self.domain.resize_frames, size=self.input_size)

    def invert(self, images: Tensor) -> Inversion:
        """[B, 3, H, W] in [-1, 1] -> the last step's codes, every step's under `state[TRAJECTORY]`."""
        check_input_size(self.name, images, self.input_size)
        with torch.inference_mode():
            images = images.to(self.average_image.device)
            steps = self.inverter.iterate(images, self.average_image, self.options.iterations, self.to_input)
        return Inversion(steps[:, -1], {TRAJECTORY: steps})

    def invert_along(self, images: Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        """The dial is the number of refinement steps: one loop of `iterations` steps, each point its step."""
        if any(value != int(value) or not 1 <= value <= self.options.iterations for value in values):
            raise E4EBenchError(f"{self.name}'s dial values are step counts from 1 to its {self.options.iterations} "
                                f"iterations; got {', '.join(f'{v:g}' for v in values)}")
        trajectory = self.invert(images).state[TRAJECTORY]
        for value in values:
            on_point(value, Inversion(trajectory[:, int(value) - 1], {TRAJECTORY: trajectory[:, : int(value)]}))

    def decode(self, inversion: Inversion, codes: Tensor | None = None) -> Tensor:
        return decode_with_noise(self.generator, inversion, codes)


def build_restyle_psp(**keywords) -> ReStyleMethod:
    return build_restyle("restyle_psp", **keywords)


def build_restyle_e4e(**keywords) -> ReStyleMethod:
    return build_restyle("restyle_e4e", **keywords)


def build_restyle(method: str, *, domain: Domain, options: ReStyleOptions, **weights) -> ReStyleMethod:
    inverter, source = encoder_inverter(method, domain, **weights)
    return ReStyleMethod(method, inverter, domain, source, options)
