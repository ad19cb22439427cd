"""Reading, recognising and writing checkpoints: the one place that knows the file formats.

Kinds recognised by content:
  * "generator": rosinality `.pt` ({'g_ema', 'latent_avg'}, or a training snapshot with
    'g', 'd', 'g_ema', 'args' and no 'latent_avg'), and this project's own generator files;
  * "encoder": official e4e/pSp ({'state_dict': encoder.* + decoder.*, 'opts', 'latent_avg'}),
    which is also the layout this project saves its trained encoders in.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator, default_channels
from e4e_bench.io import atomic_write

GENERATOR_FORMATS = "a rosinality StyleGAN2 .pt (with 'g_ema') or an official e4e/pSp checkpoint (with 'state_dict')"


def load_file(path: str | os.PathLike):
    """torch.load with weights_only=True, turning every failure into one clear sentence."""
    path = Path(path)
    if not path.is_file():
        raise E4EBenchError(f"checkpoint {path} does not exist; check the path or run `python -m e4e_bench assets list`")
    # Zip-format files are memory-mapped (copy-on-write): reading `opts` out of a 1 GB encoder
    # file costs nothing, and tensors are paged in only when used. Legacy files cannot be.
    return _load_weights(path, path, mmap=zipfile.is_zipfile(path))


def load_bytes(data: bytes, source: str | os.PathLike):
    """torch.load of a serialised object held in memory (weights only); errors name `source`."""
    return _load_weights(io.BytesIO(data), Path(source), mmap=False)


def _load_weights(target, path: Path, mmap: bool):
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(target, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise E4EBenchError(refusal_message(path, str(err))) from None
    except Exception as err:  # a damaged pickle can fail with almost any error type
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise E4EBenchError(f"{path} is not a readable PyTorch checkpoint ({reason}); re-download or re-save it") from None


def refusal_message(path: Path, torch_message: str) -> str:
    """Our sentence for a file the data-only unpickler refused. torch's own message advises loading
    with weights_only=False, which would run whatever code the file carries, so none of it is quoted."""
    if found := re.search(r"GLOBAL ([\w.]+)", torch_message):
        return (f"{path} holds objects other than tensors (a reference to {found.group(1)}) and is refused: "
                "checkpoints are read as data, never run as code; use a file that holds only tensors and plain values")
    operand = re.search(r"Unsupported operand (\d+)", torch_message)
    detail = f" (pickle operand {operand.group(1)})" if operand else ""
    return (f"{path} is not a readable PyTorch checkpoint: it holds something other than tensors and plain values"
            f"{detail} and is refused; re-download or re-save it")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint dict from `path` (weights only)."""
    ckpt = load_file(path)
    if not isinstance(ckpt, dict):
        raise E4EBenchError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict; expected {GENERATOR_FORMATS}")
    return ckpt


def read_tensor(path: str | os.PathLike) -> torch.Tensor:
    """A file holding one saved tensor (e.g. an InterFaceGAN direction)."""
    value = load_file(path)
    if not torch.is_tensor(value):
        raise E4EBenchError(f"{path} holds a {type(value).__name__}, expected a single tensor")
    return value


def checkpoint_kind(ckpt: dict) -> str:
    if "g_ema" in ckpt:
        return "generator"
    state = ckpt.get("state_dict")
    if isinstance(state, dict) and any(k.startswith("decoder.") for k in state):
        if any(k.startswith("encoder.") for k in state):
            return "encoder"
        if any(k.startswith("hypernet.") for k in state):
            return "hyperstyle"
    return "unknown"


