"""Official e4e/pSp checkpoints: {'state_dict': encoder.* + decoder.*, 'opts': dict, 'latent_avg'}.

e4e and pSp encoders have identical keys, so the method comes from `opts['encoder_type']`
(`Encoder4Editing` or `GradualStyleEncoder`). The architecture (styles, width, IR-SE depth,
input channels) is read from the keys and shapes; encoders trained here are saved in the same layout.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import torch

from e4e_bench.checkpoints import (
    checkpoint_kind,
    check_finite,
    describe_keys,
    generator_from_state_dict,
    key_indices,
    load_error_detail,
    read_checkpoint,
    save_checkpoint,
    strip_prefix,
)
from e4e_bench.errors import E4EBenchError
from encoders.e4e_encoder import Encoder4Editing
from encoders.inverter import Inverter
from encoders.ir_se import num_layers_from_units, stage_starts
from encoders.psp_encoder import GradualStyleEncoder

log = logging.getLogger(__name__)

ENCODER_TYPES = {"e4e": "Encoder4Editing", "psp": "GradualStyleEncoder"}
ENCODER_CLASSES = {"e4e": Encoder4Editing, "psp": GradualStyleEncoder}
OFFICIAL_LAYOUT = "an official e4e/pSp checkpoint ({'state_dict': encoder.* + decoder.*, 'opts', 'latent_avg'})"
# Samples the official wrapper averages when a checkpoint asks for latent_avg but has none.
MEAN_LATENT_SAMPLES = 10_000


def checkpoint_opts(ckpt: dict) -> dict[str, Any]:
    """`opts` as a dict (official files store `vars(opts)`; some older ones the Namespace itself)."""
    opts = ckpt.get("opts", {})
    return vars(opts) if isinstance(opts, argparse.Namespace) else dict(opts)


def checkpoint_method(ckpt: dict, path: str | os.PathLike, requested: str | None = None) -> str:
    """'e4e' or 'psp', from opts['encoder_type']; `requested` (from --method) must agree with it."""
    encoder_type = checkpoint_opts(ckpt).get("encoder_type")
    if encoder_type is None:
        if requested is None:
            raise E4EBenchError(f"{path} has no opts['encoder_type']; pass --method e4e or --method psp")
        return requested
    method = next((m for m, t in ENCODER_TYPES.items() if t == encoder_type), None)
    if method is None:
        raise E4EBenchError(f"{path} holds a {encoder_type!r} encoder; only Encoder4Editing (e4e) and "
                            "GradualStyleEncoder (pSp) checkpoints are supported")
    if requested is not None and requested != method:
        raise E4EBenchError(f"{path} is a {method} checkpoint (opts['encoder_type'] = {encoder_type!r}), "
                            f"not {requested}; use --method {method}")
    return method


def encoder_config(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments of the encoder that owns `state_dict` (its keys without `encoder.`)."""
    n_units = len(key_indices(state_dict, r"body\.(\d+)\.res_layer\.1\.weight"))
    num_layers = num_layers_from_units(n_units)
    if num_layers is None:
        raise ValueError(f"an IR-SE body of {n_units} units is not IR-SE 50, 100 or 152")
    try:
        return dict(
            n_styles=len(key_indices(state_dict, r"styles\.(\d+)\.linear\.weight")),
            style_dim=state_dict["styles.0.linear.weight"].shape[0],
            num_layers=num_layers,
            input_nc=state_dict["input_layer.0.weight"].shape[1],
            stage_depths=tuple(state_dict[f"body.{unit}.res_layer.1.weight"].shape[0]
                               for unit in stage_starts(num_layers)),
        )
    except KeyError as err:
        raise ValueError(f"missing {err.args[0]!r}") from None


