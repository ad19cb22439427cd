"""Procedural side-view toy cars: the images of the embedded `toy` domain.

Every image is a pure function of (seed, split, index): its parameters come from a NumPy generator
seeded with that triple, so any image can be redrawn alone and the train and test splits never
share a seed. Scenes are drawn with hard edges on a grid `SUPERSAMPLE` times finer than the
output and box-filtered down, which anti-aliases every edge.

The frame is letterboxed like the LSUN car generator's: the scene fills the middle 3/4 of the
rows (a 4:3 picture), the bars above and below are black.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

SPLITS = {"train": 0, "test": 1}
SUPERSAMPLE = 4
CONTENT_ROWS = (1 / 8, 7 / 8)  # fraction of the square frame's rows that hold the scene


@dataclass(frozen=True)
class CarScenes:
    """Parameters of N scenes, one array of shape [N] (colours [N, 3] in [0, 1]) per field.

    Lengths are in units of the picture's width; the picture is 0.75 high; y grows downwards.
    """

    sky_top: np.ndarray
    sky_bottom: np.ndarray
    ground: np.ndarray
    horizon: np.ndarray  # y where the ground starts
    body_colour: np.ndarray
    length: np.ndarray  # body length
    centre: np.ndarray  # x of the body's centre
    facing: np.ndarray  # +1 faces right, -1 faces left
    body_height: np.ndarray
    corner: np.ndarray  # corner radius of the body, as a fraction of its height
    wheel_radius: np.ndarray
    wheelbase: np.ndarray  # distance of each axle from the centre
    road_depth: np.ndarray  # how far below the horizon the wheels touch the ground
    cabin_bottom: np.ndarray  # cabin width at the roof line of the body
    cabin_taper: np.ndarray  # roof width / cabin_bottom
    cabin_height: np.ndarray
    cabin_shift: np.ndarray  # cabin centre offset towards the back


UNIFORMS = 24  # independent U(0, 1) numbers that make one scene


def sample_scenes(n: int, seed: int = 0, split: str = "train", start: int = 0) -> CarScenes:
    """Parameters of images `start .. start + n - 1` of a split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    uniforms = np.stack([np.random.default_rng((seed, SPLITS[split], start + i)).random(UNIFORMS) for i in range(n)])
    return scenes_from_uniforms(uniforms)


def scenes_from_uniforms(u: np.ndarray) -> CarScenes:
    """Scenes from `[N, UNIFORMS]` numbers in [0, 1]: the whole randomness of the toy domain.

    Through this map any source of uniforms draws toy cars, e.g. `ndtr(z)` of a Gaussian z, which
    is how the toy generator learns to imitate the renderer before its adversarial training.
    """
    def between(column: int, low: float, high: float) -> np.ndarray:
        return low + (high - low) * u[:, column]

    length = between(0, 0.5, 0.85)
    body_height = length * between(1, 0.2, 0.32)
    daylight = between(2, 0.5, 1.0)[:, None]
    sky_top = np.stack([between(3, 0.15, 0.45), between(4, 0.35, 0.65), between(5, 0.7, 1.0)], axis=1) * daylight
    return CarScenes(
        sky_top=sky_top,
        sky_bottom=np.clip(sky_top + between(6, 0.1, 0.4)[:, None], 0, 1),
        ground=_ground_colour(u[:, 7], u[:, 8], u[:, 9]),
        horizon=between(10, 0.42, 0.56),
        body_colour=_body_colour(u[:, 11], u[:, 12], u[:, 13]),
        length=length,
        centre=0.5 + (0.95 - length) * (u[:, 14] - 0.5),
        facing=np.where(u[:, 15] < 0.5, -1.0, 1.0),
        body_height=body_height,
        corner=between(16, 0.15, 0.45),
        wheel_radius=length * between(17, 0.1, 0.14),
        wheelbase=length * between(18, 0.29, 0.35),
        road_depth=between(19, 0.04, 0.14),
        cabin_bottom=length * between(20, 0.42, 0.62),
        cabin_taper=between(21, 0.5, 0.85),
        cabin_height=body_height * between(22, 0.6, 1.0),
        cabin_shift=length * between(23, -0.04, 0.1),
    )


