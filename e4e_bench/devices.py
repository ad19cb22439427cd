"""Device strings from the command line to torch devices."""

from __future__ import annotations

import torch

from e4e_bench.errors import E4EBenchError


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:K`."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise E4EBenchError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:K") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise E4EBenchError(f"device {spec!r} requested but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise E4EBenchError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise E4EBenchError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:K")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that wall-clock timings measure finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
