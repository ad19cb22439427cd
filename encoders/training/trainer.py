"""The e4e/pSp/ReStyle/HyperStyle training loop: steps, evaluation, grids, logs and resumable official-layout
checkpoints.

A ReStyle step is `n_iters_per_batch` passes, each with its own losses and backward and one optimiser
step at the end, as the official coaches do; its evaluation scores the last pass. ReStyle-e4e's
discriminator step takes the first pass's codes as e4e's takes its step's: the codes the decoder
sees, latent_avg included (the official ReStyle-e4e coach feeds it the encoder's raw output on
[image, average image], without latent_avg, while its adversarial loss scores codes with it).
A HyperStyle step is `n_iters_per_batch` passes of the hypernetwork in the same way, from the frozen
W encoder's reconstruction, with the generator's stored noise (the official coach's
`randomize_noise=False`); its checkpoints hold `hypernet.*` and `decoder.*`, the W encoder stays its own file.

One process per device (torchrun for several). Every random draw comes from an explicit
torch.Generator whose state is saved with the checkpoint, so `--resume` continues the very
stream an uninterrupted run would have used:
  * the data order: a seeded permutation per epoch (ResumableDistributedSampler);
  * per rank: the horizontal flips and the generator's per-layer noise;
  * shared by all ranks: the discriminator's real codes and its pools (so every rank holds the
    same pools and, fed the all-gathered fake codes, takes the same discriminator step).

One deliberate difference from the official coach: the discriminator step reuses the encoder
codes of the step (detached) instead of running the encoder a second time under no_grad. The
codes are the same (same weights, same batch); BatchNorm running statistics move once per step
instead of twice, and a step costs one encoder forward less.

Saving: `iteration_N.pt` every --save-interval steps and after the last step; in between, a
snapshot after --snapshot-minutes without a save and whenever SIGINT or SIGTERM asks the loop to
stop (stop_signals.py); a snapshot is removed once a newer file supersedes it.

Step numbering: `global_step` counts finished steps; the step with index s (0-based) runs at the
progressive stage of s and applies R1 when s % d_reg_every == 0; `iteration_N.pt` holds the state
after N steps.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from e4e_bench.checkpoints import read_checkpoint, save_checkpoint
from e4e_bench.data import ImageFolder, save_images
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import official_checkpoint
from encoders.hyperstyle import HyperStyle
from encoders.hyperstyle_checkpoint import official_hyperstyle_checkpoint
from encoders.inverter import Inverter
from e4e_bench.distributed import ProcessGroup
from encoders.training.sampler import ResumableDistributedSampler
from encoders.training.latent_discriminator import (
    LatentCodesDiscriminator,
    LatentCodesPool,
    discriminator_loss,
    r1_penalty,
)
from encoders.training.losses import EncoderObjective
from encoders.restyle import ReStyleInverter
from encoders.training.options import PROGRESSIVE, TrainOptions
from encoders.training.progressive import active_rows, stage_at
from encoders.training.ranger import Ranger
from encoders.training.stop_signals import StopRequests, ignore_stop_signals

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "log.jsonl"
ITERATION_PATTERN = re.compile(r"iteration_(\d+)\.pt")
# Options a resumed run may change: they do not alter the training trajectory.
RESUMABLE_OVERRIDES = frozenset({"exp_dir", "max_steps", "device", "workers", "test_workers", "board_interval",
                                 "image_interval", "val_interval", "save_interval", "snapshot_minutes",
                                 "checkpoint_path"})
STREAMS = {"flip": 1, "noise": 2, "discriminator": 3}


def stream(seed: int, name: str, rank: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed * 1_000_003 + STREAMS[name] * 1009 + rank)


@dataclass
class TrainingState:
    """Everything a step changes, besides module weights and optimiser moments."""

    global_step: int = 0
    best_val_loss: float | None = None
    rngs: dict[str, torch.Generator] = field(default_factory=dict)
    pools: dict[str, LatentCodesPool] = field(default_factory=dict)


@dataclass
class Run:
    opts: TrainOptions
    group: ProcessGroup
    domain: Domain
    net: Inverter | HyperStyle
    net_ddp: nn.Module  # the net, wrapped in DistributedDataParallel under torchrun
    objective: EncoderObjective
    optimizer: torch.optim.Optimizer
    discriminator: LatentCodesDiscriminator | None
    discriminator_optimizer: torch.optim.Optimizer | None
    state: TrainingState
    out: Path
    average_image: Tensor | None = None  # ReStyle: G(latent_avg) at the input size, the first step's companion

    def stage(self, step: int) -> int | None:
        steps = self.opts.progressive_steps
        return None if steps is None else stage_at(step, steps)

    def refresh_average_image(self) -> None:
        """Decode G(latent_avg) once (ReStyle only): after building, and after a resume restores latent_avg."""
        if isinstance(self.net, ReStyleInverter):
            with torch.no_grad():
                self.average_image = self.net.average_image(self.to_input)

    def to_input(self, frames: Tensor) -> Tensor:
        return self.domain.resize_frames(frames, self.opts.input_size)

    def passes(self, images: Tensor, noise: str, rng: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(reconstructions at the input size after the domain crop, the codes the decoder saw) of each pass:
        one for e4e/pSp; for ReStyle and HyperStyle one per refinement step, each fed the previous one's output
        detached, as the official coaches do (so each step's losses train the network on that step alone).
        `noise` "random" marks training (HyperStyle trains with the stored noise, as officially)."""
        net = self.net_ddp if noise == "random" else self.net
        if isinstance(self.net, HyperStyle):
            yield from self.hyperstyle_passes(net, images)
            return
        if self.average_image is None:
            frames, codes = net(images, noise, rng)
            yield self.to_input(frames), codes
            return
        previous, codes = self.average_image.expand(images.shape[0], -1, -1, -1), None
        for _ in range(self.opts.n_iters_per_batch):
            frames, codes = net(images, previous, codes, noise, rng)
            recon = self.to_input(frames)
            yield recon, codes
            previous, codes = recon.detach(), codes.detach()


    def hyperstyle_passes(self, net: nn.Module, images: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        codes = self.net.w_codes(images)
        with torch.no_grad():  # the W encoder's reconstruction is an input, as the official coach makes it
            previous = self.to_input(self.net.decode(codes))
        total = None
        for done in range(self.opts.n_iters_per_batch):
            frames, total = net(images, codes, previous, total, done)
            recon = self.to_input(frames)
            yield recon, codes
            previous = recon.detach()


def trained_network(net: Inverter | HyperStyle) -> nn.Module:
    """What the optimiser trains (the decoder aside): the encoder, or HyperStyle's hypernetwork."""
    return net.hypernet if isinstance(net, HyperStyle) else net.encoder


def build_optimizer(opts: TrainOptions, net: Inverter | HyperStyle) -> torch.optim.Optimizer:
    params = list(trained_network(net).parameters())
    if opts.train_decoder:
        params += list(net.decoder.parameters())
    if opts.optim_name == "adam":
        return torch.optim.Adam(params, lr=opts.learning_rate)
    return Ranger(params, lr=opts.learning_rate)


def make_run(opts: TrainOptions, group: ProcessGroup, domain: Domain, net: Inverter | HyperStyle,
             objective: EncoderObjective) -> Run:
    device = group.device
    net = net.to(device)
    net.decoder.requires_grad_(opts.train_decoder)
    # e4e leaves the heads of inactive offsets out of the graph, and a hypernetwork that tunes no shared layer its
    # shared head, so DDP must look for unused ones.
    unused = opts.method in PROGRESSIVE or (isinstance(net, HyperStyle)
                                            and not set(net.hypernet.shared) & set(net.hypernet.tuned))
    net_ddp = (DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                       find_unused_parameters=unused)
               if group.distributed else net)
    discriminator = discriminator_optimizer = None
    if opts.w_discriminator_lambda > 0:
        discriminator = LatentCodesDiscriminator(net.decoder.style_dim).to(device)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=opts.w_discriminator_lr)
    state = TrainingState(
        rngs={"flip": stream(opts.seed, "flip", group.rank),
              "noise": stream(opts.seed, "noise", group.rank, device),
              "discriminator": stream(opts.seed, "discriminator", 0)},
        pools={"real": LatentCodesPool(opts.w_pool_size if opts.use_w_pool else 0),
               "fake": LatentCodesPool(opts.w_pool_size if opts.use_w_pool else 0)},
    )
    run = Run(opts, group, domain, net, net_ddp, objective.to(device), build_optimizer(opts, net),
              discriminator, discriminator_optimizer, state, Path(opts.exp_dir))
    run.refresh_average_image()
    return run


