"""SeFa (Shen & Zhou 2021): closed-form directions from the generator's style modulation weights.

W+ row 0 is consumed by `conv1`, row r >= 1 by `convs[r-1]` (the ToRGB layers are left out, as in
e4e's `editings/sefa.py`); the last row feeds only the final ToRGB, so rows 0..n_latent-2 can be
factorised. The modulation weights of the chosen rows are stacked `[sum C, D]`, each output
channel's weight normalised to unit length (genforce's column normalisation), and the eigenvectors
of Wt W are the directions, by decreasing eigenvalue (`eigh`, not `eig`, whose order is arbitrary).
Unlike e4e, whose `apply_sefa` shifts the edited rows down by one, the edit adds the direction to
the same rows whose weights were factorised.
"""

from __future__ import annotations

import torch

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator


def factorisable_rows(generator: Generator) -> range:
    return range(generator.n_latent - 1)


@torch.no_grad()
def factorise(generator: Generator, rows: range) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues [D] descending, directions [D, D] as orthonormal rows) for the weights of `rows`."""
    valid = factorisable_rows(generator)
    if len(rows) == 0 or rows.start < valid.start or rows.stop > valid.stop:
        raise E4EBenchError(
            f"SeFa rows {rows.start}:{rows.stop} are not styled-conv rows of this generator; "
            f"choose START:END within 0:{valid.stop}"
        )
    per_row = list(generator.modulation_weights().values())  # [C, style_dim] each, in W+ row order
    weight = torch.cat(per_row[rows.start : rows.stop]).double()
    weight = weight / weight.norm(dim=1, keepdim=True)
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)
    return eigenvalues.flip(0).float(), eigenvectors.flip(1).T.float()
