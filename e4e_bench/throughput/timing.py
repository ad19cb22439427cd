"""Timing, FLOP counting and peak memory: the one place where e4e-bench measures speed.

Every timing is synchronised: queued GPU work is finished before a clock is read. A block of
code between other work (a batch of `invert`, a metric) is timed with `Stopwatch`; a repeated
call (`measure`) is warmed up first and then timed with CUDA events on GPUs, recorded around
each call and read after one synchronisation at the end, so that no host-device sync sits
inside the timed loop; elsewhere with the wall clock.
"""

from __future__ import annotations

import math
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from e4e_bench.devices import synchronize

PEAK_MEMORY_KINDS = {
    "cuda": "CUDA max allocated from the warm-up to the last timed call",
    "cpu": "peak RSS of the process (ru_maxrss): a high-water mark over the process's whole lifetime, "
           "so it includes everything that ran before this row",
}


class Stopwatch:
    """`with Stopwatch(device) as watch: ...` leaves the block's synchronised wall time in `watch.seconds`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = math.nan

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._started = perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        synchronize(self.device)
        self.seconds = perf_counter() - self._started


@dataclass(frozen=True)
class Latency:
    seconds: tuple[float, ...]  # one per timed call

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.seconds, 90))


@dataclass(frozen=True)
class Measurement:
    latency: Latency
    flops: int  # of one call, counted by torch's FLOP counter (matrix products and convolutions)
    peak_memory_bytes: int  # see PEAK_MEMORY_KINDS
    output: object  # what the counted call returned


def timer_name(device: torch.device) -> str:
    return "CUDA events" if device.type == "cuda" else "synchronised wall clock (perf_counter)"


def call_seconds(step: Callable[[], object], device: torch.device, repeats: int) -> Latency:
    """Seconds of each of `repeats` calls of `step`, back to back."""
    if device.type == "cuda":
        return _event_seconds(step, device, repeats)
    seconds = []
    for _ in range(repeats):
        with Stopwatch(device) as watch:
            step()
        seconds.append(watch.seconds)
    return Latency(tuple(seconds))


def _event_seconds(step: Callable[[], object], device: torch.device, repeats: int) -> Latency:
    with torch.cuda.device(device):
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        torch.cuda.synchronize(device)
        for start, end in events:
            start.record()
            step()
            end.record()
        torch.cuda.synchronize(device)
    return Latency(tuple(start.elapsed_time(end) / 1000 for start, end in events))  # elapsed_time is in ms


def count_flops(step: Callable[[], object]) -> tuple[int, object]:
    """FLOPs of one call of `step` (a multiply-add counts 2, from torch.utils.flop_counter) and what it returned."""
    with FlopCounterMode(display=False) as counter:
        output = step()
    return counter.get_total_flops(), output


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """See PEAK_MEMORY_KINDS for what the number covers on each kind of device."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def measure(step: Callable[[], object], device: torch.device, *, warmup: int, repeats: int,
            before_warmup: Callable[[], None] | None = None) -> Measurement:
    """Count the FLOPs of one call of `step`, run `before_warmup` (e.g. compilation, so that the count
    runs eagerly), make `warmup` untimed calls, then time `repeats` calls."""
    flops, output = count_flops(step)
    if before_warmup is not None:
        before_warmup()
    reset_peak_memory(device)
    for _ in range(warmup):
        step()
    latency = call_seconds(step, device, repeats)
    return Measurement(latency, flops, peak_memory_bytes(device), output)
