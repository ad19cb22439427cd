"""Sliced Wasserstein distance on Laplacian pyramids, ProGAN's protocol (``metrics/sliced_wasserstein.py``).

Per image and pyramid level, 128 random 7x7 RGB patches of the 0..255 image become 147-d
descriptors; each set is normalised per channel with its own statistics; the distance is the
mean absolute gap between the sorted projections of the two sets onto 4 x 128 random unit
directions. Reported x1e3 per level and averaged. Randomness comes from a seed instead of
ProGAN's unseeded global NumPy state, drawn in fixed-size blocks so that the numbers do not
depend on the batch size. The two sets draw their patches independently, as in ProGAN, so a set
compared with itself scores its sampling noise floor, not 0 (ProGAN's "Reals2" pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from e4e_bench.data import to_uint8
from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics.registry import SIDES, MetricContext, MetricResult, register_metric

MIN_LEVEL_SIZE = 16
PATCH_HALF = 3  # 7x7 neighbourhoods
PATCHES_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
SCALE = 1e3
POSITION_BLOCK = 4096  # patches drawn at a time; fixed so the stream does not depend on batching


def binomial_kernel(like: torch.Tensor) -> torch.Tensor:
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=like.device, dtype=like.dtype)
    return torch.outer(taps, taps) / 256.0


def filter_mirror(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """scipy.ndimage.convolve(mode='mirror') with the symmetric 5x5 kernel, channels apart."""
    channels = images.shape[1]
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, kernel.expand(channels, 1, 5, 5), groups=channels)


def pyramid_down(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return filter_mirror(images, kernel)[..., ::2, ::2]


def pyramid_up(images: torch.Tensor, kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    batch, channels, height, width = images.shape
    spread = images.new_zeros(batch, channels, 2 * height, 2 * width)
    spread[..., ::2, ::2] = images
    # An odd-sized level comes back one pixel too big; ProGAN fails there, we drop that row/column.
    return filter_mirror(spread, 4 * kernel)[..., : size[0], : size[1]]


def level_count(height: int) -> int:
    """ProGAN: levels at H, H/2, ... while >= 16 (named by height)."""
    count = 0
    while height >= MIN_LEVEL_SIZE:
        count += 1
        height //= 2
    return count


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels, the last one being the Gaussian low-pass residual."""
    kernel = binomial_kernel(images)
    pyramid = [images]
    for _ in range(levels - 1):
        pyramid.append(pyramid_down(pyramid[-1], kernel))
        pyramid[-2] = pyramid[-2] - pyramid_up(pyramid[-1], kernel, pyramid[-2].shape[-2:])
    return pyramid