def _ground_colour(kind: np.ndarray, shade: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """Grass, asphalt or sand, a third of the scenes each."""
    shade = 0.6 + 0.4 * shade
    grass = np.stack([0.2 * shade, (0.45 + 0.2 * tone) * shade, 0.15 * shade], axis=1)
    grey = 0.25 + 0.2 * tone
    asphalt = np.stack([grey, grey, grey * 1.05], axis=1)
    sand = np.stack([0.55 * shade, 0.45 * shade, 0.3 * shade], axis=1)
    choice = np.minimum((kind * 3).astype(int), 2)[:, None]
    return np.where(choice == 0, grass, np.where(choice == 1, asphalt, sand))


def _body_colour(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """HSV -> RGB; a fifth of the cars are nearly grey."""
    saturation = np.where(saturation < 0.2, 0.1, 0.55 + 0.4 * (saturation - 0.2) / 0.8)
    value = 0.35 + 0.6 * value
    k = (np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    return value[:, None] - (value * saturation)[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def render(scenes: CarScenes, size: int) -> torch.Tensor:
    """Scenes -> uint8 frames `[N, 3, size, size]` (letterboxed, the scene in the middle 3/4 of the rows)."""
    top, bottom = (round(size * r) for r in CONTENT_ROWS)
    height, width = (bottom - top) * SUPERSAMPLE, size * SUPERSAMPLE
    p = {f.name: torch.as_tensor(getattr(scenes, f.name), dtype=torch.float32) for f in fields(CarScenes)}
    x = ((torch.arange(width) + 0.5) / width).view(1, 1, -1)
    y = ((torch.arange(height) + 0.5) / width).view(1, -1, 1)

    def col(name):
        return p[name].view(-1, 1, 1)

    blend = (y / 0.75).clamp(0, 1).unsqueeze(1)
    image = p["sky_top"][:, :, None, None] * (1 - blend) + p["sky_bottom"][:, :, None, None] * blend
    image = image.expand(-1, -1, height, width).clone()

    def paint(mask: torch.Tensor, colour: torch.Tensor) -> None:
        image.copy_(torch.where(mask.unsqueeze(1), colour[:, :, None, None], image))

    paint((y >= col("horizon")).expand(-1, height, width), p["ground"])

    ground_contact = col("horizon") + col("road_depth")
    axle_y = ground_contact - col("wheel_radius")
    body_bottom = axle_y + 0.25 * col("wheel_radius")
    body_top = body_bottom - col("body_height")
    half = col("length") / 2
    radius = col("corner") * col("body_height")
    dx = ((x - col("centre")).abs() - (half - radius)).clamp(min=0)
    dy = ((y - (body_top + body_bottom) / 2).abs() - (col("body_height") / 2 - radius)).clamp(min=0)
    body = dx.square() + dy.square() <= radius.square()

    cabin_centre = col("centre") - col("facing") * col("cabin_shift")
    cabin_top = body_top - col("cabin_height")
    rise = ((body_top - y) / col("cabin_height")).clamp(0, 1)  # 0 at the roof line of the body, 1 at the roof
    cabin_half = col("cabin_bottom") / 2 * (1 - rise * (1 - col("cabin_taper")))
    cabin = (y >= cabin_top) & (y <= body_top + 1e-3) & ((x - cabin_centre).abs() <= cabin_half)
    paint(body | cabin, p["body_colour"])

    inset = 0.18 * col("cabin_height")
    window = (
        (y >= cabin_top + inset)
        & (y <= body_top - 0.1 * col("cabin_height"))
        & ((x - cabin_centre).abs() <= cabin_half - inset)
        & ((x - cabin_centre).abs() >= 0.04 * col("cabin_bottom"))
    )
    paint(window, torch.tensor([0.7, 0.82, 0.9]).expand(len(image), 3))

    light_y = (y - (body_top + 0.3 * col("body_height"))).abs() <= 0.12 * col("body_height")
    front = col("centre") + col("facing") * (half - 0.05 * col("length"))
    back = col("centre") - col("facing") * (half - 0.04 * col("length"))
    paint(light_y & ((x - front).abs() <= 0.035 * col("length")) & body, torch.tensor([1.0, 0.95, 0.6]).expand(len(image), 3))
    paint(light_y & ((x - back).abs() <= 0.025 * col("length")) & body, torch.tensor([0.85, 0.1, 0.1]).expand(len(image), 3))

    for side in (-1, 1):
        distance = ((x - (col("centre") + side * col("wheelbase"))).square() + (y - axle_y).square()).sqrt()
        paint(distance <= col("wheel_radius"), torch.tensor([0.08, 0.08, 0.08]).expand(len(image), 3))
        paint(distance <= 0.5 * col("wheel_radius"), torch.tensor([0.7, 0.7, 0.72]).expand(len(image), 3))

    scene = F.avg_pool2d(image, SUPERSAMPLE)
    frame = torch.zeros(len(image), 3, size, size)
    frame[:, :, top:bottom] = scene
    return (frame * 255).round().clamp(0, 255).to(torch.uint8)


def toy_images(n: int, size: int, seed: int = 0, split: str = "train", start: int = 0) -> torch.Tensor:
    """Images `start .. start + n - 1` of a split as uint8 frames `[n, 3, size, size]`, as the generator makes them."""
    return render(sample_scenes(n, seed, split, start), size)


def toy_photos(n: int, size: int, seed: int = 0, split: str = "train", start: int = 0) -> torch.Tensor:
    """The same images without the bars: the 4:3 pictures `[n, 3, 3 * size // 4, size]` a user inverts."""
    top, bottom = (round(size * r) for r in CONTENT_ROWS)
    return toy_images(n, size, seed, split, start)[:, :, top:bottom]
