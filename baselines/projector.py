"""Batched projection of images into W or W+ of a StyleGAN2 generator (the official projectors' recipe).

The recipe is rosinality's and NVIDIA's `projector.py` (reference: generator_and_optimization.md §4):
start from the mean of 10,000 mapped samples, Adam with a ramped learning rate, decaying Gaussian
noise on the latent, per-layer noise maps optimised under an autocorrelation penalty, LPIPS-VGG at
256 px plus an optional MSE term. Unlike the official scripts, N images are optimised at once and stay
independent: the loss is a sum of per-image losses (Adam is elementwise), the noise prior and its
renormalisation are per image, and each image draws its latent noise from its own seeded generator,
so an image's result does not depend on its batch-mates. For cropped domains (cars) the loss sees
only the content rows of the generator frame, not the letterbox.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from baselines.noise_regularization import noise_regularization, normalize_noise_
from baselines.schedules import latent_noise_scale, learning_rate
from baselines.target_lpips import TargetLPIPS
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods.options import option
from e4e_bench.networks.generator import sample_w

Space = Literal["w", "wplus"]
SPACES = ("w", "wplus")
LOSS_RESOLUTION = 256
PROGRESS_EVERY = 10


@dataclass(frozen=True)
class ProjectorConfig:
    """Projector settings; the defaults are the official ones."""

    steps: int = option(1000, "optimisation steps per batch (e.g. 20 for a smoke run)")
    lr: float = option(0.1, "peak Adam learning rate, ramped up over lr_rampup and down over lr_rampdown of the steps")
    lr_rampup: float = option(0.05, "fraction of the steps with a linear learning-rate ramp-up")
    lr_rampdown: float = option(0.25, "fraction of the steps with a cosine learning-rate ramp-down")
    latent_noise: float = option(0.05, "initial std of the noise added to the latent, in units of w_std")
    latent_noise_ramp: float = option(0.75, "fraction of the steps after which the latent noise is 0")
    noise_regularize: float = option(1e5, "weight of the noise maps' autocorrelation penalty")
    lpips_weight: float = option(1.0, "weight of LPIPS-VGG at 256 px; its ImageNet VGG16 backbone comes from "
                                 "`python -m e4e_bench assets fetch lpips-vgg`; 0 runs offline without it")
    mse_weight: float = option(0.0, "weight of the pixel MSE at 256 px")
    optimize_noise: bool = option(True, "optimise the per-layer noise maps too; off decodes with the stored noise")
    w_avg_samples: int = option(10_000, "mapped samples whose mean is the start and whose spread scales the latent noise")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise E4EBenchError(f"--steps must be at least 1, got {self.steps}; pass e.g. --steps 1000.")
        if self.w_avg_samples < 2:
            raise E4EBenchError(f"w_avg_samples must be at least 2, got {self.w_avg_samples}.")
        for name in ("lr_rampup", "lr_rampdown", "latent_noise_ramp"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise E4EBenchError(f"{name} must be in (0, 1], got {getattr(self, name)}.")
        for name in ("lr", "latent_noise", "noise_regularize", "lpips_weight", "mse_weight"):
            if not getattr(self, name) >= 0.0:  # NaN too
                flag = "--" + name.replace("_", "-")
                raise E4EBenchError(f"{flag} must be >= 0, got {getattr(self, name)}.")
        if self.lpips_weight == 0.0 and self.mse_weight == 0.0:
            raise E4EBenchError("--lpips-weight and --mse-weight are both 0, so there is nothing to fit; "
                                "set at least one of them above 0.")


@dataclass(frozen=True)
class LatentStatistics:
    """Mean w `[style_dim]` and w_std, the square root of the total variance of mapped samples."""

    mean: Tensor
    std: float


@dataclass(frozen=True)
class ProjectionResult:
    """Per image: codes `[B, n_latent, style_dim]`, noise maps (num_layers x `[B, 1, H, W]`), the last step's loss `[B]`."""

    codes: Tensor
    noise: list[Tensor]
    loss: Tensor


@torch.no_grad()
def latent_statistics(generator: nn.Module, n_samples: int = 10_000, seed: int = 123) -> LatentStatistics:
    """Map `n_samples` seeded z through the mapping network; NVIDIA's projector uses seed 123."""
    w = sample_w(generator, n_samples, torch.Generator().manual_seed(seed))
    mean = w.mean(dim=0)
    std = float(((w - mean) ** 2).sum() / n_samples) ** 0.5
    return LatentStatistics(mean=mean, std=std)


def project(
    generator: nn.Module,
    targets: Tensor,
    *,
    space: Space,
    config: ProjectorConfig,
    seeds: Sequence[int],
    lpips: nn.Module | None = None,
    domain: Domain | None = None,
    statistics: LatentStatistics | None = None,
    progress: bool = False,
    on_steps: Mapping[int, Callable[[ProjectionResult], None]] | None = None,
) -> ProjectionResult:
    """Project `targets` (`[B, 3, H, W]` in [-1, 1], `domain`'s cropped frame) into `space`, one seed per image.

    `lpips` (an `lpips.LPIPS`, inputs in [-1, 1]) is needed when `config.lpips_weight > 0`;
    `statistics` defaults to `latent_statistics(generator, config.w_avg_samples)`; without a `domain`
    the whole square frame is compared. `on_steps[k](result)` is called with the result after `k`
    steps of the `config.steps`-step recipe (its schedules unchanged), which then stops at the
    largest `k`; what it returns is the result there.
    """
    if space not in SPACES:
        raise E4EBenchError(f"unknown projection space {space!r}; use one of {', '.join(SPACES)}.")
    _check_targets(targets, domain.content_size(generator.size) if domain else (generator.size, generator.size))
    if len(seeds) != targets.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {targets.shape[0]} images")
    if config.lpips_weight > 0 and lpips is None:
        raise ValueError("config.lpips_weight > 0 needs an lpips network")
    if statistics is None:
        statistics = latent_statistics(generator, config.w_avg_samples)
    # The caller may evaluate under inference_mode; optimisation needs autograd and normal tensors.
    with torch.inference_mode(False), torch.enable_grad():
        return _optimize(generator, targets.clone(), space, config, seeds, lpips, domain, statistics, progress,
                         on_steps or {})


