"""`bench` end to end on a tiny domain, its three outputs, out-of-memory rows, and `report` of a bench folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest
import torch

from e4e_bench import devices

from e4e_bench.throughput import bench as method_throughput
from e4e_bench.reporting.bench_results import OUT_OF_MEMORY, read_bench, write_bench
from e4e_bench.cli import main
from e4e_bench.networks.generator import Generator
from e4e_bench.throughput.bench import (BenchSettings, Workload, generator_workload, measure_batch, prepared_step,
                                          run_bench)
from e4e_bench.methods import METHODS, Inversion, MethodEntry, WeightSource
from tests.conftest import make_tiny_generator

REQUIRED = ("method", "device", "dtype", "batch_size", "images_per_s", "latency_ms_median", "latency_ms_p90",
            "peak_memory_bytes", "gflop_per_image", "peak_fraction")
TOO_BIG = 2  # the batch size the fake method cannot hold


@dataclass
class OneLayerMethod:
    """A method whose codes come from one linear layer; batches of TOO_BIG images run out of memory."""

    generator: Generator
    name: str = "one_layer"
    input_size: tuple[int, int] = (32, 32)
    options: object = None
    source: WeightSource = field(default_factory=WeightSource)

    def invert(self, images: torch.Tensor) -> Inversion:
        if images.shape[0] == TOO_BIG:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        layer = torch.ones(self.generator.n_latent * self.generator.style_dim, images[0].numel())
        return Inversion((images.flatten(1) @ layer.t()).view(-1, self.generator.n_latent, self.generator.style_dim))

    def decode(self, inversion: Inversion, codes: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(inversion.codes if codes is None else codes)


@dataclass(frozen=True)
class NoOptions:
    pass


def build_one_layer(**_) -> OneLayerMethod:
    return OneLayerMethod(make_tiny_generator())


@pytest.fixture
def one_layer_method():
    entry = MethodEntry("one_layer", f"{__name__}:build_one_layer", f"{__name__}:NoOptions", "one linear layer")
    with METHODS.registered("one_layer", entry):
        yield


def test_a_batch_that_runs_out_of_memory_is_recorded_and_the_sweep_goes_on(tiny_domain, one_layer_method, tmp_path):
    rows = run_bench(BenchSettings(methods=("one_layer",), domain="tiny", batch_sizes=(1, TOO_BIG, 3),
                                   devices=("cpu",), repeats=2, warmup=0))
    assert [row["status"] for row in rows] == ["ok", OUT_OF_MEMORY, "ok"]
    assert rows[1]["images_per_s"] is None and rows[1]["latency_ms_median"] is None
    # one matrix product [B, 3*32*32] x [3*32*32, n_latent*style_dim] per call
    assert rows[2]["gflop_per_image"] == pytest.approx(2 * 3 * 32 * 32 * 8 * 64 / 1e9)
    write_bench(rows, tmp_path)
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert stored[1]["status"] == OUT_OF_MEMORY and stored[1]["images_per_s"] is None
    assert "out of memory" in (tmp_path / "bench.md").read_text()


def test_bench_command_writes_json_csv_and_markdown_and_report_includes_them(tiny_domain, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--methods", "e4e,opt_w", "--domain", "tiny", "--batch-sizes", "1,2", "--devices", "cpu",
                 "--random-weights", "--repeats", "2", "--warmup", "0", "--timed-steps", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_bench(out / "bench.json")
    assert [(row["method"], row["batch_size"]) for row in rows] == [("e4e", 1), ("e4e", 2), ("opt_w", 1), ("opt_w", 2)]
    for row in rows:
        assert set(REQUIRED) <= set(row)
        assert (row["device"], row["dtype"], row["status"]) == ("cpu", "fp32", "ok")
        assert row["images_per_s"] == pytest.approx(1000 * row["batch_size"] / row["latency_ms_median"])
        assert row["latency_ms_p90"] >= row["latency_ms_median"] > 0
        assert row["gflop_per_image"] > 0 and row["peak_memory_bytes"] > 0
        assert row["peak_fraction"] is None  # CPUs have no listed peak
        assert "throughput does not depend on weight values" in row["weights"]
    assert [row["recipe_steps"] for row in rows] == [None, None, 1000, 1000]
    csv = pd.read_csv(out / "bench.csv")
    assert set(REQUIRED) <= set(csv.columns) and len(csv) == 4
    markdown = (out / "bench.md").read_text()
    assert markdown in printed
    assert "| method" in markdown and "images/s" in markdown and "peak RSS of the process" in markdown
    assert "CPU: peak FLOP/s unknown" in markdown and "cpu bf16:" in markdown
    assert "nan" not in markdown  # the encoders' empty s/step cells are empty

    assert main(["report", str(out)]) == 0
    assert read_bench(out / "tables" / "bench.json") == rows
    assert "images/s" in capsys.readouterr().out


def test_low_precision_rows_state_their_difference_to_fp32(tiny_domain):
    generator = make_tiny_generator()
    settings = BenchSettings(methods=("generator",), domain="tiny", dtype="bf16", repeats=1, warmup=0)
    row = measure_batch("generator", generator_workload(generator, 2, settings), torch.device("cpu"), 2, settings)
    codes = torch.randn(2, generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = generator(codes)
    with torch.inference_mode():
        expected = (low.float() - generator(codes)).abs()
    assert row["max_abs_diff_to_fp32"] == pytest.approx(expected.max().item())
    assert row["mean_abs_diff_to_fp32"] == pytest.approx(expected.mean().item())


def test_channels_last_converts_the_4d_weights_and_inputs_and_keeps_the_result(tiny_domain):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    images = torch.randn(2, 3, 8, 8)
    expected = conv(images).detach()
    workload = Workload(lambda: conv(images), [conv], images)
    settings = BenchSettings(methods=("generator",), domain="tiny", channels_last=True)
    step = prepared_step(workload, settings, torch.device("cpu"))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert images.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(step(), expected)


@pytest.mark.slow
def test_compiled_rows_time_the_compiled_generator(tiny_domain):
    generator = make_tiny_generator()
    settings = BenchSettings(methods=("generator",), domain="tiny", compile=True, repeats=2, warmup=1)
    workload = generator_workload(generator, 2, settings)
    with torch.inference_mode():
        eager = generator(torch.randn(2, generator.n_latent, generator.style_dim,
                                      generator=torch.Generator().manual_seed(0)))
    row = measure_batch("generator", workload, torch.device("cpu"), 2, settings)
    assert row["compiled"] and row["status"] == "ok" and row["gflop_per_image"] > 0
    assert generator._compiled_call_impl is not None  # what nn.Module.compile() sets
    torch.testing.assert_close(workload.step(), eager, rtol=1e-4, atol=1e-4)  # inductor may reorder sums


@pytest.mark.parametrize("onednn", [True, False])
def test_cpu_rows_say_which_kernels_ran_low_precision(tmp_path, monkeypatch, caplog, onednn):
    """The note names the CPU's bf16 flags (from /proc/cpuinfo) and whether torch's oneDNN kernels or its reference
    kernels ran the bf16 convolutions; the second is warned about before the sweep."""
    assert {type(devices.cpu_onednn_kernels(dtype)) for dtype in ("bf16", "fp16")} == {bool}  # torch's own check runs
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n")
    monkeypatch.setattr(devices, "CPUINFO", cpuinfo)
    monkeypatch.setattr(devices, "cpu_onednn_kernels", lambda dtype: onednn)
    monkeypatch.setattr(method_throughput, "cpu_onednn_kernels", lambda dtype: onednn)
    kernels = "oneDNN" if onednn else "torch's reference kernels"
    assert devices.cpu_low_precision_note("bf16").startswith(f"bf16 flags: avx512_bf16; bf16 convolutions: {kernels}")
    assert devices.cpu_low_precision_note("fp32") == "bf16 flags: avx512_bf16"
    with caplog.at_level("WARNING"):
        assert run_bench(BenchSettings(methods=(), domain="toy", devices=("cpu",), dtype="bf16")) == []
    assert ("reference kernels" in caplog.text) is not onednn



@pytest.mark.parametrize("random_weights", [False, True])
def test_the_generator_row_times_the_domains_own_architecture(random_weights):
    # The toy's registered generator: 32 px, style_dim 64, 64 feature maps everywhere (not config-f's 512)
    from torch.utils.flop_counter import FlopCounterMode

    from e4e_bench.assets import asset_path
    from e4e_bench.checkpoints import load_generator

    toy, _ = load_generator(asset_path("toy-generator"))
    codes = torch.randn(1, toy.n_latent, toy.style_dim)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        toy(codes, noise="const")
    (row,) = run_bench(BenchSettings(methods=("generator",), domain="toy", batch_sizes=(1,), devices=("cpu",),
                                     repeats=1, warmup=0, random_weights=random_weights))
    assert row["gflop_per_image"] == pytest.approx(counter.get_total_flops() / 1e9, rel=1e-6)
    assert row["gflop_per_image"] < 0.2  # config-f at 32 px would be 8 GFLOP


def test_bench_options_reach_the_method_and_pti_is_timed_whole(tmp_path, capsys):
    """`--option` sets a method's options as in `run`: opt_w's recipe of 7 steps scales its timed steps;
    pti, with two kinds of step, is one whole inversion per call (no extrapolation)."""
    out = tmp_path / "bench"
    assert main(["bench", "--methods", "opt_w,pti", "--domain", "toy", "--batch-sizes", "2", "--devices", "cpu",
                 "--repeats", "1", "--warmup", "0", "--timed-steps", "1", "--option", "opt_w.steps=7",
                 "--option", "pti.steps=2", "--option", "pti.tune_steps=2", "--out", str(out)]) == 0
    rows = {row["method"]: row for row in read_bench(out / "bench.json")}
    assert rows["opt_w"]["recipe_steps"] == 7 and rows["opt_w"]["timed_steps"] == 1
    assert rows["pti"]["recipe_steps"] is None and rows["pti"]["images_per_s"] > 0
    assert main(["bench", "--methods", "opt_w", "--domain", "toy", "--option", "pti.steps=2"]) == 2
    assert "not one of the methods named" in capsys.readouterr().err
