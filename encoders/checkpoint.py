"""Official e4e/pSp/ReStyle checkpoints: {'state_dict': encoder.* + decoder.*, 'opts': dict, 'latent_avg'}.

The encoder class comes from `opts['encoder_type']` (the official class names, `ENCODERS`): e4e
and pSp encoders have identical keys, as have the two ReStyle variants. The architecture (styles,
width, backbone depth and widths, input channels) is read from the keys and shapes; encoders
trained here are saved in the same layout.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

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
from encoders.resnet import stage_starts as resnet_stage_starts
from encoders.restyle import ReStyleInverter
from encoders.restyle_encoders import (
    BackboneEncoder,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetProgressiveBackboneEncoder,
)
from encoders.w_encoder import WEncoder

log = logging.getLogger(__name__)


class EncoderType(NamedTuple):
    method: str  # the registered method that runs it
    encoder: type  # built as encoder(n_styles, style_dim, **encoder_config(state_dict))
    inverter: type  # the wrapper that runs it: one pass (Inverter) or ReStyle's iteration


# Official `encoder_type` -> what runs it. ReStyle's ResNet-34 classes serve every domain but faces.
ENCODERS = {
    "Encoder4Editing": EncoderType("e4e", Encoder4Editing, Inverter),
    "GradualStyleEncoder": EncoderType("psp", GradualStyleEncoder, Inverter),
    "BackboneEncoder": EncoderType("restyle_psp", BackboneEncoder, ReStyleInverter),
    "ResNetBackboneEncoder": EncoderType("restyle_psp", ResNetBackboneEncoder, ReStyleInverter),
    "ProgressiveBackboneEncoder": EncoderType("restyle_e4e", ProgressiveBackboneEncoder, ReStyleInverter),
    "ResNetProgressiveBackboneEncoder": EncoderType("restyle_e4e", ResNetProgressiveBackboneEncoder, ReStyleInverter),
    "WEncoder": EncoderType("e4e", WEncoder, Inverter),  # HyperStyle's W encoder, trained as an e4e into W
}
OFFICIAL_LAYOUT = ("an official e4e/pSp/ReStyle checkpoint ({'state_dict': encoder.* + decoder.*, 'opts', "
                   "'latent_avg'})")
# Samples the official wrapper averages when a checkpoint asks for latent_avg but has none.
MEAN_LATENT_SAMPLES = 10_000


def encoder_type_for(method: str, resnet: bool) -> str:
    """The official class name of `method`'s encoder; `resnet` picks ReStyle's ResNet-34 backbone."""
    matches = [name for name, entry in ENCODERS.items() if entry.method == method
               and (name.startswith("ResNet") == resnet or entry.inverter is Inverter)]
    if not matches:
        raise ValueError(f"no encoder for method {method!r}")
    return matches[0]


def checkpoint_opts(ckpt: dict) -> dict[str, Any]:
    """`opts` as a dict (official files store `vars(opts)`; some older ones the Namespace itself)."""
    opts = ckpt.get("opts", {})
    return vars(opts) if isinstance(opts, argparse.Namespace) else dict(opts)


def checkpoint_encoder_type(ckpt: dict, state_dict: dict, path: str | os.PathLike, requested: str | None = None) -> str:
    """The official encoder class of a checkpoint, from opts['encoder_type'] (or, without it, from
    `requested` and the keys); `requested` (from --method) must agree with it."""
    encoder_type = checkpoint_opts(ckpt).get("encoder_type")
    if encoder_type is None:
        if requested is None:
            methods = sorted({entry.method for entry in ENCODERS.values()})
            raise E4EBenchError(f"{path} has no opts['encoder_type']; pass --method {', '.join(methods[:-1])} "
                                f"or {methods[-1]}")
        try:
            return encoder_type_for(requested, resnet="conv1.weight" in state_dict)
        except ValueError:
            raise E4EBenchError(f"{path} cannot be read as a {requested} checkpoint") from None
    if encoder_type not in ENCODERS:
        raise E4EBenchError(f"{path} holds a {encoder_type!r} encoder; supported: {', '.join(ENCODERS)}")
    method = ENCODERS[encoder_type].method
    if requested is not None and requested != method:
        raise E4EBenchError(f"{path} is a {method} checkpoint (opts['encoder_type'] = {encoder_type!r}), "
                            f"not {requested}; use --method {method}")
    return encoder_type


def encoder_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments besides (n_styles, style_dim) of the encoder that owns `state_dict`
    (its keys without `encoder.`): an IR-SE or a ResNet-34 backbone."""
    if "conv1.weight" in state_dict:
        try:
            return dict(input_nc=state_dict["conv1.weight"].shape[1],
                        stage_depths=tuple(state_dict[f"body.{block}.conv2.weight"].shape[0]
                                           for block in resnet_stage_starts()))
        except KeyError as err:
            raise ValueError(f"missing {err.args[0]!r}") from None
    n_units = len(key_indices(state_dict, r"body\.(\d+)\.res_layer\.1\.weight"))
    num_layers = num_layers_from_units(n_units)
    if num_layers is None:
        raise ValueError(f"an IR-SE body of {n_units} units is not IR-SE 50, 100 or 152")
    try:
        return dict(
            num_layers=num_layers,
            input_nc=state_dict["input_layer.0.weight"].shape[1],
            stage_depths=tuple(state_dict[f"body.{unit}.res_layer.1.weight"].shape[0]
                               for unit in stage_starts(num_layers)),
        )
    except KeyError as err:
        raise ValueError(f"missing {err.args[0]!r}") from None