def _check_targets(targets: Tensor, expected_hw: tuple[int, int]) -> None:
    if targets.ndim != 4 or targets.shape[1] != 3 or tuple(targets.shape[2:]) != expected_hw:
        raise E4EBenchError(
            f"images of shape {tuple(targets.shape)} do not match the generator's frame: expected "
            f"[N, 3, {expected_hw[0]}, {expected_hw[1]}]; load the images at the domain's frame size "
            f"(pick the --domain that matches the --generator).")


def _optimize(generator, targets, space, config, seeds, lpips, domain, statistics, progress, on_steps):
    batch = targets.shape[0]
    rngs = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    rows = (1,) if space == "w" else (generator.n_latent,)
    latent = statistics.mean.to(targets).expand(batch, *rows, -1).clone().requires_grad_(True)
    noises = _initial_noise(generator, rngs, targets) if config.optimize_noise else []
    factor = max(1, generator.size // LOSS_RESOLUTION)
    small_targets = _downsample(targets, factor)
    lpips_distance = TargetLPIPS(lpips, small_targets) if config.lpips_weight > 0 else None

    def result() -> ProjectionResult:
        final_noise = [n.detach() for n in noises] or [b.expand(batch, -1, -1, -1) for b in generator.noise_buffers()]
        codes = latent.detach().expand(batch, generator.n_latent, -1).contiguous()
        return ProjectionResult(codes=codes, noise=[n.clone() for n in final_noise], loss=per_image.detach())

    last = max(on_steps, default=config.steps)
    if not 0 <= last <= config.steps:
        raise ValueError(f"step {last} is outside the recipe's 0..{config.steps}")
    per_image = torch.full((batch,), math.nan, device=targets.device)
    if 0 in on_steps:
        on_steps[0](result())
    optimizer = torch.optim.Adam([latent, *noises], lr=config.lr)
    bar = tqdm(total=last, desc=f"opt_{space} x{batch}", disable=not progress, leave=False)
    for step in range(last):
        t = step / config.steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t, config.lr, config.lr_rampup, config.lr_rampdown)
        sigma = latent_noise_scale(t, statistics.std, config.latent_noise, config.latent_noise_ramp)
        codes = latent + sigma * _per_image_normal(rngs, latent.shape[1:], latent) if sigma > 0 else latent
        images = generator(codes.squeeze(1) if space == "w" else codes, noise=noises or "const")
        images = domain.crop(images) if domain is not None else images
        per_image = _reconstruction_loss(_downsample(images, factor), small_targets, config, lpips_distance)
        total = per_image.sum()
        if noises:
            total = total + config.noise_regularize * noise_regularization(noises).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward(inputs=[latent, *noises])
        optimizer.step()
        if noises:
            normalize_noise_(noises)
        if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == last:
            if progress:
                bar.set_postfix(loss=f"{float(per_image.detach().mean()):.4f}", refresh=False)
            bar.update(step + 1 - bar.n)
        if step + 1 in on_steps:
            on_steps[step + 1](result())
    bar.close()
    return result()


def _initial_noise(generator: nn.Module, rngs: list[torch.Generator], like: Tensor) -> list[Tensor]:
    """Fresh N(0, 1) maps, shaped like the generator's noise buffers, each image from its own generator."""
    shapes = [buffer.shape[1:] for buffer in generator.noise_buffers()]
    per_image = [[torch.randn(shape, generator=rng) for shape in shapes] for rng in rngs]
    return [torch.stack(maps).to(like).requires_grad_(True) for maps in zip(*per_image)]


def _per_image_normal(rngs: list[torch.Generator], shape: torch.Size, like: Tensor) -> Tensor:
    # One draw per image from its own generator keeps a batch equal to the same images run alone.
    return torch.stack([torch.randn(shape, generator=rng) for rng in rngs]).to(like)


def _downsample(images: Tensor, factor: int) -> Tensor:
    """Mean over factor x factor blocks, the official projectors' reduction to 256 px."""
    return images if factor == 1 else F.avg_pool2d(images, factor)


def _reconstruction_loss(images: Tensor, targets: Tensor, config: ProjectorConfig,
                         lpips_distance: TargetLPIPS | None) -> Tensor:
    """Per-image `lpips_weight * LPIPS + mse_weight * MSE` -> `[B]`."""
    loss = images.new_zeros(images.shape[0])
    if lpips_distance is not None:
        loss = loss + config.lpips_weight * lpips_distance(images)
    if config.mse_weight > 0:
        loss = loss + config.mse_weight * ((images - targets) ** 2).mean(dim=(1, 2, 3))
    return loss
