"""The generator of a TensorFlow StyleGAN2 pickle, renamed to ada-pytorch's layout as legacy.py does.

The release pickles hold a tuple (G, D, Gs) of `dnnlib.tflib.network.Network`s; Gs is the moving
average. Each network's state lists its own variables as (name, numpy array) pairs and its
sub-networks (`mapping`, `synthesis`) under `components`, so the weights are plain arrays.
TF stores dense weights [in, out] and conv weights [kh, kw, in, out], keeps the style bias
without its +1, and its fused up-convolution's kernel is the spatial flip of PyTorch's.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from e4e_bench.errors import E4EBenchError
from e4e_bench.nvidia.ada_pytorch import NvidiaGenerator
from e4e_bench.nvidia.safe_unpickler import TFNetwork

TF_NETWORK_INDEX = {"G": 0, "G_ema": 2}  # (G, D, Gs)


def tf_variables(network: TFNetwork, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables of the network and its components, named `mapping/Dense0/weight`, `dlatent_avg`, ..."""
    variables = {f"{prefix}{name}": np.asarray(value, dtype=np.float32) for name, value in network.state.get("variables", [])}
    for name, component in network.state.get("components", {}).items():
        if not isinstance(component, TFNetwork):
            raise ValueError(f"component {prefix}{name} is a {type(component).__name__}, not a TensorFlow network")
        variables |= tf_variables(component, f"{prefix}{name}/")
    return variables


def static_kwargs(network: TFNetwork) -> dict:
    """The construction arguments of the network and its components, merged."""
    merged = dict(network.state.get("static_kwargs", {}))
    for component in network.state.get("components", {}).values():
        merged |= static_kwargs(component)
    return merged


def modulated_layer(tf: dict[str, np.ndarray], scope: str, flip: bool = False) -> dict[str, np.ndarray]:
    weight = tf[f"{scope}/weight"]
    if flip:
        weight = weight[::-1, ::-1]
    return {
        "weight": weight.transpose(3, 2, 0, 1),
        "affine.weight": tf[f"{scope}/mod_weight"].T,
        "affine.bias": tf[f"{scope}/mod_bias"] + 1,
        "bias": tf[f"{scope}/bias"],
    }


def styled_conv(tf: dict[str, np.ndarray], scope: str, noise_index: int, flip: bool = False) -> dict[str, np.ndarray]:
    return modulated_layer(tf, scope, flip) | {
        "noise_strength": tf[f"{scope}/noise_strength"],
        "noise_const": tf[f"synthesis/noise{noise_index}"][0, 0],
    }


def ada_layout(tf: dict[str, np.ndarray], resample_kernel) -> dict[str, np.ndarray]:
    """TF variable names and layouts -> ada-pytorch `state_dict` names and layouts."""
    arrays = {"mapping.w_avg": tf["dlatent_avg"], "synthesis.b4.const": tf["synthesis/4x4/Const/const"][0]}
    for i in sorted(int(m.group(1)) for key in tf if (m := re.fullmatch(r"mapping/Dense(\d+)/weight", key))):
        arrays[f"mapping.fc{i}.weight"] = tf[f"mapping/Dense{i}/weight"].T
        arrays[f"mapping.fc{i}.bias"] = tf[f"mapping/Dense{i}/bias"]
    taps = np.asarray(resample_kernel, dtype=np.float32)
    arrays["synthesis.b4.resample_filter"] = np.outer(taps, taps) / np.outer(taps, taps).sum()
    layers = {"b4.conv1": styled_conv(tf, "synthesis/4x4/Conv", 0), "b4.torgb": modulated_layer(tf, "synthesis/4x4/ToRGB")}
    for res in sorted({int(m.group(1)) for key in tf if (m := re.match(r"synthesis/(\d+)x\1/", key))} - {4}):
        scope, first_noise = f"synthesis/{res}x{res}", 2 * int(np.log2(res)) - 5
        layers[f"b{res}.conv0"] = styled_conv(tf, f"{scope}/Conv0_up", first_noise, flip=True)
        layers[f"b{res}.conv1"] = styled_conv(tf, f"{scope}/Conv1", first_noise + 1)
        layers[f"b{res}.torgb"] = modulated_layer(tf, f"{scope}/ToRGB")
    for layer, entries in layers.items():
        arrays |= {f"synthesis.{layer}.{name}": value for name, value in entries.items()}
    return arrays


def read_tf_generator(networks: tuple, which: str, path: str | os.PathLike) -> NvidiaGenerator:
    if which not in TF_NETWORK_INDEX:
        raise E4EBenchError(f"{path}: a TensorFlow pickle holds (G, D, Gs); choose G or G_ema (Gs), not {which!r}")
    network = networks[TF_NETWORK_INDEX[which]]
    if network.state.get("version", 0) < 4:
        raise E4EBenchError(f"{path}: TensorFlow network version {network.state.get('version')} predates StyleGAN2 (4)")
    kwargs = static_kwargs(network)
    try:
        tf = tf_variables(network)
        if kwargs.get("label_size") or any(key.startswith("mapping/LabelConcat") for key in tf):
            raise ValueError(f"{which} is a conditional generator (label_size={kwargs.get('label_size')}); only unconditional generators convert")
        if not kwargs.get("normalize_latents", True):
            raise ValueError(f"{which} does not normalise z (normalize_latents=False); this generator always does")
        arrays = ada_layout(tf, kwargs.get("resample_kernel", (1, 3, 3, 1)))
    except KeyError as err:
        raise E4EBenchError(
            f"{path}: {which} has no variable {err.args[0]!r}; only StyleGAN2 generators with the skip architecture "
            "(configs e and f) convert"
        ) from None
    except (ValueError, TypeError) as err:
        raise E4EBenchError(f"{path}: {err}") from None
    notes = [f"{name} {kwargs[name]}: set for NVIDIA's runtime; this generator runs float32 without clamping"
             for name in ("conv_clamp", "num_fp16_res") if kwargs.get(name)]
    return NvidiaGenerator(
        tensors={name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in arrays.items()},
        mapping_lr=float(kwargs.get("mapping_lrmul", 0.01)),
        description=f"TensorFlow StyleGAN2 pickle (G, D, Gs): {which} = network {network.state.get('name')!r}",
        notes=notes,
    )
