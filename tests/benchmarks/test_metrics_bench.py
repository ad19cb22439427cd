"""Benchmarks of the image metrics on CPU (random weights): each metric alone at toy and cars sizes,
and the whole set at 256x256, in image pairs per second.

Run: python -m pytest tests/benchmarks -m slow --benchmark-enable
"""

import pytest
import torch

from e4e_bench.devices import synchronize
from e4e_bench.metrics import get_metric, parse_metric_list
from e4e_bench.metrics.evaluate import Evaluation
from tests.metrics_helpers import distort, random_context, smooth_images

METRIC_SET = "l2,lpips,msssim,id_moco,fid,swd"
IMAGE_METRICS = ("l2", "lpips", "lpips_vgg", "msssim", "id_arcface", "id_moco", "fid", "swd")
SIZES = {"toy": (48, 64), "cars": (192, 256)}  # toy: a 64 px frame at 4:3 (LPIPS-Alex needs > 32 px)
PAIRS = 16
BATCH = 8


def evaluate_all(evaluation: Evaluation, real: torch.Tensor, fake: torch.Tensor):
    """Feed every pair in batches (paired metrics score pairs, set metrics each side) and summarise."""
    with torch.inference_mode():
        for start in range(0, len(real), BATCH):
            batch = slice(start, start + BATCH)
            evaluation.add_pairs([str(i) for i in range(start, start + BATCH)], real[batch], fake[batch])
            evaluation.add_set("real", real[batch])
            evaluation.add_set("fake", fake[batch])
        summary = evaluation.summary()
    synchronize(evaluation.context.device)
    return summary


def time_evaluation(benchmark, specs, size):
    torch.manual_seed(0)
    real = smooth_images(PAIRS, *size)
    fake = distort(real, 0.1)

    def fresh_evaluation():
        return (Evaluation(specs, random_context()), real, fake), {}

    summary = benchmark.pedantic(evaluate_all, setup=fresh_evaluation, rounds=2, iterations=1)
    benchmark.extra_info["setup"] = f"{PAIRS} pairs {size[0]}x{size[1]}, batch {BATCH}, {torch.get_num_threads()} threads"
    if benchmark.stats is not None:  # None under --benchmark-disable (the default addopts)
        benchmark.extra_info["pairs_per_second"] = PAIRS / benchmark.stats.stats.median
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", IMAGE_METRICS)
def test_metric_throughput_on_cpu(benchmark, two_threads, name, size):
    summary = time_evaluation(benchmark, [get_metric(name)], SIZES[size])
    assert name in summary.metrics


@pytest.mark.slow
def test_metric_set_throughput_on_cpu(benchmark, two_threads):
    specs = parse_metric_list(METRIC_SET)
    summary = time_evaluation(benchmark, specs, (256, 256))
    benchmark.extra_info["seconds_per_metric"] = {spec.name: summary.metrics[spec.name].seconds for spec in specs}
    assert summary.metrics["l2"].value > 0 and summary.metrics["swd"].details["n"] == PAIRS
