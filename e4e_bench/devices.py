"""Device strings from the command line to torch devices, and what each device is."""

from __future__ import annotations

import platform
from pathlib import Path

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


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str:
    """The first value of `name` in /proc/cpuinfo ("" where there is none, e.g. off Linux)."""
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == name), "")


def device_name(device: torch.device) -> str:
    """The GPU's name as torch gives it, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_bf16_flags() -> list[str]:
    """Which of CPU_BF16_FLAGS this CPU has (none: bf16 arithmetic is emulated, slower than fp32)."""
    flags = set(_cpuinfo_field("flags").split())
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def cpu_onednn_kernels(dtype: str) -> bool:
    """Whether torch runs `dtype` ("bf16", "fp16") convolutions on this CPU with oneDNN.

    torch decides this from the CPU's instruction set (for bf16 AVX-512 or AMX, for fp16 AVX-512-FP16
    or AMX-FP16); otherwise a bf16/fp16 convolution runs torch's reference kernels, an order of
    magnitude slower than fp32.
    """
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[dtype]
    return torch.backends.mkldnn.is_available() and bool(getattr(torch.ops.mkldnn, check)())


def cpu_low_precision_note(dtype: str) -> str:
    """What a CPU row in `dtype` ran on: the native bf16 flags, and for bf16/fp16 whether oneDNN ran it."""
    flags = ", ".join(cpu_bf16_flags()) or "none (no amx_bf16/avx512_bf16: bf16 arithmetic is emulated)"
    if dtype == "fp32":
        return f"bf16 flags: {flags}"
    if cpu_onednn_kernels(dtype):
        return f"bf16 flags: {flags}; {dtype} convolutions: oneDNN"
    return (f"bf16 flags: {flags}; {dtype} convolutions: torch's reference kernels (torch has no oneDNN {dtype} path "
            "on this CPU), far slower than fp32")
