"""SWD: ProGAN's Laplacian pyramid against scipy, descriptors, seeding and behaviour."""

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics import get_metric
from e4e_bench.metrics.swd import extract_patches, laplacian_pyramid, level_count
from tests.metrics_helpers import random_context, smooth_images


def scipy_laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """The pyramid as metrics.md §1 states it, with scipy.ndimage.convolve(mode='mirror')."""
    taps = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (np.outer(taps, taps) / 256.0)[None, None]

    def down(x):
        return scipy.ndimage.convolve(x, kernel, mode="mirror")[..., ::2, ::2]

    def up(x):
        spread = np.zeros(x.shape[:2] + (x.shape[2] * 2, x.shape[3] * 2))
        spread[..., ::2, ::2] = x
        return scipy.ndimage.convolve(spread, kernel * 4, mode="mirror")

    pyramid = [images]
    for _ in range(levels - 1):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - up(pyramid[-1])
    return pyramid


def test_pyramid_equals_scipy_mirror_convolution():
    pixels = ((smooth_images(2, 64, 48) + 1) * 127.5).round().double()
    ours = laplacian_pyramid(pixels, level_count(64))
    reference = scipy_laplacian_pyramid(pixels.numpy(), level_count(64))
    assert [level.shape[-1] for level in ours] == [48, 24, 12]
    for mine, theirs in zip(ours, reference):
        np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-9)


def test_levels_stop_at_16_pixels_and_are_named_by_height():
    assert [level_count(h) for h in (256, 192, 1024, 24, 16, 15)] == [5, 4, 7, 1, 1, 0]


def test_patches_are_7x7_neighbourhoods_in_channel_row_column_order():
    level = torch.arange(2 * 3 * 12 * 14, dtype=torch.float32).view(2, 3, 12, 14)
    positions = torch.tensor([[3, 3], [8, 10]]).repeat(128, 1)  # 256 = 2 images x 128 patches
    patches = extract_patches(level, positions)
    assert patches.shape == (256, 3, 7, 7)
    torch.testing.assert_close(patches[0], level[0, :, 0:7, 0:7])
    torch.testing.assert_close(patches[129], level[1, :, 5:12, 7:14])


def swd(real, fake, batch_size=None, seed=0):
    metric = get_metric("swd").build(random_context(seed=seed))
    batch_size = batch_size or len(real)
    for start in range(0, len(real), batch_size):
        metric.add("real", real[start : start + batch_size])
        metric.add("fake", fake[start : start + batch_size])
    return metric.result()


def test_swd_of_a_set_with_itself_is_a_noise_floor_that_shrinks_with_n_and_blur_raises_it():
    images = smooth_images(16, 32, 32)
    blurred = [F.avg_pool2d(images, size, stride=1, padding=size // 2, count_include_pad=False) for size in (3, 7)]
    floor, slight, strong = (swd(images, other).value for other in (images, *blurred))
    assert floor < slight < strong
    assert swd(images[:4], images[:4]).value > 1.6 * floor  # sampling noise ~ 1/sqrt(N): 4x the images, ~half
    result = swd(images, blurred[1])
    assert set(result.details["levels"]) == {"32", "16"} and result.details["n"] == 16
    assert result.value == pytest.approx(np.mean(list(result.details["levels"].values())))


def test_swd_is_seeded_and_independent_of_the_batch_size():
    real, fake = smooth_images(6, 32, 32), smooth_images(6, 32, 32, seed=9)
    whole = swd(real, fake, batch_size=6).value
    assert swd(real, fake, batch_size=2).value == whole
    assert swd(real, fake, seed=1).value != whole


def test_swd_needs_equal_sets_of_one_size():
    with pytest.raises(E4EBenchError, match="3 real and 2 fake"):
        swd(smooth_images(3, 32, 32), smooth_images(3, 32, 32)[:2], batch_size=3)
    metric = get_metric("swd").build(random_context())
    metric.add("real", smooth_images(1, 32, 32))
    with pytest.raises(E4EBenchError, match="one image size"):
        metric.add("fake", smooth_images(1, 32, 48))
