"""Per-image generators tuned in one batch: PTI's second stage (`training/coaches/single_id_coach.py`).

Each image has its own copy of the synthesis network's parameters, stacked along a leading batch
dimension and run with `torch.func.vmap` over `functional_call`: one batched computation, not a
loop over images. The mapping network is left as it is (the codes are given in W+, so it never
runs). Adam is elementwise and the loss a sum of per-image losses, so every image is tuned as if
alone; an image that reaches the LPIPS threshold keeps the weights it had at that step (the
official loop checks before each step and stops), while the others go on. The official optional
locality regulariser (`Locality`) draws each image's samples from that image's own random stream.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from tqdm import tqdm

from baselines.target_lpips import TargetLPIPS
from e4e_bench.domains import Domain
from e4e_bench.networks.generator import Generator

PROGRESS_EVERY = 10
Weights = dict[str, Tensor]  # parameter name -> `[B, *shape]`, one row per image


@dataclass(frozen=True)
class TuningRecipe:
    steps: int
    lr: float
    mse_weight: float
    lpips_weight: float
    stop_lpips: float  # an image stops once its LPIPS is at or below this (only with lpips_weight > 0)


@dataclass(frozen=True)
class LocalityRecipe:
    alpha: float  # how far the regulariser's code lies from the pivot, toward the sampled code
    l2_weight: float
    lpips_weight: float
    interval: int  # the regulariser runs at steps 0, interval, 2 * interval, ...


LOCALITY_PSI = 0.5  # the truncation of the regulariser's samples (official)


class Locality:
    """PTI's optional locality regulariser (`criteria/localitly_regulizer.py`): each image draws one z
    from its own stream (`seeds`), maps it to w at truncation 0.5 toward `center` (`[1, D]`), and takes
    the code `pivot + alpha * (w - pivot) / ||w - pivot||`, the norm over the whole W+ code (as the
    official one takes it over its `[18, 512]`); its tuned generator must decode that code as the
    original does: `l2_weight * MSE + lpips_weight * LPIPS` between the two frames, noise off (official)."""

    def __init__(self, recipe: LocalityRecipe, center: Tensor, seeds: Sequence[int]):
        self.recipe, self.center = recipe, center
        self.rngs = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def loss(self, decoder: PerImageGenerator, weights: Weights, pivots: Tensor, domain: Domain,
             lpips: nn.Module | None) -> Tensor:
        """`[B]`: each image's regulariser term at this step (one fresh sample per image)."""
        generator = decoder.generator
        with torch.no_grad():
            z = torch.stack([torch.randn(generator.style_dim, generator=rng) for rng in self.rngs]).to(pivots)
            w = generator.truncate(generator.mapping(z), LOCALITY_PSI, self.center.to(pivots))
            direction = generator.to_wplus(w) - pivots
            codes = pivots + self.recipe.alpha * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1)
            original = domain.crop(generator(codes, noise="none"))
        tuned = domain.crop(decoder(weights, codes, noise="none"))
        loss = self.recipe.l2_weight * F.mse_loss(tuned, original, reduction="none").mean(dim=(1, 2, 3))
        if self.recipe.lpips_weight > 0:
            loss = loss + self.recipe.lpips_weight * TargetLPIPS(lpips, original)(tuned)
        return loss


def tuned_names(generator: Generator) -> list[str]:
    """The parameters that are tuned: the synthesis network's, all of them."""
    return [name for name, _ in generator.named_parameters() if not name.startswith("style.")]


class PerImageGenerator:
    """`generator` decoding each code with its own image's weights."""

    def __init__(self, generator: Generator):
        self.generator = generator
        self.vmapped = copy.copy(generator)  # shares every parameter; only its memory layout differs
        self.vmapped.channels_last = False

    def initial_weights(self, batch: int) -> Weights:
        parameters = dict(self.generator.named_parameters())
        return {name: parameters[name].detach().expand(batch, *parameters[name].shape).clone()
                for name in tuned_names(self.generator)}

    def __call__(self, weights: Weights, codes: Tensor, noise: str = "const") -> Tensor:
        """Frames `[B, 3, S, S]` of W+ codes `[B, n_latent, D]`, image b decoded with `weights[.][b]`
        (`noise`: "const" or "none"). Differentiable in `weights`; with none requiring grad no graph is kept."""

        def one(image_weights: Weights, code: Tensor) -> Tensor:
            return functional_call(self.vmapped, image_weights, (code[None],), {"noise": noise})[0]

        # The in-place inference paths of the generator have no vmap rule: run in grad mode, which
        # records nothing when nothing requires grad.
        with torch.inference_mode(False), torch.enable_grad():
            return vmap(one)(weights, codes.clone())


