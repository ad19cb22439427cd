"""Tiny checkpoints in the official e4e/pSp/ReStyle layout, for tests of loading, `invert` and training.

Layout as the official coaches write it: {'state_dict': the pSp wrapper's state dict
(`encoder.*` + `decoder.*`), 'opts': vars(opts), 'latent_avg': [n_styles, style_dim]}. The encoder
is IR-SE-50 (or, for ReStyle beyond faces, ResNet-34) with the official key names and narrow
widths (`TINY_STAGE_DEPTHS`, style heads as wide as the tiny generator's style_dim); BatchNorm
statistics, PReLU slopes and biases are randomised so that every key matters.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from e4e_bench.checkpoints import save_checkpoint
from e4e_bench.networks.generator import Generator
from encoders.e4e_encoder import Encoder4Editing
from encoders.psp_encoder import GradualStyleEncoder
from encoders.restyle_encoders import (
    BackboneEncoder,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetProgressiveBackboneEncoder,
)

# method -> the official encoder_type; ReStyle's by backbone ("resnet" beyond faces, "ir_se" for faces)
OFFICIAL_ENCODER_TYPES = {
    "e4e": "Encoder4Editing", "psp": "GradualStyleEncoder",
    "restyle_psp": {"resnet": "ResNetBackboneEncoder", "ir_se": "BackboneEncoder"},
    "restyle_e4e": {"resnet": "ResNetProgressiveBackboneEncoder", "ir_se": "ProgressiveBackboneEncoder"},
}
TINY_STAGE_DEPTHS = (16, 24, 32, 48)

ENCODER_CLASSES = {cls.__name__: cls for cls in (
    Encoder4Editing, GradualStyleEncoder, BackboneEncoder, ProgressiveBackboneEncoder, ResNetBackboneEncoder,
    ResNetProgressiveBackboneEncoder)}
# The encoder whose random state each class gets (classes of one family share every key)
STATE_SOURCES = {"Encoder4Editing": "GradualStyleEncoder", "ProgressiveBackboneEncoder": "BackboneEncoder",
                 "ResNetProgressiveBackboneEncoder": "ResNetBackboneEncoder"}


def encoder_type(method: str, backbone: str = "resnet") -> str:
    official = OFFICIAL_ENCODER_TYPES[method]
    return official if isinstance(official, str) else official[backbone]


def random_encoder(method: str, n_styles: int, style_dim: int, seed: int = 0,
                   stage_depths: tuple[int, ...] = TINY_STAGE_DEPTHS, backbone: str = "resnet") -> torch.nn.Module:
    """A fresh encoder of `method` with random weights everywhere, including BN running statistics."""
    name = encoder_type(method, backbone)
    with torch.device("meta"):
        encoder = ENCODER_CLASSES[name](n_styles, style_dim, stage_depths=stage_depths)
    state = random_encoder_state(STATE_SOURCES.get(name, name), n_styles, style_dim, seed, stage_depths)
    encoder.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
    return encoder.eval().requires_grad_(False)


@functools.cache
def random_encoder_state(name: str, n_styles: int, style_dim: int, seed: int,
                         stage_depths: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Made once per configuration and copied for each encoder."""
    torch.manual_seed(seed)
    encoder = ENCODER_CLASSES[name](n_styles, style_dim, stage_depths=stage_depths)
    with torch.no_grad():
        for name, tensor in encoder.state_dict().items():
            if name.endswith("running_mean") or name.endswith(".bias"):
                tensor.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.ndim == 1 and tensor.is_floating_point():  # BN scales and PReLU slopes
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(1000)
    return encoder.state_dict()


def official_opts(method: str, size: int, backbone: str = "resnet", **overrides) -> dict:
    """A representative `vars(opts)` of an official training run (plain values only)."""
    opts = {
        "exp_dir": "experiments/tiny", "dataset_type": "cars_encode", "encoder_type": encoder_type(method, backbone),
        "batch_size": 8, "test_batch_size": 4, "learning_rate": 0.0001, "optim_name": "ranger",
        "lpips_lambda": 0.8, "l2_lambda": 1.0, "id_lambda": 0.5, "stylegan_size": size,
        "start_from_latent_avg": True, "progressive_steps": [0] + list(range(20000, 50000, 2000)),
        "checkpoint_path": None, "device": "cuda:0", "max_steps": 200000,
    }
    return opts | overrides


def official_checkpoint_dict(
    method: str,
    generator: Generator,
    *,
    n_styles: int | None = None,                         # default: the generator's n_latent
    latent_avg: torch.Tensor | None = None,               # default: generator mean latent repeated to [n_styles, D]
    seed: int = 0,
    stage_depths: tuple[int, ...] = TINY_STAGE_DEPTHS,    # backbone widths; (64, 128, 256, 512) is official
    backbone: str = "resnet",                             # ReStyle's: "resnet" (beyond faces) or "ir_se" (faces)
    **opts_overrides,
) -> dict:
    n_styles = n_styles or generator.n_latent
    encoder = random_encoder(method, n_styles, generator.style_dim, seed, stage_depths, backbone)
    if latent_avg is None:
        latent_avg = generator.mean_latent(1000, rng=torch.Generator().manual_seed(seed)).repeat(n_styles, 1)
    state = {f"encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state |= {f"decoder.{k}": v.clone() for k, v in generator.state_dict().items()}
    return {"state_dict": state, "opts": official_opts(method, generator.size, backbone, **opts_overrides),
            "latent_avg": latent_avg} | (
        {} if method in ("e4e", "psp") else {"opts": official_opts(method, generator.size, backbone, input_nc=6,
                                                                    **opts_overrides)})


def write_official_checkpoint(path: Path, method: str, generator: Generator, **kwargs) -> Path:
    save_checkpoint(official_checkpoint_dict(method, generator, **kwargs), path)
    return path
