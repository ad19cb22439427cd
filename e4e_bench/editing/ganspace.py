"""GANSpace (Haerkoenen et al. 2020): principal components of W as edit directions.

A PCA is either fitted here over mapped samples (scikit-learn IncrementalPCA, as GANSpace's `ipca`
estimator) or read from e4e's `editings/ganspace_pca/*_pca.pt` files (`comp` [K,1,D], `std` [K],
`mean` [1,D]). e4e's edit *sets* a coordinate: c = <w[0] - mean, comp_k> / std_k is measured on W+
row 0 and rows [start, end) get (sigma - c) * std_k * comp_k added. Its additive form,
w + sigma * std_k * comp_k on the same rows, is what an invertible edit (LEC) needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator, sample_w


FIT_SAMPLES = 100_000
FIT_COMPONENTS = 80
FIT_SEED = 0


@dataclass(frozen=True, eq=False)
class PCA:
    components: torch.Tensor  # [K, D], orthonormal rows, by decreasing variance
    std: torch.Tensor  # [K], sqrt of the explained variance
    mean: torch.Tensor  # [D]

    def state(self) -> dict[str, torch.Tensor]:
        """e4e's file layout (`comp` [K,1,D], `std` [K], `mean` [1,D])."""
        return {"comp": self.components.unsqueeze(1), "std": self.std, "mean": self.mean.unsqueeze(0)}


@dataclass(frozen=True)
class NamedEdit:
    component: int
    start: int
    end: int  # exclusive
    strength: float
    pca_file: str  # the e4e PCA file the component index refers to


# e4e's playground notebook (cars "as displayed in the paper"; FFHQ from the GANSpace repository).
# Viewpoint II of the notebook is viewpoint at strength -2.
NAMED_EDITS: dict[str, NamedEdit] = {
    "viewpoint": NamedEdit(0, 0, 5, 2.0, "cars_pca.pt"),
    "cube": NamedEdit(16, 3, 6, 25.0, "cars_pca.pt"),
    "color": NamedEdit(22, 9, 11, -8.0, "cars_pca.pt"),
    "grass": NamedEdit(41, 9, 11, -18.0, "cars_pca.pt"),
    "eye_openness": NamedEdit(54, 7, 8, 20.0, "ffhq_pca.pt"),
    "smile": NamedEdit(46, 4, 5, -20.0, "ffhq_pca.pt"),
    "trimmed_beard": NamedEdit(58, 7, 9, 20.0, "ffhq_pca.pt"),
    "white_hair": NamedEdit(57, 7, 10, -24.0, "ffhq_pca.pt"),
    "lipstick": NamedEdit(34, 10, 11, 20.0, "ffhq_pca.pt"),
    # The toy domain's, named by rendering its first components. Component 0 on all 8 rows also turns
    # the body red or orange; on the coarse rows alone the car only grows (shrinks below 0).
    "size": NamedEdit(0, 0, 3, 2.0, "toy_ganspace_pca.pt"),
    "sky": NamedEdit(3, 3, 8, 3.0, "toy_ganspace_pca.pt"),  # dusk to day, the body a shade with it; on all rows the car shrinks too
    "hue": NamedEdit(5, 4, 8, 3.0, "toy_ganspace_pca.pt"),  # the body from blue and purple to yellow and green
}


def describe_named_edits(indent: str) -> str:
    return "\n".join(
        f"{indent}{name:<14} K={edit.component:<3} rows {f'{edit.start}:{edit.end}':<6} S={edit.strength:<4g} ({edit.pca_file})"
        for name, edit in NAMED_EDITS.items()
    )


def load_pca(path: Path) -> PCA:
    """Read an e4e `*_pca.pt` file (or one written from `PCA.state()`)."""
    if not path.is_file():
        raise E4EBenchError(f"GANSpace PCA file {path} does not exist; pass e4e's cars_pca.pt/ffhq_pca.pt or use 'fit'")
    content = read_checkpoint(path)
    if not {"comp", "std", "mean"} <= content.keys():
        raise E4EBenchError(f"{path} is not a GANSpace PCA file; expected a dict with 'comp', 'std' and 'mean'")
    components = content["comp"].float().flatten(1)
    std = content["std"].float().flatten()
    mean = content["mean"].float().flatten()
    if len(std) != len(components) or components.shape[1] != len(mean):
        raise E4EBenchError(
            f"{path} has inconsistent shapes: comp {list(content['comp'].shape)}, std {list(content['std'].shape)}, "
            f"mean {list(content['mean'].shape)}"
        )
    return PCA(components, std, mean)


@torch.no_grad()
def fit_pca(
    generator: Generator,
    n_samples: int = FIT_SAMPLES,
    n_components: int = FIT_COMPONENTS,
    batch_size: int = 10_000,
    seed: int = FIT_SEED,
) -> PCA:
    """GANSpace's W-space PCA: z ~ N(0, I) from a seeded torch.Generator, mapped, fitted batch by batch."""
    n_components = min(n_components, generator.style_dim)
    if n_samples < n_components:
        raise E4EBenchError(f"a GANSpace PCA of {n_components} components needs at least that many samples, not {n_samples}")
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    from sklearn.decomposition import IncrementalPCA  # heavy: imported only when a PCA is fitted

    estimator = IncrementalPCA(n_components=n_components)
    # Equal batches: IncrementalPCA needs at least n_components rows in every one.
    n_batches = max(1, min(-(-n_samples // batch_size), n_samples // n_components))
    for count in np.diff(np.linspace(0, n_samples, n_batches + 1).round().astype(int)):
        estimator.partial_fit(sample_w(generator, int(count), rng).double().cpu().numpy())
    return PCA(
        torch.from_numpy(estimator.components_).float(),
        torch.from_numpy(np.sqrt(estimator.explained_variance_)).float(),
        torch.from_numpy(estimator.mean_).float(),
    )


@dataclass(frozen=True, eq=False)
class CoordinateEdit:
    """e4e's GANSpace edit of component k on W+ rows [start, end)."""

    pca: PCA
    component: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.component < len(self.pca.std):
            raise E4EBenchError(
                f"GANSpace component {self.component} does not exist; the PCA has {len(self.pca.std)} (0-based)"
            )
        if not self.pca.std[self.component] > 0:  # also false for NaN
            raise E4EBenchError(
                f"GANSpace component {self.component} has standard deviation {float(self.pca.std[self.component])}; "
                "its coordinate cannot be measured in std units"
            )

    def step(self, n_latent: int) -> torch.Tensor:
        """The additive form's unit step `[n_latent, D]`: std_k * comp_k on rows [start, end), zero elsewhere."""
        offset = torch.zeros(n_latent, self.pca.mean.numel())
        offset[self.start : self.end] = self.pca.std[self.component] * self.pca.components[self.component]
        return offset

    def set_coordinate(self, codes: torch.Tensor, strength: float) -> torch.Tensor:
        """Codes `[B, n_latent, D]` with the row-0 coordinate moved to `strength` std on rows [start, end)."""
        component = self.pca.components[self.component].to(codes)
        std = self.pca.std[self.component].to(codes)
        coordinate = (codes[:, 0] - self.pca.mean.to(codes)) @ component / std
        delta = (strength - coordinate)[:, None] * std * component
        edited = codes.clone()
        edited[:, self.start : self.end] += delta[:, None]
        return edited