def tune(decoder: PerImageGenerator, codes: Tensor, targets: Tensor, recipe: TuningRecipe, domain: Domain,
         lpips: nn.Module | None, progress: bool = False,
         on_steps: Mapping[int, Callable[[Weights], None]] | None = None, locality: Locality | None = None) -> Weights:
    """Weights `[B, ...]` tuned so that `codes` (`[B, n_latent, D]`, held fixed) reconstruct `targets`
    (`[B, 3, H, W]` in [-1, 1], the domain's cropped frame): MSE + LPIPS (+ `locality`'s term), Adam,
    `recipe.steps` at most. `on_steps[k](weights)` is called with the weights after `k` steps (an image
    that stopped earlier: its weights then), and the tuning stops at the largest `k`."""
    on_steps = on_steps or {}
    last = max(on_steps, default=recipe.steps)
    if not 0 <= last <= recipe.steps:
        raise ValueError(f"step {last} is outside the tuning's 0..{recipe.steps}")
    if locality is not None and len(locality.rngs) != len(codes):
        raise ValueError(f"{len(locality.rngs)} locality seeds for {len(codes)} images")
    with torch.inference_mode(False), torch.enable_grad():
        codes, targets = codes.detach().clone(), targets.detach().clone()
        weights = {name: value.requires_grad_(True) for name, value in decoder.initial_weights(len(codes)).items()}
        final = {name: value.detach().clone() for name, value in weights.items()}
        active = torch.ones(len(codes), dtype=torch.bool, device=codes.device)
        if 0 in on_steps:
            on_steps[0](_reached(final, weights, active))
        distance = TargetLPIPS(lpips, targets) if recipe.lpips_weight > 0 else None
        optimizer = torch.optim.Adam(weights.values(), lr=recipe.lr)
        bar = tqdm(total=last, desc=f"pti x{len(codes)}", disable=not progress, leave=False)
        for step in range(last):
            frames = domain.crop(decoder(weights, codes))
            loss = recipe.mse_weight * F.mse_loss(frames, targets, reduction="none").mean(dim=(1, 2, 3))
            if distance is not None:
                perceptual = distance(frames)
                stopping = active & (perceptual.detach() <= recipe.stop_lpips)
                if stopping.any():
                    _keep_rows(final, weights, stopping)
                    active &= ~stopping
                    if not active.any():
                        for later in sorted(k for k in on_steps if k > step):
                            on_steps[later](_reached(final, weights, active))
                        break
                loss = loss + recipe.lpips_weight * perceptual
            if locality is not None and step % locality.recipe.interval == 0:
                loss = loss + locality.loss(decoder, weights, codes, domain, lpips)
            optimizer.zero_grad(set_to_none=True)
            (loss * active).sum().backward()
            optimizer.step()
            if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == last:
                if progress:
                    bar.set_postfix(loss=f"{float(loss.detach().mean()):.4f}", refresh=False)
                bar.update(step + 1 - bar.n)
            if step + 1 in on_steps:
                on_steps[step + 1](_reached(final, weights, active))
        bar.close()
        _keep_rows(final, weights, active)
    return final


def _keep_rows(final: Weights, weights: Weights, rows: Tensor) -> None:
    for name, value in weights.items():
        final[name][rows] = value.detach()[rows]


def _reached(final: Weights, weights: Weights, active: Tensor) -> Weights:
    """The weights each image has now: its current ones while it tunes, else those it stopped with."""
    return {name: torch.where(active.view(-1, *[1] * (value.ndim - 1)), value.detach(), final[name])
            for name, value in weights.items()}
