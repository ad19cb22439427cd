"""NVIDIA generator tensors -> this project's rosinality-format generator checkpoint.

The two PyTorch layouts hold the same tensors (both ports flip TF's up-convolution the same way),
so the mapping is renames and reshapes (reference §2.6). The architecture comes from the weights:
`generator_from_state_dict` reads size, channels, style_dim and n_mlp off the renamed tensors and
loads them with strict=True, so a file that converts is one that every command loads.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from e4e_bench.assets import sha256_of
from e4e_bench.checkpoints import generator_checkpoint, generator_from_state_dict, save_checkpoint
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator, fir_kernel
from e4e_bench.nvidia.ada_pytorch import NvidiaGenerator, read_ada_generator
from e4e_bench.nvidia.safe_unpickler import TFNetwork, load_pickle
from e4e_bench.nvidia.tf_release import read_tf_generator

BLUR_TAPS = (1, 3, 3, 1)
LR_MLP = 0.01  # the mapping multiplier the rosinality generator assumes; others are folded into the weights


@dataclass
class Conversion:
    generator: Generator
    latent_avg: torch.Tensor
    source: Path
    sha256: str
    description: str
    notes: list[str]

    def checkpoint(self) -> dict:
        return generator_checkpoint(self.generator, self.latent_avg)

    def summary(self) -> list[str]:
        g = self.generator
        table = "explicit channels" if g.init_kwargs["channels"] else f"channel_multiplier {g.init_kwargs['channel_multiplier']}"
        channels = " ".join(f"{res}:{ch}" for res, ch in g.channels.items() if res <= g.size)
        return [
            f"read: {self.source} (sha256 {self.sha256})",
            f"format: {self.description}",
            f"architecture: size {g.size}, style_dim {g.style_dim}, n_mlp {g.n_mlp}, n_latent {g.n_latent}, "
            f"channels {channels} ({table})",
            "latent_avg: mapping.w_avg",
            *(f"note: {note}" for note in self.notes),
        ]


def styled_conv(tensors: dict, ada: str, ros: str, noise_index: int) -> dict[str, torch.Tensor]:
    take = tensors.pop
    return {
        f"{ros}.conv.weight": take(f"{ada}.weight")[None],
        f"{ros}.conv.modulation.weight": take(f"{ada}.affine.weight"),
        f"{ros}.conv.modulation.bias": take(f"{ada}.affine.bias"),
        f"{ros}.noise.weight": take(f"{ada}.noise_strength").reshape(1),
        f"{ros}.activate.bias": take(f"{ada}.bias"),
        f"noises.noise_{noise_index}": take(f"{ada}.noise_const")[None, None],
    }


def to_rgb(tensors: dict, ada: str, ros: str) -> dict[str, torch.Tensor]:
    take = tensors.pop
    weight = take(f"{ada}.weight")
    if weight.shape[0] != 3:
        raise ValueError(f"{ada} makes {weight.shape[0]} image channels; only RGB generators convert")
    return {
        f"{ros}.conv.weight": weight[None],
        f"{ros}.conv.modulation.weight": take(f"{ada}.affine.weight"),
        f"{ros}.conv.modulation.bias": take(f"{ada}.affine.bias"),
        f"{ros}.bias": take(f"{ada}.bias").reshape(1, 3, 1, 1),
    }


def check_resample_filters(tensors: dict) -> None:
    expected = fir_kernel(BLUR_TAPS)
    for key in [key for key in tensors if key.endswith("resample_filter")]:
        taps = tensors.pop(key)
        if taps.shape != expected.shape or not torch.allclose(taps / taps.sum(), expected):
            raise ValueError(f"{key} is not the [1, 3, 3, 1] filter; only generators with that filter convert")


def rosinality_state(nvidia: NvidiaGenerator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(g_ema state dict, latent_avg) from ada-pytorch names; raises KeyError/ValueError on other layouts."""
    tensors = dict(nvidia.tensors)
    check_resample_filters(tensors)
    latent_avg = tensors.pop("mapping.w_avg")
    style_dim = latent_avg.numel()
    state = {}
    fold = nvidia.mapping_lr / LR_MLP
    n_mlp = len([key for key in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", key)])
    for i in range(n_mlp):
        weight = tensors.pop(f"mapping.fc{i}.weight")
        if weight.shape != (style_dim, style_dim):
            raise ValueError(f"mapping layer fc{i} is {list(weight.shape)}; this generator needs z_dim = w_dim = "
                             f"every mapping width ({style_dim})")
        state[f"style.{i + 1}.weight"] = weight * fold
        state[f"style.{i + 1}.bias"] = tensors.pop(f"mapping.fc{i}.bias") * fold
    state["input.input"] = tensors.pop("synthesis.b4.const")[None]
    state |= styled_conv(tensors, "synthesis.b4.conv1", "conv1", 0) | to_rgb(tensors, "synthesis.b4.torgb", "to_rgb1")
    resolutions = sorted({int(m.group(1)) for key in tensors if (m := re.match(r"synthesis\.b(\d+)\.", key))})
    if resolutions != [2 ** (k + 3) for k in range(len(resolutions))]:
        raise ValueError(f"synthesis blocks at {[4, *resolutions]} do not double from 4 up")
    for k, res in enumerate(resolutions):
        block = f"synthesis.b{res}"
        state |= styled_conv(tensors, f"{block}.conv0", f"convs.{2 * k}", 2 * k + 1)
        state |= styled_conv(tensors, f"{block}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        state |= to_rgb(tensors, f"{block}.torgb", f"to_rgbs.{k}")
        state[f"convs.{2 * k}.conv.blur.kernel"] = fir_kernel(BLUR_TAPS, gain=4)
        state[f"to_rgbs.{k}.upsample.kernel"] = fir_kernel(BLUR_TAPS, gain=4)
    if tensors:
        raise ValueError(f"weights {', '.join(sorted(tensors)[:3])} have no place in a StyleGAN2 skip generator")
    return state, latent_avg


def read_nvidia_generator(path: Path, which: str) -> NvidiaGenerator:
    if zipfile.is_zipfile(path):
        raise E4EBenchError(f"{path} is a PyTorch checkpoint, not an NVIDIA pickle; commands read it directly")
    content = load_pickle(path)
    if isinstance(content, dict):
        return read_ada_generator(content, which, path)
    if isinstance(content, (tuple, list)) and len(content) == 3 and all(isinstance(n, TFNetwork) for n in content):
        return read_tf_generator(tuple(content), which, path)
    raise E4EBenchError(f"{path} holds a {type(content).__name__}; expected a stylegan2-ada-pytorch snapshot "
                        "(a dict with G_ema) or a TensorFlow StyleGAN2 pickle ((G, D, Gs))")


def read_nvidia_pickle(path: str | os.PathLike, which: str = "G_ema") -> Conversion:
    """Read an NVIDIA StyleGAN2 pickle without running any of its code; nothing is written."""
    path = Path(path)
    nvidia = read_nvidia_generator(path, which)
    try:
        state, latent_avg = rosinality_state(nvidia)
    except KeyError as err:
        raise E4EBenchError(f"{path}: {which} has no {err.args[0]!r}; only StyleGAN2 generators with the skip "
                            "architecture (configs e and f) convert") from None
    except (ValueError, RuntimeError) as err:
        raise E4EBenchError(f"{path}: {which}: {err}") from None
    generator = generator_from_state_dict(state, path)
    return Conversion(generator, latent_avg, path, sha256_of(path), nvidia.description, nvidia.notes)


def convert_pickle(path: str | os.PathLike, out: str | os.PathLike, which: str = "G_ema") -> Conversion:
    """Read an NVIDIA pickle and write the rosinality-format checkpoint to `out`."""
    conversion = read_nvidia_pickle(path, which)
    save_checkpoint(conversion.checkpoint(), out)
    return conversion
