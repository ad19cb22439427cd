"""Training the toy domain's StyleGAN2 on freshly rendered toy cars.

Two phases. First the generator imitates the renderer: the renderer draws a scene from 24
uniform numbers, and image `render(ndtr(z[:24]))` is the target of `G(mapping(z))` under an
L1 + L2 loss. This supervised start gives clean cars in a few minutes on a CPU, where adversarial
training from scratch needs hours to get past blobs. Then the usual adversarial training
sharpens it. The StyleGAN2 recipe at small scale: non-saturating logistic loss, lazy R1 on the discriminator,
style mixing, an EMA copy of the generator (the one that is shipped), Adam with betas (0, 0.99)
and the lazy-regularisation correction of lr and betas. Path-length regularisation is left out:
it mainly smooths W for projection at high resolution and doubles the cost of a step here.

The data never repeats and never touches the disk: step k trains on train-split images
`k * batch .. (k + 1) * batch - 1`. The whole state (networks, optimisers, random streams) is
snapshotted, so a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import json
import logging
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from e4e_bench.checkpoints import generator_checkpoint, read_checkpoint, save_checkpoint
from e4e_bench.data import from_uint8, save_images
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.reporting.grid import image_grid
from e4e_bench.seeding import seeded_initialisation
from e4e_bench.toy.discriminator import Discriminator
from e4e_bench.toy.render import UNIFORMS, render, scenes_from_uniforms, toy_images

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.pt"


@dataclass(frozen=True)
class GANOptions:
    size: int = 32
    channels: int = 64  # feature maps at every resolution, generator and discriminator
    style_dim: int = 64
    n_mlp: int = 4
    batch: int = 16
    lr: float = 0.002
    r1_gamma: float = 0.1
    r1_every: int = 16
    mixing: float = 0.9
    ema_kimg: float = 5.0  # EMA half-life in thousands of images
    imitation_kimg: float = 48.0  # images of the first, supervised phase (thousands)
    data_seed: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.imitation_kimg > 0 and self.style_dim < UNIFORMS:
            raise ValueError(f"imitating the renderer needs style_dim >= {UNIFORMS} (one z entry per scene number)")

    @property
    def channel_table(self) -> dict[int, int]:
        """Feature maps per resolution, 4 .. size: the same width everywhere."""
        return {2**i: self.channels for i in range(2, self.size.bit_length())}

    def generator(self) -> Generator:
        return Generator(self.size, style_dim=self.style_dim, n_mlp=self.n_mlp, channels=self.channel_table)

    def discriminator(self) -> Discriminator:
        return Discriminator(self.size, self.channel_table)


class GANRun:
    """Networks, optimisers and random streams of one GAN training run."""

    def __init__(self, options: GANOptions):
        self.options = options
        with seeded_initialisation(options.seed):
            self.generator = options.generator()
            self.discriminator = options.discriminator()
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        ratio = options.r1_every / (options.r1_every + 1)
        self.g_optim = torch.optim.Adam(self.generator.parameters(), lr=options.lr, betas=(0.0, 0.99))
        self.d_optim = torch.optim.Adam(
            self.discriminator.parameters(), lr=options.lr * ratio, betas=(0.0, 0.99**ratio)
        )
        self.rng = torch.Generator().manual_seed(options.seed)
        self.step = 0

    def state(self) -> dict:
        return {
            "options": asdict(self.options),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict(),
            "rng": self.rng.get_state(),
        }

    def load(self, state: dict, source: Path) -> None:
        if state["options"] != asdict(self.options):
            differ = sorted(k for k, v in asdict(self.options).items() if state["options"].get(k) != v)
            raise E4EBenchError(f"{source} was trained with other settings ({', '.join(differ)}); use another --out to start afresh")
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.g_optim.load_state_dict(state["g_optim"])
        self.d_optim.load_state_dict(state["d_optim"])
        self.rng.set_state(state["rng"])

    def fake_codes(self) -> torch.Tensor:
        """W+ codes of a batch, two mapped z mixed at a random row with probability `mixing`."""
        o, g = self.options, self.generator
        z = torch.randn(2, o.batch, o.style_dim, generator=self.rng)
        w = g.mapping(z.flatten(0, 1)).view(2, o.batch, o.style_dim)
        if torch.rand((), generator=self.rng) < o.mixing:
            crossover = int(torch.randint(1, g.n_latent, (), generator=self.rng))
            return g.style_mix(w[0], w[1], crossover)
        return g.to_wplus(w[0])

    def real_batch(self) -> torch.Tensor:
        o = self.options
        pixels = toy_images(o.batch, o.size, seed=o.data_seed, split="train", start=self.step * o.batch)
        return from_uint8(pixels)

    def train_step(self) -> dict[str, float]:
        o = self.options
        if self.step < o.imitation_kimg * 1000 / o.batch:
            stats = self._imitation_step()
        else:
            stats = self._adversarial_step()
        self._update_ema()
        self.step += 1
        return {k: float(v) for k, v in stats.items()}

    def _imitation_step(self) -> dict[str, torch.Tensor]:
        o = self.options
        z = torch.randn(o.batch, o.style_dim, generator=self.rng)
        uniforms = torch.special.ndtr(z[:, :UNIFORMS].double()).numpy()
        target = from_uint8(render(scenes_from_uniforms(uniforms), o.size))
        fake = self.generator(self.generator.mapping(z), noise="random", rng=self.rng)
        loss = (fake - target).abs().mean() + (fake - target).square().mean()
        self.g_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optim.step()
        return {"imitation_loss": loss.detach()}

    def _adversarial_step(self) -> dict[str, torch.Tensor]:
        o = self.options
        real = self.real_batch()

        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = self.generator(self.fake_codes(), noise="random", rng=self.rng)
        d_loss = F.softplus(self.discriminator(fake)).mean() + F.softplus(-self.discriminator(real)).mean()
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optim.step()

        stats = {"d_loss": d_loss.detach()}
        if self.step % o.r1_every == 0:
            real.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.discriminator(real).sum(), real, create_graph=True)
            r1 = grad.square().flatten(1).sum(1).mean()
            self.d_optim.zero_grad(set_to_none=True)
            (o.r1_gamma / 2 * r1 * o.r1_every).backward()
            self.d_optim.step()
            stats["r1"] = r1.detach()

        self.discriminator.requires_grad_(False)
        fake = self.generator(self.fake_codes(), noise="random", rng=self.rng)
        g_loss = F.softplus(-self.discriminator(fake)).mean()
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optim.step()
        stats["g_loss"] = g_loss.detach()
        return stats

    def _update_ema(self) -> None:
        beta = 0.5 ** (self.options.batch / (self.options.ema_kimg * 1000))
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
                ema_p.lerp_(p, 1 - beta)


def export_generator(run: GANRun, path: Path, n_mean: int = 10_000) -> None:
    """The EMA generator as a rosinality-format checkpoint, with its mean latent as `latent_avg`."""
    latent_avg = run.ema.mean_latent(n_mean, rng=torch.Generator().manual_seed(0))[0]
    save_checkpoint(generator_checkpoint(run.ema, latent_avg), path)


def train_gan(options: GANOptions, out: Path, kimg: float, resume: bool = False,
              snapshot_every: int = 500, sample_every: int = 500) -> GANRun:
    """Train until `kimg` thousand real images were shown; snapshots and samples go to `out`."""
    run = GANRun(options)
    snapshot = out / SNAPSHOT
    if snapshot.exists():
        if not resume:
            raise E4EBenchError(f"{snapshot} exists; pass --resume to continue it or use another --out")
        run.load(read_checkpoint(snapshot), snapshot)
    out.mkdir(parents=True, exist_ok=True)
    total = int(kimg * 1000 / options.batch)
    sample_codes = run.ema.to_wplus(run.ema.mapping(torch.randn(64, options.style_dim, generator=torch.Generator().manual_seed(1))))

    interrupted = []
    previous = signal.signal(signal.SIGTERM, lambda *_: interrupted.append(True))
    try:
        with open(out / "log.jsonl", "a") as log_file, tqdm(total=total, initial=run.step, desc="toy GAN", unit="step") as bar:
            while run.step < total and not interrupted:
                started = time.perf_counter()
                stats = run.train_step()
                bar.update()
                if run.step % 50 == 0:
                    stats.update(step=run.step, kimg=run.step * options.batch / 1000, s_per_step=time.perf_counter() - started)
                    log_file.write(json.dumps(stats) + "\n")
                    log_file.flush()
                if run.step % sample_every == 0:
                    _save_samples(run, sample_codes, out / "samples" / f"{run.step:07d}.png")
                if run.step % snapshot_every == 0:
                    save_checkpoint(run.state(), snapshot)
    except KeyboardInterrupt:
        interrupted.append(True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        save_checkpoint(run.state(), snapshot)
    if interrupted:
        raise KeyboardInterrupt
    return run


def _save_samples(run: GANRun, codes: torch.Tensor, path: Path) -> None:
    with torch.inference_mode():
        images = run.ema(codes.detach(), noise="const")
    save_images(image_grid(images, columns=8)[None], [path])