# -- one step ---------------------------------------------------------------------------------------
def random_flip(images: Tensor, rng: torch.Generator) -> Tensor:
    flip = (torch.rand(images.shape[0], generator=rng) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def discriminator_step(run: Run, codes: Tensor, step: int) -> dict[str, Tensor]:
    """One logistic step of the latent discriminator (plus lazy R1), identical on every rank.

    `codes` are this step's encoder codes (detached): the official coach runs the encoder a second
    time for them, with the same weights and batch, so they are the same codes.
    """
    d, rng, decoder = run.discriminator, run.state.rngs["discriminator"], run.net.decoder
    d.requires_grad_(True)
    with torch.no_grad():
        stage = run.stage(step)
        fake = codes if stage is None else codes[:, active_rows(stage, codes.shape[1])]
        fake = run.group.all_gather(fake)
        z = torch.randn(fake.shape[0], decoder.style_dim, generator=rng).to(codes.device)
        real = run.state.pools["real"].query(decoder.mapping(z), rng)
        fake = run.state.pools["fake"].query(fake, rng)
        if fake.ndim == 3:
            fake = fake[:, 0]
    loss = discriminator_loss(d(real), d(fake))
    run.discriminator_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.discriminator_optimizer.step()
    parts = {"discriminator_loss": loss.detach()}
    if step % run.opts.d_reg_every == 0:
        r1 = run.opts.r1 / 2 * r1_penalty(d, real) * run.opts.d_reg_every
        run.discriminator_optimizer.zero_grad(set_to_none=True)
        r1.backward()
        run.discriminator_optimizer.step()
        parts["discriminator_r1_loss"] = r1.detach()
    d.requires_grad_(False)
    return parts


def set_stage(run: Run, stage: int | None) -> None:
    network = trained_network(run.net)
    if hasattr(network, "set_stage"):
        network.set_stage(network.last_stage if stage is None else stage)


def train_step(run: Run, images: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """One discriminator step, then one encoder step whose gradients add up over the passes (ReStyle's
    refinement steps, each with its own losses and backward); returns the last pass's loss terms, the
    (flipped) inputs and their last reconstructions."""
    step = run.state.global_step
    stage = run.stage(step)
    set_stage(run, stage)
    images = random_flip(images, run.state.rngs["flip"]) if run.opts.flip else images
    run.optimizer.zero_grad(set_to_none=True)
    parts = {}
    for index, (recon, codes) in enumerate(run.passes(images, "random", run.state.rngs["noise"])):
        if index == 0 and run.discriminator is not None:
            parts = discriminator_step(run, codes.detach(), step)
        total, terms = run.objective(recon, images, codes, run.net.latent_avg, stage, run.discriminator)
        total.backward()
    run.optimizer.step()
    run.state.global_step += 1
    return {"loss": total.detach(), **terms, **parts}, images, recon.detach()


# -- evaluation, grids, logs ------------------------------------------------------------------------
@torch.inference_mode()
def evaluate(run: Run, loader: DataLoader) -> tuple[dict[str, float], tuple[Tensor, Tensor] | None]:
    """Mean loss terms over this rank's share of the held-out images, summed over ranks.

    Evaluation decodes with the generator's stored noise (deterministic; it draws from no
    training stream) and at the stage the last step used.
    """
    run.net.eval()
    sums: dict[str, Tensor] = {}
    count = torch.zeros((), device=run.group.device)
    first = None
    for images in loader:
        images = images.to(run.group.device)
        *_, (recon, codes) = run.passes(images, "const")
        total, terms = run.objective(recon, images, codes, run.net.latent_avg,
                                     run.stage(run.state.global_step - 1), run.discriminator)
        for name, value in {"loss": total, **terms}.items():
            sums[name] = sums.get(name, 0) + value * images.shape[0]
        count += images.shape[0]
        if first is None:
            first = (images, recon)
    run.net.train()
    names = sorted(sums)
    totals = run.group.sum(torch.stack([sums[n] for n in names] + [count]).double())
    return {name: float(totals[i] / totals[-1]) for i, name in enumerate(names)}, first


def save_grid(inputs: Tensor, recons: Tensor, path: Path, n: int) -> None:
    """One PNG, one row per image: input | reconstruction."""
    pairs = torch.cat([inputs[:n], recons[:n]], dim=3)
    save_images(torch.cat(list(pairs), dim=1)[None].cpu(), [path])


class MetricLog:
    """JSONL log (one object per record), mirrored to TensorBoard when it is installed.

    A run resumed from the checkpoint of step N first drops the records after step N: the steps
    that follow are run again and log themselves again.
    """

    def __init__(self, out: Path, enabled: bool, resumed_step: int | None = None):
        self.path = out / LOG_FILE
        self.enabled = enabled
        self.board = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None and self.path.is_file():
            self.drop_records_after(resumed_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resumed_step is None else resumed_step + 1
            self.board = SummaryWriter(str(out / "tensorboard"), purge_step=purge)
        except ImportError:
            log.info("tensorboard is not installed; logging to %s only", self.path)

    def drop_records_after(self, step: int) -> None:
        lines = self.path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        if len(kept) < len(lines):
            tmp = self.path.with_name(f".{LOG_FILE}.tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, self.path)

    def write(self, split: str, step: int, values: dict[str, float], **extra) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, **{k: round(v, 7) for k, v in values.items()}, **extra}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None:
            for name, value in values.items():
                self.board.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


# -- checkpoints ----------------------------------------------------------------------------------
def checkpoint_dict(run: Run, rng_states: list[dict] | None) -> dict:
    """The official layout (`state_dict`, `opts`, `latent_avg`, and with `--save_training_data` the
    optimiser and discriminator states), plus what an exact resume needs (pools, every rank's random
    streams); `rng_states` None leaves the training state out."""
    progress = {"global_step": run.state.global_step, "best_val_loss": run.state.best_val_loss}
    if isinstance(run.net, HyperStyle):
        ckpt = official_hyperstyle_checkpoint(run.net, run.opts.to_opts_dict(), **progress)
    else:
        ckpt = official_checkpoint(run.net, run.opts.to_opts_dict()) | progress
    if rng_states is None:
        return ckpt
    ckpt["optimizer"] = run.optimizer.state_dict()
    if run.discriminator is not None:
        ckpt["discriminator_state_dict"] = run.discriminator.state_dict()
        ckpt["discriminator_optimizer_state_dict"] = run.discriminator_optimizer.state_dict()
    ckpt["w_pools"] = {name: pool.state_dict() for name, pool in run.state.pools.items()}
    ckpt["rng_states"] = rng_states
    return ckpt


def save(run: Run, name: str, training_state: bool) -> Path:
    """Every rank hands rank 0 its random streams; rank 0 alone builds and writes the file."""
    rng_states = None
    if training_state:
        rng_states = run.group.all_gather_object({key: g.get_state() for key, g in run.state.rngs.items()})
    path = run.out / CHECKPOINT_DIR / name
    if run.group.is_main:
        save_checkpoint(checkpoint_dict(run, rng_states), path)
    return path


class Saves:
    """The resumable iteration_N.pt files of one session. Those of --save-interval and of the last
    step are kept; a snapshot (wall time, or a stop signal) is removed once a newer file supersedes it."""

    def __init__(self, run: Run):
        self.run = run
        self.last_time = time.monotonic()
        self.last: Path | None = None
        self.last_is_snapshot = False

    def write(self, snapshot: bool) -> Path:
        name = f"iteration_{self.run.state.global_step}.pt"
        if self.last is not None and self.last.name == name:
            return self.last  # this step is saved already
        path = save(self.run, name, training_state=True)
        if self.last_is_snapshot and self.run.group.is_main:
            self.last.unlink(missing_ok=True)
        self.last, self.last_is_snapshot, self.last_time = path, snapshot, time.monotonic()
        return path

    def agree(self, stop_requested: bool, snapshot_minutes: float) -> tuple[bool, bool]:
        """(stop now, snapshot now), the same on every rank: a signal or a clock may reach one rank only."""
        due = snapshot_minutes > 0 and time.monotonic() - self.last_time >= snapshot_minutes * 60
        votes = self.run.group.sum(torch.tensor([stop_requested, due], dtype=torch.float64, device=self.run.group.device))
        return bool(votes[0] > 0), bool(votes[1] > 0)


def latest_checkpoint(out: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in (out / CHECKPOINT_DIR).glob("iteration_*.pt")
             if (m := ITERATION_PATTERN.fullmatch(p.name))]
    return max(found)[1] if found else None


def read_resume_checkpoint(path: Path, method: str) -> dict:
    ckpt = read_checkpoint(path)
    opts = ckpt.get("opts")
    if not isinstance(opts, dict) or "optimizer" not in ckpt or "rng_states" not in ckpt:
        raise E4EBenchError(f"{path} is not a resumable training checkpoint of this project (it lacks the optimiser "
                            "or random-stream state); resume from an iteration_N.pt written by `train`")
    if opts.get("method") != method:
        raise E4EBenchError(f"{path} was written by a {opts.get('method') or 'different'} training run, not "
                            f"{method}; pass --method {opts.get('method')} or another --out folder")
    return ckpt


def restore(run: Run, ckpt: dict) -> None:
    device = run.group.device
    rng_states = ckpt["rng_states"]
    if len(rng_states) != run.group.world_size:
        raise E4EBenchError(f"the checkpoint was written by {len(rng_states)} processes but this run has "
                            f"{run.group.world_size}; resume with the same --nproc_per_node for an exact continuation")
    if isinstance(run.net, HyperStyle):
        run.net.load_official_state(ckpt["state_dict"])
    else:
        run.net.load_state_dict(ckpt["state_dict"], strict=True)
    if ckpt.get("latent_avg") is not None:
        run.net.latent_avg = ckpt["latent_avg"].to(device)
        run.refresh_average_image()
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if run.discriminator is not None:
        run.discriminator.load_state_dict(ckpt["discriminator_state_dict"], strict=True)
        run.discriminator_optimizer.load_state_dict(ckpt["discriminator_optimizer_state_dict"])
    for name, pool in run.state.pools.items():
        pool.load_state_dict(ckpt["w_pools"][name], device)
    for name, generator in run.state.rngs.items():
        generator.set_state(rng_states[run.group.rank][name])
    run.state.global_step = int(ckpt["global_step"])
    run.state.best_val_loss = ckpt.get("best_val_loss")


def weights_fingerprint(run: Run) -> Tensor:
    """Per-tensor sums (float64) of the trained weights; equal on every rank when DDP kept them in step."""
    modules = [trained_network(run.net)] + ([run.discriminator] if run.discriminator is not None else [])
    return torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).cpu()


# -- the loop -------------------------------------------------------------------------------------
def make_loaders(run: Run, train_set: ImageFolder, test_set: ImageFolder, epoch: int, start: int):
    o, g = run.opts, run.group
    sampler = ResumableDistributedSampler(len(train_set), g.rank, g.world_size, o.seed, epoch, start)
    train = DataLoader(train_set, batch_size=o.batch_size, sampler=sampler, num_workers=o.workers, drop_last=True,
                       pin_memory=g.device.type == "cuda", worker_init_fn=ignore_stop_signals)
    shard = torch.utils.data.Subset(test_set, range(g.rank, len(test_set), g.world_size))
    test = DataLoader(shard, batch_size=o.test_batch_size, num_workers=o.test_workers,
                      worker_init_fn=ignore_stop_signals)
    return train, test


def train(run: Run, train_set: ImageFolder, test_set: ImageFolder) -> dict:
    """Run until `max_steps`; returns a summary (rank 0's view)."""
    o, g, state = run.opts, run.group, run.state
    per_rank = -(-len(train_set) // g.world_size)
    batches_per_epoch = per_rank // o.batch_size
    if batches_per_epoch == 0:
        raise E4EBenchError(f"{len(train_set)} training images cannot fill one batch of {o.batch_size} on each of "
                            f"{g.world_size} processes; add images or lower --batch-size")
    save_every = o.save_interval or o.max_steps
    start_step, started = state.global_step, time.perf_counter()
    metrics = MetricLog(run.out, g.is_main, resumed_step=start_step if start_step > 0 else None)
    run.net.train()
    last: dict[str, float] = {}
    saves = Saves(run)
    progress = tqdm(total=o.max_steps, initial=start_step, disable=not g.is_main, desc=f"train {o.method}",
                    unit="step")
    with progress, StopRequests() as stop:
        while state.global_step < o.max_steps:
            epoch, offset = divmod(state.global_step, batches_per_epoch)
            loader, test_loader = make_loaders(run, train_set, test_set, epoch, offset * o.batch_size)
            for images in loader:
                terms, inputs, recon = train_step(run, images.to(g.device))
                step = state.global_step
                progress.update(1)
                if step % o.board_interval == 0 or step == o.max_steps:
                    means = g.sum(torch.stack(list(terms.values())).double()) / g.world_size
                    last = dict(zip(terms, means.tolist()))
                    metrics.write("train", step, last, stage=run.stage(step - 1))
                if g.is_main and (step % o.image_interval == 0 or step == o.max_steps):
                    save_grid(inputs, recon, run.out / "images" / "train" / f"{step:06d}.png", o.grid_images)
                if step % o.val_interval == 0 or step == o.max_steps:
                    validate(run, test_loader, metrics)
                if step % save_every == 0 or step == o.max_steps:
                    saves.write(snapshot=False)
                if step >= o.max_steps:
                    break
                stopping, snapshot_due = saves.agree(stop.received is not None, o.snapshot_minutes)
                if stopping or snapshot_due:
                    path = saves.write(snapshot=True)
                if stopping:
                    metrics.close()
                    raise KeyboardInterrupt(f"{stop.received} at step {step}: the training state is saved in "
                                            f"{path}; rerun with --resume to continue exactly")
    seconds = time.perf_counter() - started
    fingerprints = g.all_gather(weights_fingerprint(run)[None])
    consistent = bool((fingerprints == fingerprints[0]).all())
    if not consistent:
        log.warning("weights differ across the %d processes; the checkpoint holds rank 0's", g.world_size)
    summary = {"steps": state.global_step, "steps_run": state.global_step - start_step, "seconds": round(seconds, 3),
               "steps_per_second": round((state.global_step - start_step) / seconds, 4),
               "processes": g.world_size, "effective_batch_size": o.batch_size * g.world_size,
               "ranks_consistent": consistent, "best_val_loss": state.best_val_loss, "last_train": last}
    metrics.write("summary", state.global_step, {}, **{k: v for k, v in summary.items() if k != "last_train"})
    metrics.close()
    return summary


def validate(run: Run, loader: DataLoader, metrics: MetricLog) -> None:
    values, first = evaluate(run, loader)
    step = run.state.global_step
    metrics.write("test", step, values)
    if run.group.is_main and first is not None:
        save_grid(*first, run.out / "images" / "test" / f"{step:06d}.png", run.opts.grid_images)
    if values and (run.state.best_val_loss is None or values["loss"] < run.state.best_val_loss):
        run.state.best_val_loss = values["loss"]
        save(run, "best_model.pt", training_state=False)