class PatchPositions:
    """A seeded stream of patch centres for one set and one level, in [3, size-4] as ProGAN draws them."""

    def __init__(self, seed: int, height: int, width: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.height, self.width = height, width
        self.buffer = torch.empty(0, 2, dtype=torch.long)

    def take(self, count: int) -> torch.Tensor:
        while len(self.buffer) < count:
            rows = torch.randint(PATCH_HALF, self.height - PATCH_HALF, (POSITION_BLOCK,), generator=self.generator)
            cols = torch.randint(PATCH_HALF, self.width - PATCH_HALF, (POSITION_BLOCK,), generator=self.generator)
            self.buffer = torch.cat([self.buffer, torch.stack([rows, cols], dim=1)])
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken


def extract_patches(level: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] and [B*128, 2] centres -> [B*128, 3, 7, 7] neighbourhoods (image-major)."""
    batch = level.shape[0]
    offsets = torch.arange(-PATCH_HALF, PATCH_HALF + 1, device=level.device)
    positions = positions.to(level.device)
    image = torch.arange(batch, device=level.device).repeat_interleave(PATCHES_PER_IMAGE)
    rows = positions[:, 0, None, None] + offsets[None, :, None]
    cols = positions[:, 1, None, None] + offsets[None, None, :]
    return level[image[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def normalise_descriptors(descriptors: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation over every descriptor and pixel of one set; -> [M, 147]."""
    mean = descriptors.mean(dim=(0, 2, 3), keepdim=True)
    std = descriptors.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    return ((descriptors - mean) / std).flatten(1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mean |sorted projection gap| over 4 repeats x 128 random unit directions."""
    distances = []
    for _ in range(DIR_REPEATS):
        directions = torch.randn(a.shape[1], DIRS_PER_REPEAT, generator=generator).to(a.device)
        directions = directions / directions.norm(dim=0, keepdim=True)
        projected_a = (a @ directions).sort(dim=0).values
        projected_b = (b @ directions).sort(dim=0).values
        distances.append((projected_a - projected_b).abs().mean())
    return torch.stack(distances).mean()


class SlicedWasserstein:
    """Set metric: feed both sets batch by batch, then ``result()``."""

    def __init__(self, context: MetricContext):
        self.device = context.device
        self.seed = context.seed
        self.descriptors: dict[str, list[list[torch.Tensor]]] = {side: [] for side in SIDES}
        self.positions: dict[str, list[PatchPositions]] = {}
        self.size: tuple[int, int] | None = None

    def wants(self, side: str) -> bool:
        return True

    def add(self, side: str, images: torch.Tensor) -> None:
        size = tuple(images.shape[-2:])
        if self.size is None:
            self.size = size
            if level_count(size[0]) == 0 or min(size) < 2 * PATCH_HALF + 2:
                raise E4EBenchError(f"SWD needs images at least {MIN_LEVEL_SIZE} px high; got {size[0]}x{size[1]}")
        elif size != self.size:
            raise E4EBenchError(f"SWD needs one image size for both sets; got {self.size} and {size}")
        pixels = to_uint8(images).to(images.dtype)  # the uint8 values ProGAN works on
        pyramid = laplacian_pyramid(pixels, level_count(size[0]))
        if side not in self.positions:
            offset = SIDES.index(side) * 1000
            self.positions[side] = [
                PatchPositions(self.seed * 1_000_003 + offset + index, *level.shape[-2:])
                for index, level in enumerate(pyramid)
            ]
        count = images.shape[0] * PATCHES_PER_IMAGE
        self.descriptors[side].append(
            [extract_patches(level, stream.take(count)).cpu() for level, stream in zip(pyramid, self.positions[side])]
        )

    def result(self) -> MetricResult:
        counts = {side: sum(len(batch[0]) for batch in self.descriptors[side]) // PATCHES_PER_IMAGE for side in SIDES}
        if counts["real"] != counts["fake"] or counts["real"] == 0:
            raise E4EBenchError(
                f"SWD compares sets of equal, non-zero size; got {counts['real']} real and {counts['fake']} fake images"
            )
        generator = torch.Generator().manual_seed(self.seed)
        per_level = {}
        for index, height in enumerate(self._level_heights()):
            real, fake = (
                normalise_descriptors(torch.cat([batch[index] for batch in self.descriptors[side]]).to(self.device))
                for side in SIDES
            )
            per_level[str(height)] = float(sliced_wasserstein(real, fake, generator)) * SCALE
        value = sum(per_level.values()) / len(per_level)
        return MetricResult(value, {"levels": per_level, "n": counts["real"]})

    def _level_heights(self) -> list[int]:
        return [self.size[0] // 2**index for index in range(level_count(self.size[0]))]


@register_metric(
    "swd",
    kind="set",
    title="SWD",
    in_run=True,
    on_edits=True,
    protocol=(
        "SWD x1e3 as ProGAN: 0..255 RGB, Laplacian pyramid (5x5 binomial, mirror padding) from H down to 16 px, "
        "128 7x7 patches per image per level, per-set per-channel normalisation, 4x128 random directions, "
        "mean |sorted projection gap|; value = mean over levels incl. the low-pass; seeded (--seed)"
    ),
)
def build_swd(context: MetricContext) -> SlicedWasserstein:
    return SlicedWasserstein(context)
