"""Edit directions in W+ and the SPEC strings that name them on the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from e4e_bench import assets
from e4e_bench.editing import ganspace, interfacegan, sefa
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator

FITTED_PCA = (
    f"our own IncrementalPCA of {ganspace.FIT_SAMPLES:,} mapped samples, seed {ganspace.FIT_SEED}, "
    f"{ganspace.FIT_COMPONENTS} components"
)

BOUNDARY_SUFFIXES = (".pt", ".npy")

SPEC_HELP = f"""\
direction SPEC (W+ rows are 0-based; START:END excludes END; S is the strength; FILE and PCA are paths or
names of the assets registry):
  interfacegan:FILE         InterFaceGAN normal n from FILE (.pt tensor or .npy; [1,D] for every row or
                            [1,n_latent,D]): w + S*n. A bare FILE ending in .pt or .npy means the same.
  ganspace:PCA:K:START:END  GANSpace component K on rows [START,END). PCA is an e4e *_pca.pt file (comp,
                            std, mean) or 'fit':
                            {FITTED_PCA}.
                            As in e4e the row-0 coordinate along K is set to S std (a target, not a
                            step); the additive form w + S*std_K*comp_K is what LEC uses.
  ganspace:PCA:NAME         e4e's named edit, with its own K, rows and default S (viewpoint at S=-2 is
                            viewpoint II):
{ganspace.describe_named_edits(" " * 30)}
  sefa:K[:START:END]        SeFa direction K (0 = largest eigenvalue) of the modulation weights of the
                            styled convs consuming rows [START,END) (default all: 0:n_latent-1);
                            w + S*n_K on those rows.
"""


@dataclass(frozen=True, eq=False)
class Direction:
    spec: str
    offset: torch.Tensor  # [n_latent, style_dim]: the additive step of strength 1, zero on untouched rows
    rule: str  # the edit in words, for protocols
    default_strength: float | None = None
    setter: Callable[[torch.Tensor, float], torch.Tensor] | None = None  # GANSpace: sets instead of adding

    def add(self, codes: torch.Tensor, strength: float) -> torch.Tensor:
        """The additive edit, codes `[B, n_latent, D]` + strength * offset; `add(., -s)` inverts `add(., s)`."""
        return codes + strength * self.offset.to(codes)

    def apply(self, codes: torch.Tensor, strength: float) -> torch.Tensor:
        """The edit as its source defines it (GANSpace sets a coordinate; the others add)."""
        if self.setter is not None:
            return self.setter(codes, strength)
        return self.add(codes, strength)


def parse_direction(spec: str, generator: Generator) -> Direction:
    """The Direction a SPEC (see SPEC_HELP) names, for codes of `generator`."""
    kind, _, rest = spec.partition(":")
    parsers = {"interfacegan": _interfacegan, "ganspace": _ganspace, "sefa": _sefa}
    if kind not in parsers and spec.lower().endswith(BOUNDARY_SUFFIXES):
        return _interfacegan(spec, spec, generator)  # a bare direction file, as e4e's LEC takes one
    if kind not in parsers or not rest:
        raise E4EBenchError(f"bad direction {spec!r}; expected one of interfacegan:FILE, ganspace:PCA:..., sefa:K")
    direction = parsers[kind](spec, rest, generator)
    _refuse_non_finite(spec, "step", direction.offset)
    return direction


def _refuse_non_finite(spec: str, what: str, values: torch.Tensor) -> None:
    """NaN or inf in a direction would turn every edited code into NaN and every image black."""
    if not torch.isfinite(values).all():
        raise E4EBenchError(f"bad direction {spec!r}: its {what} holds NaN or infinite values; the file is damaged")


def _integers(spec: str, fields: list[str]) -> list[int]:
    try:
        return [int(field) for field in fields]
    except ValueError:
        raise E4EBenchError(f"bad direction {spec!r}: {':'.join(fields)} must be integers") from None


def _check_rows(spec: str, start: int, end: int, n_latent: int) -> None:
    if not 0 <= start < end <= n_latent:
        raise E4EBenchError(f"bad direction {spec!r}: rows {start}:{end} must satisfy 0 <= START < END <= {n_latent}")


def _source_file(text: str) -> Path:
    """A SPEC's file: a registered asset by name, else a path."""
    return assets.asset_path(text) if text in assets.ASSETS else Path(text)


