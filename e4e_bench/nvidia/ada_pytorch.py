"""The generator of a stylegan2-ada-pytorch snapshot, read from the persistent objects' state.

A snapshot is a dict (`G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`); each network is a
tree of persistent objects whose state is a module `__dict__`. Walking `_parameters`, `_buffers`
(less the non-persistent ones) and `_modules` gives exactly `G_ema.state_dict()`; the same walk
collects the attributes that matter (conditioning, fp16 blocks, `conv_clamp`, mapping gains).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from e4e_bench.errors import E4EBenchError
from e4e_bench.nvidia.safe_unpickler import PersistentObject


@dataclass
class NvidiaGenerator:
    """Generator tensors under ada-pytorch's `state_dict` names, with what the weights do not say."""

    tensors: dict[str, torch.Tensor]
    mapping_lr: float  # learning-rate multiplier of the mapping layers (0.01 in every release)
    description: str  # what was read, in words
    notes: list[str] = field(default_factory=list)  # runtime settings the rosinality generator does not express


def module_states(obj: PersistentObject, prefix: str = "") -> dict[str, dict]:
    """Every module's state by its dotted name ('' for the root), like `named_modules()`."""
    states = {prefix.rstrip("."): obj.state}
    for name, child in obj.state.get("_modules", {}).items():
        if isinstance(child, PersistentObject):
            states |= module_states(child, f"{prefix}{name}.")
        elif child is not None:
            raise ValueError(f"module {prefix}{name} is a {type(child).__name__}, not a network layer")
    return states


def state_tensors(states: Mapping[str, dict]) -> dict[str, torch.Tensor]:
    """The state dict: parameters and persistent buffers of every module."""
    tensors = {}
    for name, state in states.items():
        skip = set(state.get("_non_persistent_buffers_set", ()))
        entries = list(state.get("_parameters", {}).items()) + [
            (key, value) for key, value in state.get("_buffers", {}).items() if key not in skip
        ]
        for key, value in entries:
            if value is None:
                continue
            if not torch.is_tensor(value):
                raise ValueError(f"{name}.{key} is a {type(value).__name__}, not a tensor")
            tensors[f"{name}.{key}" if name else key] = value.detach().to(torch.float32)
    return tensors


def runtime_notes(states: Mapping[str, dict]) -> list[str]:
    notes = []
    clamps = sorted({state["conv_clamp"] for state in states.values() if state.get("conv_clamp") is not None})
    if clamps:
        notes.append(f"conv_clamp {', '.join(map(str, clamps))}: NVIDIA clamps activations there, this generator does not")
    fp16 = sorted(state["resolution"] for state in states.values() if state.get("use_fp16") and "resolution" in state)
    if fp16:
        notes.append(f"fp16 blocks {', '.join(map(str, fp16))}: NVIDIA runs them in float16; the weights are float32 and run so here")
    return notes


def mapping_lr(states: Mapping[str, dict]) -> float:
    """The mapping layers' multiplier, from the gain NVIDIA applies to their biases."""
    gains = {float(state["bias_gain"]) for name, state in states.items() if name.startswith("mapping.fc") and "bias_gain" in state}
    if len(gains) > 1:
        raise ValueError(f"the mapping layers have different learning-rate multipliers {sorted(gains)}")
    return gains.pop() if gains else 0.01


def read_ada_generator(snapshot: dict, which: str, path: str | os.PathLike) -> NvidiaGenerator:
    network = snapshot.get(which)
    if not isinstance(network, PersistentObject):
        present = [key for key, value in snapshot.items() if isinstance(value, PersistentObject)]
        raise E4EBenchError(f"{path}: the snapshot has no network {which!r}; it holds {', '.join(map(str, present)) or 'none'}")
    c_dim = network.state.get("c_dim", 0) or 0
    try:
        states = module_states(network)
        if c_dim or "mapping.embed" in states:
            raise ValueError(f"{which} is a conditional generator (c_dim={c_dim}); only unconditional generators convert")
        tensors, lr = state_tensors(states), mapping_lr(states)
    except ValueError as err:
        raise E4EBenchError(f"{path}: {err}") from None
    keys = ", ".join(str(key) for key in snapshot)
    return NvidiaGenerator(
        tensors=tensors,
        mapping_lr=lr,
        description=f"stylegan2-ada-pytorch snapshot ({keys}): {which} of class {network.class_name}",
        notes=runtime_notes(states),
    )
