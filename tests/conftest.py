"""Shared fixtures: tiny generators and domains so every test runs in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.domains import DOMAINS, Domain
from e4e_bench.networks.generator import Generator

# Tiny models gain nothing from intra-op threads; one thread avoids oversubscription when
# several test processes share the cores. Benchmarks set their own thread count.
torch.set_num_threads(1)

TINY = Domain(
    name="tiny",
    resolution=32,
    crop_rows=None,
    encoder_input=(32, 32),
    eval_size=(32, 32),
    identity=None,
    edits=("ganspace", "sefa"),
    generator_asset=None,
)
# Same geometry as cars (content rows 64:448 of 512), scaled to 32 px.
TINY_CARS = Domain(
    name="tiny_cars",
    resolution=32,
    crop_rows=(4, 28),
    encoder_input=(24, 32),
    eval_size=(24, 32),
    identity=None,
    edits=("ganspace", "sefa"),
    generator_asset=None,
)


def make_tiny_generator(seed: int = 0, size: int = 32, style_dim: int = 64) -> Generator:
    """A small random generator whose noise strengths and biases are non-zero, so every key matters."""
    torch.manual_seed(seed)
    channels = {2**i: 32 for i in range(2, int(np.log2(size)) + 1)}
    generator = Generator(size, style_dim=style_dim, n_mlp=2, channels=channels)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return generator.eval().requires_grad_(False)


def rosinality_checkpoint(generator: Generator, latent_avg: torch.Tensor | None = None) -> dict:
    """The layout of rosinality's convert_weight.py output: {'g_ema', 'latent_avg'}."""
    ckpt = {"g_ema": generator.state_dict()}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    return ckpt


@pytest.fixture
def tiny_domain() -> Domain:
    with DOMAINS.registered(TINY.name, TINY), DOMAINS.registered(TINY_CARS.name, TINY_CARS):
        yield TINY


@pytest.fixture
def tiny_generator() -> Generator:
    return make_tiny_generator()


@pytest.fixture
def tiny_generator_ckpt(tmp_path, tiny_generator) -> Path:
    path = tmp_path / "tiny_generator.pt"
    save_checkpoint(rosinality_checkpoint(tiny_generator, tiny_generator.mean_latent(1000)[0]), path)
    return path


def write_images(folder: Path, images: torch.Tensor, names: list[str] | None = None) -> list[Path]:
    """Save [-1, 1] images as PNGs named 000.png, 001.png, ... (or `names`)."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    names = names or [f"{i:03d}.png" for i in range(len(images))]
    paths = [folder / name for name in names]
    for array, path in zip(pixels, paths):
        Image.fromarray(array).save(path)
    return paths


@pytest.fixture
def generated_images(tmp_path, tiny_generator) -> Path:
    """A folder of four images decoded from random W codes of the tiny generator."""
    with torch.no_grad():
        w = tiny_generator.mapping(torch.randn(4, tiny_generator.style_dim, generator=torch.Generator().manual_seed(1)))
        images = tiny_generator(w)
    write_images(tmp_path / "images", images)
    return tmp_path / "images"


@pytest.fixture
def two_threads():
    """Benchmarks: the suite runs on one thread; a benchmark uses the machine's two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def umask():
    """A umask other than the usual 022 (group may read, others nothing): new files must follow it."""
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def record_inversions(patch: pytest.MonkeyPatch, fail_on: int | None = None, fail_method: str | None = None,
                      stop_signal: int | None = None) -> list:
    """Record (method name, batch size) of every batch the built-in methods invert; optionally raise
    KeyboardInterrupt (as Ctrl-C) at call number `fail_on`, or whenever `fail_method` inverts, or
    instead send this process `stop_signal` there."""
    from baselines.method import ProjectionMethod
    from encoders.method import EncoderMethod

    calls: list[tuple[str, int]] = []
    for cls in (EncoderMethod, ProjectionMethod):
        real = cls.invert

        def recording(self, images, real=real):
            if (fail_on is not None and len(calls) == fail_on) or self.name == fail_method:
                if stop_signal is None:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), stop_signal)
            calls.append((self.name, len(images)))
            return real(self, images)

        patch.setattr(cls, "invert", recording)
    return calls