def describe_keys(ckpt: dict) -> str:
    keys = sorted(map(str, ckpt))
    return ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.`, with the prefix removed."""
    start = prefix + "."
    return {k[len(start) :]: v for k, v in state_dict.items() if k.startswith(start)}


def check_finite(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    for key, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            raise E4EBenchError(f"{path}: tensor {key!r} holds NaN or infinite values; the checkpoint is damaged")


def key_indices(state_dict: dict, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state_dict if (m := regex.fullmatch(k))})


def generator_config(state_dict: dict[str, torch.Tensor]) -> dict:
    """Constructor arguments of the Generator that owns `state_dict`, read from its keys and shapes."""
    try:
        n_mlp = len(key_indices(state_dict, r"style\.(\d+)\.weight"))
        style_dim = state_dict["conv1.conv.modulation.weight"].shape[1]
        n_blocks = len(key_indices(state_dict, r"to_rgbs\.(\d+)\.conv\.weight"))
        channels = {4: state_dict["input.input"].shape[1]}
        for k in range(n_blocks):
            channels[2 ** (k + 3)] = state_dict[f"convs.{2 * k}.conv.weight"].shape[1]
        taps = state_dict["to_rgbs.0.upsample.kernel"][0] if n_blocks else None
    except KeyError as err:
        raise ValueError(f"not a StyleGAN2 generator state dict: missing {err.args[0]!r}") from None
    if taps is not None and not torch.allclose(taps / taps.sum(), torch.tensor([1.0, 3, 3, 1]) / 8):
        raise ValueError("only generators with the [1, 3, 3, 1] blur kernel are supported")
    config = dict(size=2 ** (n_blocks + 2), style_dim=style_dim, n_mlp=n_mlp)
    for multiplier in (2, 1, 4):
        table = default_channels(multiplier)
        if all(table[res] == ch for res, ch in channels.items()):
            return config | dict(channel_multiplier=multiplier)
    return config | dict(channels=channels)


def load_error_detail(err: Exception, limit: int = 300) -> str:
    """The informative part of a load_state_dict error (missing keys, size mismatches), on one line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    detail = " ".join(lines[1:] or lines)
    return detail if len(detail) <= limit else detail[: limit - 3] + "..."


def generator_from_state_dict(state_dict: dict[str, torch.Tensor], source: str | os.PathLike = "checkpoint") -> Generator:
    """Build the generator the state dict describes and load it with strict=True."""
    try:
        config = generator_config(state_dict)
        with torch.device("meta"):  # no random initialisation of weights that are replaced at once
            generator = Generator(**config)
        generator.load_state_dict(state_dict, strict=True, assign=True)
    except (ValueError, RuntimeError) as err:
        raise E4EBenchError(f"{source}: the generator weights do not match a StyleGAN2 generator ({load_error_detail(err)})") from None
    check_finite(state_dict, source)
    return generator.eval().requires_grad_(False)


def generator_state(ckpt: dict, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(generator state dict, latent_avg or None) from any checkpoint kind that carries a generator."""
    kind = checkpoint_kind(ckpt)
    if kind == "generator":
        return ckpt["g_ema"], ckpt.get("latent_avg")
    if kind in ("encoder", "hyperstyle"):
        return strip_prefix(ckpt["state_dict"], "decoder"), ckpt.get("latent_avg")
    raise E4EBenchError(f"{path} is not a generator checkpoint (keys: {describe_keys(ckpt)}); expected {GENERATOR_FORMATS}")


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Generator, torch.Tensor | None]:
    """Generator (eval, frozen) and the checkpoint's latent_avg (None when it has none)."""
    state, latent_avg = generator_state(read_checkpoint(path), path)
    generator = generator_from_state_dict(state, path).to(device)
    if latent_avg is not None:
        latent_avg = latent_avg.to(device)
    return generator, latent_avg


def generator_checkpoint(generator: Generator, latent_avg: torch.Tensor | None = None) -> dict:
    """This project's generator file: rosinality's layout, plus the constructor arguments."""
    ckpt = {"g_ema": generator.state_dict(), "generator_config": generator.init_kwargs}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    return ckpt


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    """torch.save, atomically: never a half-written file."""
    with atomic_write(path) as stream:
        torch.save(obj, stream)
