"""Throughput of the whole image-metric set on CPU (random weights), in image pairs per second.

Run: python -m pytest -m slow tests/test_metrics_bench.py --benchmark-enable
"""

import pytest
import torch

from e4e_bench.metrics import parse_metric_list
from e4e_bench.metrics.evaluate import Evaluation
from tests.metrics_helpers import distort, random_context, smooth_images

METRIC_SET = "l2,lpips,msssim,id_moco,fid,swd"
PAIRS = 16
BATCH = 8
SIZE = (256, 256)


@pytest.mark.slow
def test_metric_set_throughput_on_cpu(benchmark, two_threads):
    torch.manual_seed(0)
    real = smooth_images(PAIRS, *SIZE)
    fake = distort(real, 0.1)
    specs = parse_metric_list(METRIC_SET)

    def fresh_evaluation():
        return (Evaluation(specs, random_context()),), {}

    def evaluate(evaluation):
        with torch.inference_mode():
            for start in range(0, PAIRS, BATCH):
                batch = slice(start, start + BATCH)
                evaluation.add_pairs([str(i) for i in range(start, start + BATCH)], real[batch], fake[batch])
                evaluation.add_set("real", real[batch])
                evaluation.add_set("fake", fake[batch])
            return evaluation.summary()

    summary = benchmark.pedantic(evaluate, setup=fresh_evaluation, rounds=2, iterations=1)
    benchmark.extra_info["pairs_per_second"] = PAIRS / benchmark.stats.stats.mean
    benchmark.extra_info["seconds_per_metric"] = {spec.name: summary.metrics[spec.name].seconds for spec in specs}
    benchmark.extra_info["setup"] = f"{PAIRS} pairs {SIZE[0]}x{SIZE[1]}, batch {BATCH}, {torch.get_num_threads()} threads"
    assert summary.metrics["l2"].value > 0 and summary.metrics["swd"].details["n"] == PAIRS
