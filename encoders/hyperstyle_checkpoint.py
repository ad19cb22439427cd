"""HyperStyle's files: the official checkpoint ({'state_dict': hypernet.* + decoder.*, 'latent_avg', 'opts',
'global_step', 'best_val_loss'}) and the W encoder, its own file in the e4e layout.

The W encoder's class is read off its keys, not its `opts`: a lone `linear` after the IR-SE body is
the official `WEncoder`, heads (`styles.*`) an e4e (or pSp) encoder such as one `train --method e4e`
made (hyperstyle#74, #75: the official loader builds `WEncoder` whatever the file holds). Its own
decoder and latent_avg are not used: the codes get the HyperStyle checkpoint's latent_avg, as officially.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from e4e_bench.checkpoints import (
    describe_keys,
    generator_from_state_dict,
    read_checkpoint,
    save_checkpoint,
    strip_prefix,
)
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import (
    checkpoint_opts,
    encoder_config,
    encoder_from_state_dict,
    module_from_state_dict,
    stored_latent_avg,
)
from encoders.hyperstyle import HyperStyle
from encoders.hypernetwork import SharedWeightsHyperNetResNet, hypernet_config, layer_shapes

LAYOUT = "an official HyperStyle checkpoint ({'state_dict': hypernet.* + decoder.*, 'latent_avg', 'opts'})"
HYPERNET_TYPE = "SharedWeightsHyperNetResNet"
W_ENCODER_TYPES = ("WEncoder", "Encoder4Editing", "GradualStyleEncoder")  # single-pass encoders of RGB images


def w_encoder_type(ckpt: dict, state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> str:
    """The class of a W encoder file's `encoder.*` (`state_dict`, prefix removed), from its keys."""
    if "linear.weight" in state_dict and not any(key.startswith("styles.") for key in state_dict):
        return "WEncoder"
    stated = checkpoint_opts(ckpt).get("encoder_type")
    if stated in (None, "WEncoder"):
        return "Encoder4Editing"
    if stated not in W_ENCODER_TYPES:
        raise E4EBenchError(f"{path} holds a {stated} encoder, which cannot give HyperStyle its codes; pass the "
                            "domain's W encoder or an e4e checkpoint as --w-encoder")
    return stated


def load_w_encoder(path: str | os.PathLike, n_latent: int) -> torch.nn.Module:
    """The encoder of a W encoder file, loaded strictly, in eval mode on the CPU."""
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict")
    encoder_state = strip_prefix(state, "encoder") if isinstance(state, dict) else {}
    if not encoder_state:
        raise E4EBenchError(f"{path} holds no encoder.* weights (keys: {describe_keys(ckpt)}); a W encoder file has "
                            "the e4e layout ({'state_dict': encoder.* + decoder.*, 'opts', 'latent_avg'})")
    encoder_type = w_encoder_type(ckpt, encoder_state, path)
    return encoder_from_state_dict(encoder_type, encoder_state, path, n_latent).eval()


def hypernet_from_state_dict(state_dict: dict[str, torch.Tensor], decoder, path: str | os.PathLike
                             ) -> SharedWeightsHyperNetResNet:
    """The hypernetwork `state_dict` (keys without `hypernet.`) describes for `decoder`, loaded strictly."""
    build = lambda: SharedWeightsHyperNetResNet(layer_shapes(decoder), **hypernet_config(state_dict),
                                                **encoder_config(state_dict))
    return module_from_state_dict(build, state_dict, path,
                                  f"a HyperStyle hypernetwork for this {decoder.size} px generator")


def load_hyperstyle(path: str | os.PathLike, w_encoder: str | os.PathLike) -> HyperStyle:
    """HyperStyle from an official checkpoint and a W encoder file, in eval mode on the CPU."""
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not any(key.startswith("hypernet.") for key in state):
        raise E4EBenchError(f"{path} is not a HyperStyle checkpoint (keys: {describe_keys(ckpt)}); expected {LAYOUT}")
    decoder = generator_from_state_dict(strip_prefix(state, "decoder"), path)
    hypernet = hypernet_from_state_dict(strip_prefix(state, "hypernet"), decoder, path)
    latent_avg = stored_latent_avg(ckpt, decoder, path, required=True)
    try:
        model = HyperStyle(hypernet, decoder, load_w_encoder(w_encoder, decoder.n_latent), latent_avg)
    except ValueError as err:
        raise E4EBenchError(f"{w_encoder} does not fit the HyperStyle checkpoint {path} ({err})") from None
    return model.eval().requires_grad_(False)


def official_hyperstyle_checkpoint(model: HyperStyle, opts: dict[str, Any] | None = None, **extra) -> dict:
    """The official layout; `opts` gets the fields the official loaders need (plain values only).

    The shared head is one tensor under ten names: it is copied to the CPU once, so that the file stores
    it once (a copy per name would add 4.5 GB at the official size when training on a GPU)."""
    opts = dict(opts or {}) | dict(
        encoder_type=HYPERNET_TYPE,
        input_nc=model.hypernet.input_nc,
        output_size=model.decoder.size,
        layers_to_tune=",".join(map(str, model.hypernet.tuned)),
    )
    copies: dict[int, torch.Tensor] = {}
    state = {key: copies.setdefault(id(value), value.detach().cpu())
             for key, value in model.official_state(keep_vars=True).items()}
    return {"state_dict": state, "opts": opts, "latent_avg": model.latent_avg.detach().cpu(), **extra}


def save_hyperstyle(model: HyperStyle, path: str | os.PathLike, opts: dict[str, Any] | None = None, **extra) -> None:
    save_checkpoint(official_hyperstyle_checkpoint(model, opts, **extra), path)
