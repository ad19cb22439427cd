"""L2, LPIPS and MS-SSIM against independent computations, and the metric registry."""

import sys

import numpy as np
import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F

from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics import METRICS, get_metric, parse_metric_list, register_metric
from e4e_bench.metrics.msssim import ms_ssim, scale_count
from tests.metrics_helpers import distort, random_context, smooth_images

msssim_module = sys.modules["pytorch_msssim.ssim"]


def test_l2_is_per_image_mse_of_signed_images():
    real, fake = smooth_images(3, 16, 20), smooth_images(3, 16, 20, seed=5)
    scores = get_metric("l2").build(random_context())(real, fake)
    expected = ((real.numpy() - fake.numpy()) ** 2).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6)


def test_lpips_of_a_batch_is_lpips_of_each_image_alone():
    """Batch independence; the value itself is checked against an independent reference in test_lpips_net."""
    torch.manual_seed(0)
    real, fake = smooth_images(3, 64, 48), smooth_images(3, 64, 48, seed=2)
    metric = get_metric("lpips").build(random_context())
    with torch.inference_mode():
        scores = metric(real, fake)
        expected = torch.cat([metric(real[i : i + 1], fake[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-7)
    assert (scores > 0).all()


@pytest.mark.parametrize("size", [(192, 256), (171, 165)])
def test_msssim_equals_pytorch_msssim_where_it_applies(size):
    x = (smooth_images(2, *size) + 1) / 2
    y = (distort(smooth_images(2, *size), 0.2) + 1) / 2
    expected = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(ms_ssim(x, y), expected, rtol=0, atol=2e-5)


def reduced_msssim_from_pytorch_msssim_levels(x, y, scales):
    """Compose pytorch-msssim's single-scale SSIM/CS into an n-scale product with renormalised weights."""
    window = msssim_module._fspecial_gauss_1d(11, 1.5).repeat(3, 1, 1, 1)
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales])
    weights = weights / weights.sum()
    factors = []
    for scale in range(scales):
        ssim, cs = msssim_module._ssim(x, y, data_range=1.0, win=window, size_average=False)
        if scale < scales - 1:
            factors.append(cs.relu())
            padding = [s % 2 for s in x.shape[-2:]]
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    factors.append(ssim.relu())
    return torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


@pytest.mark.parametrize("size,scales", [((64, 64), 3), ((24, 32), 2), ((48, 90), 3)])
def test_msssim_small_images_use_fewer_scales_with_renormalised_weights(size, scales):
    assert scale_count(*size) == scales
    x = (smooth_images(2, *size) + 1) / 2
    y = (distort(smooth_images(2, *size), 0.1) + 1) / 2
    expected = reduced_msssim_from_pytorch_msssim_levels(x, y, scales)
    torch.testing.assert_close(ms_ssim(x, y), expected, rtol=0, atol=2e-5)


def test_msssim_metric_is_one_for_identical_images_and_lower_for_noisy():
    real = smooth_images(2, 32, 32)
    metric = get_metric("msssim").build(random_context())
    torch.testing.assert_close(metric(real, real), torch.ones(2))
    assert (metric(real, distort(real, 0.3)) < 0.95).all()


def test_msssim_rejects_images_below_the_window():
    with pytest.raises(E4EBenchError, match="too small for MS-SSIM"):
        scale_count(10, 64)
    assert [scale_count(s, s) for s in (161, 160, 81, 80, 41, 21, 11)] == [5, 4, 4, 3, 3, 2, 1]


def test_registry_lists_the_image_metrics_with_kinds_and_protocols():
    assert {"l2", "lpips", "lpips_vgg", "msssim", "id", "id_arcface", "id_moco", "fid", "swd"} <= set(METRICS)
    assert METRICS["fid"].kind == "set" and METRICS["l2"].kind == "paired"
    assert METRICS["msssim"].higher_is_better and not METRICS["l2"].higher_is_better
    assert "AlexNet" in METRICS["lpips"].protocol and "VGG" in METRICS["lpips_vgg"].protocol


def test_metric_lists_reject_unknown_repeated_and_wrong_kind_names():
    assert [spec.name for spec in parse_metric_list("l2, swd")] == ["l2", "swd"]
    with pytest.raises(E4EBenchError, match="choose one of: .*lpips"):
        parse_metric_list("l2,lpip")
    with pytest.raises(E4EBenchError, match="twice"):
        parse_metric_list("l2,l2")
    with pytest.raises(E4EBenchError, match="cannot be computed here"):
        parse_metric_list("l2", kinds=("set",))


def test_register_metric_rejects_duplicate_and_malformed_names():
    with pytest.raises(ValueError, match="registered twice"):
        register_metric("l2", kind="paired", protocol="again")
    with pytest.raises(ValueError, match="must match"):
        register_metric("L2-x", kind="paired", protocol="x")
    with pytest.raises(ValueError, match="kind"):
        register_metric("newmetric", kind="pixels", protocol="x")
