"""The domain table: every size, crop and per-domain choice lives here and only here."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from e4e_bench.registry import Registry

# Identity network -> the metric that scores it (registered in e4e_bench.metrics.identity under these names).
IDENTITY_METRICS = {"arcface": "id_arcface", "moco": "id_moco"}


@dataclass(frozen=True)
class Domain:
    name: str
    resolution: int  # generator output size (square)
    crop_rows: tuple[int, int] | None  # rows of the generator frame holding the content, at `resolution`
    encoder_input: tuple[int, int]  # (H, W) fed to e4e/pSp
    eval_size: tuple[int, int]  # (H, W) at which paired metrics compare images
    identity: str | None  # a key of IDENTITY_METRICS ("arcface", "moco") or None
    edits: tuple[str, ...]  # edit families the domain is benchmarked with
    generator_asset: str | None  # assets-registry name of the official generator
    # The benchmark's edit (FID/SWD of edited images, LEC): a direction SPEC, its name and the additive factor.
    default_edit: str | None = None
    default_edit_name: str | None = None
    default_edit_factor: float = 0.0
    # Generator keywords besides `size` (empty: config-f): what random-weight builds and `bench` use
    generator_architecture: tuple[tuple[str, object], ...] = ()

    @property
    def edit_strengths(self) -> tuple[float, ...]:
        """The strengths `run --sweep` scores the edit at by default: half, once and 1.5 times the benchmark's."""
        return tuple(multiple * self.default_edit_factor for multiple in (0.5, 1.0, 1.5))

    def __post_init__(self) -> None:
        if self.identity is not None and self.identity not in IDENTITY_METRICS:
            raise ValueError(
                f"domain {self.name!r}: identity {self.identity!r} is not one of {', '.join(IDENTITY_METRICS)}"
            )

    @property
    def identity_metric(self) -> str | None:
        """The registered metric name of the domain's identity similarity (None: the domain has none)."""
        return None if self.identity is None else IDENTITY_METRICS[self.identity]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the content after the crop, at full generator resolution."""
        if self.crop_rows is None:
            return (self.resolution, self.resolution)
        top, bottom = self.crop_rows
        return (bottom - top, self.resolution)

    @property
    def generator_kwargs(self) -> dict:
        """`Generator(**domain.generator_kwargs)` has the domain's architecture (random weights)."""
        kwargs = {"size": self.resolution, **dict(self.generator_architecture)}
        if "channels" in kwargs:
            kwargs["channels"] = dict(kwargs["channels"])
        return kwargs

    def content_rows(self, size: int) -> tuple[int, int]:
        """[top, bottom) of the content in a square generator frame of side `size` (crop scaled to it)."""
        if self.crop_rows is None:
            return (0, size)
        top, bottom = (row * size // self.resolution for row in self.crop_rows)
        return (top, bottom)

    def content_size(self, size: int) -> tuple[int, int]:
        """(H, W) of the content of a square generator frame of side `size`."""
        top, bottom = self.content_rows(size)
        return (bottom - top, size)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """Crop a square generator frame `[..., S, S]` to the content rows, scaled to its size S."""
        top, bottom = self.content_rows(images.shape[-2])
        return images[..., top:bottom, :]

    def resize_frames(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Generator frames `[B, 3, S, S]` -> the content at (H, W), cropped then area-averaged.

        The official losses pool to 256x256 first and crop cars rows 32:224 after; cropping first
        and pooling to 192x256 averages the same pixels.
        """
        return F.adaptive_avg_pool2d(self.crop(images), size)


def lsun_256(name: str) -> Domain:
    """The 256 px LSUN config-f domains (horse, church): same geometry, MoCo similarity."""
    return Domain(
        name=name,
        resolution=256,
        crop_rows=None,
        encoder_input=(256, 256),
        eval_size=(256, 256),
        identity="moco",
        edits=("ganspace", "sefa"),
        generator_asset=f"stylegan2-{name}",
        default_edit="sefa:0",
        default_edit_name="SeFa 0",
        default_edit_factor=5.0,
    )


DOMAINS: Registry[Domain] = Registry("domain")


def register_domain(domain: Domain) -> Domain:
    return DOMAINS.register(domain.name, domain)


register_domain(
    Domain(
        name="faces",
        resolution=1024,
        crop_rows=None,
        encoder_input=(256, 256),
        eval_size=(256, 256),
        identity="arcface",
        edits=("interfacegan", "ganspace"),
        generator_asset="stylegan2-ffhq",
        default_edit="interfacegan:e4e-interfacegan-age",  # e4e's own LEC example
        default_edit_name="age",
        default_edit_factor=3.0,
    )
)
register_domain(
    Domain(
        name="cars",
        resolution=512,
        crop_rows=(64, 448),
        encoder_input=(192, 256),
        eval_size=(192, 256),
        identity="moco",
        edits=("ganspace", "sefa"),
        generator_asset="stylegan2-car",
        default_edit="ganspace:e4e-ganspace-cars:viewpoint",
        default_edit_name="viewpoint",
        default_edit_factor=2.0,
    )
)
for _name in ("horse", "church"):
    register_domain(lsun_256(_name))
register_domain(
    Domain(
        name="toy",  # ships inside the package (e4e_bench/toy): the offline default, see `toy-gan`
        resolution=32,
        crop_rows=(4, 28),  # the cars geometry scaled down: a 4:3 picture in the middle 3/4 of the rows
        encoder_input=(24, 32),
        eval_size=(72, 96),  # 3x the picture (PIL bilinear): LPIPS-AlexNet's features need about 64 px
        identity=None,
        edits=("ganspace", "sefa"),
        generator_asset="toy-generator",
        default_edit="ganspace:toy-ganspace:size",  # GANSpace component 0 on rows 0:3: the car grows, same colour
        default_edit_name="size",
        default_edit_factor=2.0,
        generator_architecture=(("style_dim", 64), ("n_mlp", 4), ("channels", ((4, 64), (8, 64), (16, 64), (32, 64)))),
    )
)


def get_domain(name: str) -> Domain:
    return DOMAINS.lookup(name)
