"""What a method is to the harness: its registry entry, the object the entry builds, and what that
object's `invert` returns.

An `Inversion` is a batch's codes plus whatever per-image state the method decodes them with
(a projection's optimised noise maps, a hypernetwork's weight offsets, a tuned generator). The
harness never looks inside the state: it slices it with the codes, keeps `state` on disk one file
per image and `transient` only in memory, and hands both back to the method's `decode`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator


# A `state` entry `[B, T, n_latent, style_dim]`: the codes after each of T steps of a method that refines
# its codes step by step (the last equal to `codes`); `run` scores each step's reconstruction.
TRAJECTORY = "trajectory"


@dataclass
class Inversion:
    """Codes `[B, n_latent, style_dim]` (latent_avg included) and per-image decoder state: each
    tensor of `state` and `transient` has the batch as its first dimension (both empty for a plain
    encoder). `state` is kept on disk, one file per image; `transient` lives only while the batch
    is in memory (a tuned generator's full weights): the harness does every decode that needs it
    (reconstructions, edits, LEC) before it drops the batch."""

    codes: torch.Tensor
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    transient: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in (self.state | self.transient).items():
            if len(value) != len(self.codes):
                raise E4EBenchError(f"state {key!r} holds {len(value)} images but there are {len(self.codes)} codes")

    def __len__(self) -> int:
        return len(self.codes)

    def _map(self, function) -> "Inversion":
        return Inversion(function(self.codes), {k: function(v) for k, v in self.state.items()},
                         {k: function(v) for k, v in self.transient.items()})

    def __getitem__(self, index: slice | Sequence[int] | torch.Tensor) -> "Inversion":
        return self._map(lambda value: value[index])

    def to(self, device: torch.device | str) -> "Inversion":
        return self._map(lambda value: value.to(device))

    def detached(self) -> "Inversion":
        """What is kept and saved: codes in float32 and the state, on the CPU, out of any autograd
        graph; the transient state is dropped."""
        return Inversion(self.codes.detach().float().cpu(), {k: v.detach().cpu() for k, v in self.state.items()})

    @staticmethod
    def cat(parts: Sequence["Inversion"]) -> "Inversion":
        keys = set(parts[0].state), set(parts[0].transient)
        if any((set(part.state), set(part.transient)) != keys for part in parts):
            raise ValueError("cannot join inversions whose decoder states hold different keys")
        return Inversion(torch.cat([p.codes for p in parts]), {k: torch.cat([p.state[k] for p in parts]) for k in keys[0]},
                         {k: torch.cat([p.transient[k] for p in parts]) for k in keys[1]})


@dataclass(frozen=True)
class WeightSource:
    """Where a built method's weights came from: the files read, or the seed of random weights."""

    checkpoint: Path | None = None  # the method's own file (encoder and, unless `generator` is set, decoder)
    generator: Path | None = None  # the generator file
    random_seed: int | None = None  # random weights at the domain's official architecture


@runtime_checkable
class InversionMethod(Protocol):
    name: str
    generator: Generator  # the decoder the codes belong to (before any per-image change)
    input_size: tuple[int, int]  # (H, W) the images are loaded at
    options: Any  # the method's frozen options dataclass: every setting that changes the codes
    source: WeightSource
    # Methods may set `resizes_inputs = False`: images must then already have the aspect ratio of
    # `input_size` (projection compares pixels with the domain's frame; a stretched image is an error).

    def invert(self, images: torch.Tensor) -> Inversion:
        """[B, 3, H, W] in [-1, 1] -> the codes and decoder state of each image."""
        ...

    def decode(self, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        """Square generator frames `[B, 3, S, S]` of `codes` (default: the inversion's own; edited
        codes are decoded with each image's own state)."""
        ...


@runtime_checkable
class IterativeMethod(Protocol):
    """A method whose inversion is `recipe_steps` steps of one kind (projection, tuning): `bench`
    times a few of them and scales, rather than running the whole recipe."""

    recipe_steps: int

    def invert_steps(self, images: torch.Tensor, steps: int) -> Inversion:
        """The first `steps` steps of the recipe, without a progress bar."""
        ...


@runtime_checkable
class CodesFirstMethod(Protocol):
    """A method whose codes come before, and do not depend on, the rest of its inversion (PTI's
    pivot, before the tuning): LEC, which needs only the codes of its re-inversion, asks for those."""

    def invert_codes(self, images: torch.Tensor) -> torch.Tensor:
        """`invert(images).codes`, without the work that only the decoder state needs."""
        ...


@runtime_checkable
class SweepableMethod(Protocol):
    """A method whose dial (`Dial`) `run --sweep` can turn."""

    def invert_along(self, images: torch.Tensor, values: Sequence[float],
                     on_point: Callable[[float, Inversion], None]) -> None:
        """Call `on_point(value, inversion)` for each of `values` (ascending) as soon as the inversion
        at that value exists: from one trajectory where the dial allows (the codes at steps 50, 100,
        ... of one projection), else from one inversion turned to each value."""
        ...


@dataclass(frozen=True)
class Dial:
    """A method's knob between distortion and editability (e4e's W^k), turned by `run --sweep`."""

    name: str  # what a value means, for tables and plots: "offset scale", "projection steps"
    values: Callable[[Any], tuple[float, ...]]  # the method's options -> the values swept by default, ascending
    default: Callable[[Any], float]  # the method's options -> the value of a plain run (one of `values`)
    moves_codes: bool = True  # False: every value has the same codes (PTI's tuning steps move the generator)


BUILTIN_PACKAGE = "e4e-bench"  # the `package` of the methods that ship with the harness
Reference = str  # "module:attribute", imported on first use so that `--help` imports no method


@dataclass(frozen=True)
class MethodEntry:
    """Everything the harness knows about a method. Built-ins and plug-ins register the same way.

    `factory(domain=, checkpoint=, generator=, device=, options=, random_weights=, seed=)` builds
    the method; `options` is already an instance of the options class, domain defaults applied.
    """

    name: str
    factory: Reference | Callable[..., InversionMethod]
    options: Reference | type  # frozen dataclass; each field's metadata["help"] is its flag's help
    summary: str  # one line for `--help`
    checkpoint_formats: tuple[str, ...] = ()  # asset formats `--checkpoint` takes; () takes no checkpoint
    checkpoint_assets: Mapping[str, str] = field(default_factory=dict)  # domain -> registered default checkpoint
    domain_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # domain -> option defaults
    trainer: Reference | Callable[..., Any] | None = None  # (method, domain, overrides, resume) -> summary
    train_options: Reference | type | None = None  # the trainer's frozen options dataclass
    dial: Dial | None = None  # its distortion-editability knob for `run --sweep` (None: one point)
    package: str = BUILTIN_PACKAGE  # the distribution that registered it (plug-ins: theirs)

    @property
    def takes_checkpoint(self) -> bool:
        return bool(self.checkpoint_formats)

    def options_for(self, domain: str) -> dict[str, Any]:
        return dict(self.domain_options.get(domain, {}))
