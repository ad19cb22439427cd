"""Peak dense TFLOP/s of common GPUs per dtype, from the vendor's data sheets.

The data sheets of Hopper, Ampere and Ada give tensor-core rates "with sparsity" (2:4 structured);
dense rates are half of those, and those halves are what is listed here. fp32 is the FP32 rate
of the CUDA cores (no tensor cores). A dtype a GPU has no fast path for (bf16 before Ampere) is
absent: its peak is unknown, not zero. CPUs are absent too: their peak depends on the SKU, the
clock and the number of cores in use, which torch cannot tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PeakRate:
    gpu: str  # the model the figures belong to
    tflops: dict[str, float]  # dtype ("fp32", "bf16", "fp16") -> dense TFLOP/s
    source: str


HOPPER = "bf16/fp16: dense tensor-core rate, half the data sheet's 'with sparsity' figure"
# (pattern matched against torch.cuda.get_device_name, first match wins; the entry)
PEAK_RATES: tuple[tuple[str, PeakRate], ...] = (
    (r"H200 NVL", PeakRate("H200 NVL", {"fp32": 60.0, "bf16": 835.5, "fp16": 835.5},
                           f"NVIDIA H200 NVL data sheet; {HOPPER} (1,671)")),
    (r"H200", PeakRate("H200 SXM", {"fp32": 67.0, "bf16": 989.5, "fp16": 989.5},
                       f"NVIDIA H200 data sheet; {HOPPER} (1,979)")),
    (r"H100 NVL", PeakRate("H100 NVL", {"fp32": 60.0, "bf16": 835.5, "fp16": 835.5},
                           f"NVIDIA H100 data sheet; {HOPPER} (1,671)")),
    (r"H100 PCIe", PeakRate("H100 PCIe", {"fp32": 51.0, "bf16": 756.5, "fp16": 756.5},
                            f"NVIDIA H100 data sheet; {HOPPER} (1,513)")),
    (r"H100", PeakRate("H100 SXM", {"fp32": 67.0, "bf16": 989.5, "fp16": 989.5},
                       f"NVIDIA H100 data sheet; {HOPPER} (1,979)")),
    (r"A100", PeakRate("A100", {"fp32": 19.5, "bf16": 312.0, "fp16": 312.0},
                       "NVIDIA A100 data sheet; bf16/fp16: dense tensor-core rate")),
    (r"V100[- ]PCIE", PeakRate("V100 PCIe", {"fp32": 14.0, "fp16": 112.0},
                               "NVIDIA V100 data sheet; fp16: tensor-core rate; no bf16 hardware")),
    (r"V100", PeakRate("V100 SXM2", {"fp32": 15.7, "fp16": 125.0},
                       "NVIDIA V100 data sheet; fp16: tensor-core rate; no bf16 hardware")),
    (r"\bL4\b", PeakRate("L4", {"fp32": 30.3, "bf16": 121.0, "fp16": 121.0},
                         "NVIDIA L4 data sheet; bf16/fp16: dense tensor-core rate, half of 242 'with sparsity'")),
    (r"\bT4\b", PeakRate("T4", {"fp32": 8.1, "fp16": 65.0},
                         "NVIDIA T4 data sheet; fp16: mixed-precision tensor-core rate; no bf16 hardware")),
    (r"RTX 4090", PeakRate("RTX 4090", {"fp32": 82.6, "bf16": 165.2, "fp16": 165.2},
                           "NVIDIA Ada GPU architecture white paper; bf16/fp16: dense tensor-core rate with "
                           "fp32 accumulation")),
)
TF32_NOTE = ("fp32 convolutions may run on TF32 tensor cores (torch.backends.cudnn.allow_tf32, on by default), "
             "so an fp32 fraction above 1 is possible on Ampere and later")


def peak_rate(device_name: str) -> PeakRate | None:
    """The table entry of a GPU named as torch names it ("NVIDIA H100 80GB HBM3"), None if not listed."""
    for pattern, rate in PEAK_RATES:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return rate
    return None
