"""The metric set on a GPU gives the CPU's numbers (skipped without CUDA)."""

import pytest
import torch

from e4e_bench.metrics import parse_metric_list
from e4e_bench.metrics.evaluate import Evaluation
from tests.metrics_helpers import distort, random_context, smooth_images


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_and_cpu_agree():
    real = smooth_images(4, 64, 64)
    fake = distort(real, 0.2)
    summaries = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)  # same random LPIPS backbone on both devices
        evaluation = Evaluation(parse_metric_list("l2,lpips,msssim,swd"), random_context(device=torch.device(device)))
        with torch.inference_mode():
            evaluation.add_pairs(list("abcd"), real.to(device), fake.to(device))
            evaluation.add_set("real", real.to(device))
            evaluation.add_set("fake", fake.to(device))
            summaries[device] = evaluation.summary().values()
    for name in ("l2", "lpips", "msssim", "swd"):
        assert summaries["cuda"][name] == pytest.approx(summaries["cpu"][name], rel=1e-3)