def head_config(state_dict: dict[str, torch.Tensor], n_latent: int) -> dict[str, int]:
    """(n_styles, style_dim) of the encoder's map2style heads, or of a W encoder's one `linear` (as many
    styles as the generator's `n_latent`)."""
    if "linear.weight" in state_dict and "styles.0.linear.weight" not in state_dict:
        return dict(n_styles=n_latent, style_dim=state_dict["linear.weight"].shape[0])
    try:
        return dict(n_styles=len(key_indices(state_dict, r"styles\.(\d+)\.linear\.weight")),
                    style_dim=state_dict["styles.0.linear.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"missing {err.args[0]!r}") from None


def module_from_state_dict(build: Callable[[], torch.nn.Module], state_dict: dict[str, torch.Tensor],
                           source: str | os.PathLike, what: str) -> torch.nn.Module:
    """`build()` given the file's tensors, strictly: every key, every shape, all finite. `build` runs on the
    meta device, so no random init of hundreds of millions of weights precedes the file's; its ValueErrors
    (a configuration the keys do not describe) are reported like a load error, naming `what` and `source`."""
    try:
        with torch.device("meta"):
            module = build()
        missing, unexpected = module.load_state_dict(state_dict, strict=False, assign=True)
    except (ValueError, RuntimeError, TypeError) as err:
        raise E4EBenchError(f"{source}: the weights do not fit {what} ({load_error_detail(err)})") from None
    if missing or unexpected:
        found = [f"{name} keys {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise E4EBenchError(f"{source}: the weights do not fit {what} ({'; '.join(found)})")
    check_finite(state_dict, source)
    return module


def encoder_from_state_dict(encoder_type: str, state_dict: dict[str, torch.Tensor], source: str | os.PathLike,
                            n_latent: int):
    """The `encoder_type` encoder `state_dict` describes, loaded strictly."""
    build = lambda: ENCODERS[encoder_type].encoder(**head_config(state_dict, n_latent), **encoder_config(state_dict))
    return module_from_state_dict(build, state_dict, source, f"the {ENCODERS[encoder_type].method} encoder {encoder_type}")


def mean_latent(decoder, path: str | os.PathLike) -> torch.Tensor:
    """What the official code uses for a missing latent_avg: the mean of mapped samples (seeded here)."""
    log.warning("%s stores no latent_avg; using the mean of %d mapped samples (seed 0)", path, MEAN_LATENT_SAMPLES)
    return decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator().manual_seed(0))


def stored_latent_avg(ckpt: dict, decoder, path: str | os.PathLike, required: bool = False) -> torch.Tensor | None:
    """The latent_avg the official wrapper adds: none if opts['start_from_latent_avg'] is false (and not
    `required`, as ReStyle's first step is), else the stored tensor or the mean of mapped samples."""
    opts = checkpoint_opts(ckpt)
    latent_avg = ckpt.get("latent_avg")
    if not (required or opts.get("start_from_latent_avg", latent_avg is not None)):
        return None
    if latent_avg is None:
        return mean_latent(decoder, path)
    if not torch.is_tensor(latent_avg) or latent_avg.ndim not in (1, 2):
        raise E4EBenchError(f"{path}: latent_avg must be a [D], [1, D] or [n, D] tensor")
    return latent_avg


def inverter_from_checkpoint(ckpt: dict, path: str | os.PathLike, method: str | None = None) -> tuple[Inverter, str]:
    """(Inverter or ReStyleInverter, its method) from a checkpoint dict already read from `path`."""
    kind = checkpoint_kind(ckpt)
    if kind == "generator":
        raise E4EBenchError(f"{path} is a generator checkpoint; pass it as --generator and an encoder file as --checkpoint")
    if kind == "hyperstyle":
        raise E4EBenchError(f"{path} is a HyperStyle checkpoint; use --method hyperstyle (with its --w-encoder)")
    if kind != "encoder":
        raise E4EBenchError(f"{path} is not an encoder checkpoint (keys: {describe_keys(ckpt)}); expected {OFFICIAL_LAYOUT}")
    state = ckpt["state_dict"]
    encoder_state = strip_prefix(state, "encoder")
    encoder_type = checkpoint_encoder_type(ckpt, encoder_state, path, method)
    entry = ENCODERS[encoder_type]
    decoder = generator_from_state_dict(strip_prefix(state, "decoder"), path)
    encoder = encoder_from_state_dict(encoder_type, encoder_state, path, decoder.n_latent)
    latent_avg = stored_latent_avg(ckpt, decoder, path, required=entry.inverter is ReStyleInverter)
    try:
        inverter = entry.inverter(encoder, decoder, latent_avg)
    except ValueError as err:
        raise E4EBenchError(f"{path}: encoder and decoder do not fit together ({err})") from None
    return inverter.eval().requires_grad_(False), entry.method


def load_inverter(path: str | os.PathLike, method: str | None = None) -> tuple[Inverter, str]:
    """(Inverter on the CPU in eval mode, its method) from an official-layout checkpoint file."""
    return inverter_from_checkpoint(read_checkpoint(path), path, method)


def official_checkpoint(inverter: Inverter, opts: dict[str, Any] | None = None) -> dict:
    """The official layout; `opts` gets the fields the official loaders need (plain values only)."""
    opts = dict(opts or {}) | dict(
        encoder_type=type(inverter.encoder).__name__,
        input_nc=inverter.encoder_input_channels,
        stylegan_size=inverter.decoder.size,
        output_size=inverter.decoder.size,
        start_from_latent_avg=inverter.latent_avg is not None,
    )
    ckpt = {"state_dict": {k: v.detach().cpu() for k, v in inverter.state_dict().items()}, "opts": opts}
    if inverter.latent_avg is not None:
        ckpt["latent_avg"] = inverter.latent_avg.detach().cpu()
    return ckpt


def save_inverter(inverter: Inverter, path: str | os.PathLike, opts: dict[str, Any] | None = None) -> None:
    """Write `official_checkpoint(...)` atomically to `path`."""
    save_checkpoint(official_checkpoint(inverter, opts), path)