def encoder_from_state_dict(method: str, state_dict: dict[str, torch.Tensor], source: str | os.PathLike):
    """The e4e or pSp encoder `state_dict` describes, loaded strictly: every key, every shape."""
    try:
        config = encoder_config(state_dict)
        # Built without memory, then given the file's tensors: no random init of ~250M weights.
        with torch.device("meta"):
            encoder = ENCODER_CLASSES[method](**config)
        missing, unexpected = encoder.load_state_dict(state_dict, strict=False, assign=True)
    except (ValueError, RuntimeError) as err:
        raise E4EBenchError(f"{source}: the weights do not fit the {method} encoder ({load_error_detail(err)})") from None
    if missing or unexpected:
        found = [f"{name} keys {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise E4EBenchError(f"{source}: the weights do not fit the {method} encoder ({'; '.join(found)})")
    check_finite(state_dict, source)
    return encoder


def stored_latent_avg(ckpt: dict, decoder, path: str | os.PathLike) -> torch.Tensor | None:
    """The latent_avg the official wrapper adds: none if opts['start_from_latent_avg'] is false, else
    the stored tensor or, as the official loader does, the mean of mapped samples (seeded here)."""
    opts = checkpoint_opts(ckpt)
    latent_avg = ckpt.get("latent_avg")
    if not opts.get("start_from_latent_avg", latent_avg is not None):
        return None
    if latent_avg is None:
        log.warning("%s asks for latent_avg but stores none; using the mean of %d mapped samples (seed 0)",
                    path, MEAN_LATENT_SAMPLES)
        return decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator().manual_seed(0))
    if not torch.is_tensor(latent_avg) or latent_avg.ndim not in (1, 2):
        raise E4EBenchError(f"{path}: latent_avg must be a [D], [1, D] or [n, D] tensor")
    return latent_avg


def inverter_from_checkpoint(ckpt: dict, path: str | os.PathLike, method: str | None = None) -> tuple[Inverter, str]:
    """(Inverter, 'e4e' | 'psp') from a checkpoint dict already read from `path`."""
    kind = checkpoint_kind(ckpt)
    if kind == "generator":
        raise E4EBenchError(f"{path} is a generator checkpoint; pass it as --generator and an e4e/pSp file as --checkpoint")
    if kind != "encoder":
        raise E4EBenchError(f"{path} is not an e4e/pSp checkpoint (keys: {describe_keys(ckpt)}); expected {OFFICIAL_LAYOUT}")
    method = checkpoint_method(ckpt, path, method)
    state = ckpt["state_dict"]
    encoder = encoder_from_state_dict(method, strip_prefix(state, "encoder"), path)
    decoder = generator_from_state_dict(strip_prefix(state, "decoder"), path)
    try:
        inverter = Inverter(encoder, decoder, stored_latent_avg(ckpt, decoder, path))
    except ValueError as err:
        raise E4EBenchError(f"{path}: encoder and decoder do not fit together ({err})") from None
    return inverter.eval().requires_grad_(False), method


def load_inverter(path: str | os.PathLike, method: str | None = None) -> tuple[Inverter, str]:
    """(Inverter on the CPU in eval mode, 'e4e' | 'psp') from an official-layout checkpoint file."""
    return inverter_from_checkpoint(read_checkpoint(path), path, method)


def official_checkpoint(inverter: Inverter, method: str, opts: dict[str, Any] | None = None) -> dict:
    """The official layout; `opts` gets the fields the official loaders need (plain values only)."""
    opts = dict(opts or {}) | dict(
        encoder_type=ENCODER_TYPES[method],
        stylegan_size=inverter.decoder.size,
        output_size=inverter.decoder.size,
        start_from_latent_avg=inverter.latent_avg is not None,
    )
    ckpt = {"state_dict": {k: v.detach().cpu() for k, v in inverter.state_dict().items()}, "opts": opts}
    if inverter.latent_avg is not None:
        ckpt["latent_avg"] = inverter.latent_avg.detach().cpu()
    return ckpt


def save_inverter(inverter: Inverter, method: str, path: str | os.PathLike, opts: dict[str, Any] | None = None) -> None:
    """Write `official_checkpoint(...)` atomically to `path`."""
    save_checkpoint(official_checkpoint(inverter, method, opts), path)
