"""The timing module: latency statistics and images/s from a fake clock, FLOPs in closed form, CUDA events."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

from e4e_bench.throughput import timing as throughput
from e4e_bench.pipeline.inversion import Inverted
from e4e_bench.throughput.bench import BenchSettings, Workload, measure_batch
from e4e_bench.throughput.peak_flops import peak_rate

# Seconds each call of the fake step takes: the FLOP-counted call, one warm-up call, then five timed calls.
DURATIONS = [9.0, 7.0, 0.1, 0.4, 0.2, 0.3, 0.5]
MEDIAN, P90 = 0.3, 0.46  # of the timed five: sorted 0.1..0.5, p90 at rank 0.9 * 4 = 3.6 -> 0.4 + 0.6 * 0.1


class FakeClock:
    """`perf_counter` stand-in: time moves only when the fake step runs, by the next of `durations`."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = iter(durations)

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += next(self.durations)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(DURATIONS)
    monkeypatch.setattr(throughput, "perf_counter", fake)
    return fake


def test_stopwatch_times_the_block_and_inversion_drops_the_first_batch(clock):
    with throughput.Stopwatch(torch.device("cpu")) as watch:
        clock.step()
    assert watch.seconds == 9.0
    # per image: 2.0 (warm-up, left out), then 0.5, 0.25, 1.0 -> median 0.5, |deviations| 0, 0.25, 0.5 -> MAD 0.25
    timed = Inverted([], torch.zeros(0), timings=[(4, 8.0), (4, 2.0), (4, 1.0), (2, 2.0)])
    assert timed.timing() == pytest.approx((0.5, 0.25, 3))
    one = Inverted([], torch.zeros(0), timings=[(4, 8.0), (4, 2.0)])  # one timed batch: no median with a spread
    assert math.isnan(one.timing()[0]) and one.timing()[2] == 1


def test_latency_median_p90_and_images_per_second_follow_the_clock(clock):
    settings = BenchSettings(methods=("e4e",), domain="cars", warmup=1, repeats=5)
    workload = Workload(clock.step, [], torch.zeros(8, 3, 4, 4))
    row = measure_batch("e4e", workload, torch.device("cpu"), 8, settings)
    assert row["status"] == "ok"
    assert row["latency_ms_median"] == pytest.approx(1000 * MEDIAN)
    assert row["latency_ms_p90"] == pytest.approx(1000 * P90)
    assert row["images_per_s"] == pytest.approx(8 / MEDIAN)
    assert row["seconds_per_step"] is None and row["gflop_per_image"] == 0


def test_projection_rows_extrapolate_seconds_per_step_to_the_recipe(clock):
    settings = BenchSettings(methods=("opt_w",), domain="cars", warmup=1, repeats=5, timed_steps=2)
    workload = Workload(clock.step, [], torch.zeros(4, 3, 4, 4), recipe_steps=1000, timed_steps=2)
    row = measure_batch("opt_w", workload, torch.device("cpu"), 4, settings)
    assert row["seconds_per_step"] == pytest.approx(MEDIAN / 2)
    assert row["latency_ms_median"] == pytest.approx(1000 * MEDIAN / 2 * 1000)
    assert row["images_per_s"] == pytest.approx(4 / (MEDIAN / 2 * 1000))
    assert "extrapolated" in row["timing"] and "1000 steps" in row["timing"]


def test_cuda_events_are_read_after_one_synchronisation_at_the_end(clock, monkeypatch):
    syncs = []

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing

        def record(self):
            self.at, self.syncs_before = clock(), len(syncs)

        def elapsed_time(self, end):
            return (end.at - self.at) * 1000

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    clock.step(), clock.step()  # the counted and warm-up calls of DURATIONS
    latency = throughput.call_seconds(clock.step, torch.device("cuda", 0), repeats=5)
    assert latency.seconds == pytest.approx((0.1, 0.4, 0.2, 0.3, 0.5))
    assert len(syncs) == 2  # before the first and after the last call, none in between


def test_flop_counts_of_a_linear_and_a_convolution_are_the_closed_forms():
    batch, n_in, n_out = 3, 7, 5
    flops, _ = throughput.count_flops(lambda: nn.Linear(n_in, n_out)(torch.randn(batch, n_in)))
    assert flops == 2 * n_in * n_out * batch
    size, k = 6, 3
    flops, out = throughput.count_flops(lambda: nn.Conv2d(n_in, n_out, k, padding=1)(torch.randn(batch, n_in, size, size)))
    assert out.shape == (batch, n_out, size, size)
    assert flops == 2 * n_in * n_out * k * k * size * size * batch


def test_cpu_peak_memory_is_the_process_resident_set_in_bytes():
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert throughput.peak_memory_bytes(torch.device("cpu")) >= kib * 1024 > 50 * 2**20  # torch alone is > 50 MiB


@pytest.mark.parametrize("name, gpu", [("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
                                       ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-SXM4-80GB", "A100"),
                                       ("Tesla V100-PCIE-16GB", "V100 PCIe"), ("Tesla V100-SXM2-32GB", "V100 SXM2"),
                                       ("NVIDIA L4", "L4"), ("Tesla T4", "T4"), ("NVIDIA GeForce RTX 4090", "RTX 4090")])
def test_gpu_names_as_torch_gives_them_find_their_peak(name, gpu):
    assert peak_rate(name).gpu == gpu


def test_unlisted_gpus_and_missing_dtypes_have_no_peak():
    assert peak_rate("NVIDIA L40S") is None  # not the L4
    assert "bf16" not in peak_rate("Tesla T4").tflops