def _interfacegan(spec: str, source: str, generator: Generator) -> Direction:
    path = _source_file(source)
    offset = interfacegan.boundary_offset(interfacegan.read_boundary(path), generator.n_latent, generator.style_dim, path)
    return Direction(spec, offset, f"InterFaceGAN w + S*n, n from {path.name}")


def _ganspace(spec: str, rest: str, generator: Generator) -> Direction:
    fields = rest.rsplit(":", 3)
    if len(fields) == 4:
        source, *numbers = fields
        component, start, end = _integers(spec, numbers)
        default_strength = None
    else:
        source, _, name = rest.rpartition(":")
        if name not in ganspace.NAMED_EDITS or not source:
            raise E4EBenchError(
                f"bad direction {spec!r}; use ganspace:PCA:K:START:END or ganspace:PCA:NAME with NAME one of "
                f"{', '.join(ganspace.NAMED_EDITS)}"
            )
        named = ganspace.NAMED_EDITS[name]
        if source != "fit":
            _check_named_edit(spec, name, _source_file(source).name)
        component, start, end, default_strength = named.component, named.start, named.end, named.strength
    _check_rows(spec, start, end, generator.n_latent)
    if source == "fit":
        pca, origin = ganspace.fit_pca(generator), FITTED_PCA
    else:
        path = _source_file(source)
        pca, origin = ganspace.load_pca(path), path.name
        _refuse_non_finite(spec, "PCA", torch.cat([pca.components.flatten(), pca.std, pca.mean]))
    if pca.mean.numel() != generator.style_dim:
        raise E4EBenchError(f"{source} is a PCA of {pca.mean.numel()}-d codes; this generator's are {generator.style_dim}-d")
    edit = ganspace.CoordinateEdit(pca, component, start, end)
    return Direction(
        spec,
        edit.step(generator.n_latent),
        f"GANSpace component {component} of {origin} on rows {start}:{end}; e4e sets the row-0 coordinate "
        f"to S std, the additive form is w + S*std_k*comp_k",
        default_strength,
        edit.set_coordinate,
    )


def _check_named_edit(spec: str, name: str, pca_file: str) -> None:
    """A named edit's K is an index into its own PCA file; the same index of another known PCA is another edit.
    A file under a name of its own (a renamed copy, say) is taken at the user's word."""
    own_file = ganspace.NAMED_EDITS[name].pca_file
    others = [other for other, edit in ganspace.NAMED_EDITS.items() if edit.pca_file == pca_file]
    if pca_file != own_file and others:
        raise E4EBenchError(f"bad direction {spec!r}: {name} is an edit of {own_file}; the named edits of "
                            f"{pca_file} are {', '.join(others)}")


def _sefa(spec: str, rest: str, generator: Generator) -> Direction:
    fields = rest.split(":")
    if len(fields) not in (1, 3):
        raise E4EBenchError(f"bad direction {spec!r}; use sefa:K or sefa:K:START:END")
    component, *rows = _integers(spec, fields)
    start, end = rows or (0, sefa.factorisable_rows(generator).stop)
    _, directions = sefa.factorise(generator, range(start, end))
    if not 0 <= component < len(directions):
        raise E4EBenchError(f"bad direction {spec!r}: SeFa has {len(directions)} directions, K is 0-based")
    offset = torch.zeros(generator.n_latent, generator.style_dim)
    offset[start:end] = directions[component].cpu()
    return Direction(spec, offset, f"SeFa direction {component} of the modulation weights of rows {start}:{end}, w + S*n")
