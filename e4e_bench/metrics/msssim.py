"""MS-SSIM, numerically the same as pytorch-msssim 1.0.0, extended to images under 161 px.

pytorch-msssim refuses images whose short side is <= 160 (5 scales of an 11-tap window). Here a
short side S uses the largest scale count n <= 5 with S > 10 * 2**(n-1) and the first n standard
weights renormalised to sum to 1; for S > 160 that is exactly pytorch-msssim's number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics.registry import MetricContext, register_metric

SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 1.0


def scale_count(height: int, width: int) -> int:
    """How many scales fit: the short side must exceed (window-1) * 2**(scales-1)."""
    short = min(height, width)
    if short < WINDOW_SIZE:
        raise E4EBenchError(
            f"images of {height}x{width} are too small for MS-SSIM (short side must be >= {WINDOW_SIZE} px)"
        )
    scales = len(SCALE_WEIGHTS)
    while scales > 1 and short <= (WINDOW_SIZE - 1) * 2 ** (scales - 1):
        scales -= 1
    return scales


def scale_weights(scales: int) -> torch.Tensor:
    weights = torch.tensor(SCALE_WEIGHTS[:scales], dtype=torch.float64)
    return weights / weights.sum()


def gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    offsets = torch.arange(WINDOW_SIZE, device=device, dtype=dtype) - WINDOW_SIZE // 2
    window = torch.exp(-offsets.square() / (2 * WINDOW_SIGMA**2))
    return window / window.sum()


def blur_valid(stack: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian, no padding, each channel on its own."""
    channels = stack.shape[1]
    stack = F.conv2d(stack, window.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(stack, window.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def ssim_and_contrast(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(image, channel) SSIM and contrast-structure means at one scale, each [B, C]."""
    channels = x.shape[1]
    moments = blur_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
    var_x = xx - mu_x.square()
    var_y = yy - mu_y.square()
    cov_xy = xy - mu_x * mu_y
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    contrast = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
    return (luminance * contrast).flatten(2).mean(dim=2), contrast.flatten(2).mean(dim=2)


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image of [B,3,H,W] tensors in [0,1] -> [B]."""
    scales = scale_count(*x.shape[-2:])
    window = gaussian_window(x.device, x.dtype)
    factors = []
    for scale in range(scales):
        ssim, contrast = ssim_and_contrast(x, y, window)
        if scale < scales - 1:
            factors.append(contrast.relu())
            padding = [side % 2 for side in x.shape[-2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    factors.append(ssim.relu())
    weights = scale_weights(scales).to(device=x.device, dtype=x.dtype).view(-1, 1, 1)
    return torch.stack(factors).pow(weights).prod(dim=0).mean(dim=1)


def ms_ssim_of_signed(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of [-1,1] images, mapped to [0,1] (clamped) first."""
    return ms_ssim(((real + 1) / 2).clamp(0, 1), ((fake + 1) / 2).clamp(0, 1))


@register_metric(
    "msssim",
    kind="paired",
    title="MS-SSIM",
    unit="MS-SSIM (1: identical)",
    in_run=True,
    higher_is_better=True,
    protocol=(
        "MS-SSIM as pytorch-msssim 1.0.0: [0,1] RGB (clamped), data_range 1, Gaussian window 11 sigma 1.5, "
        "valid filtering, per-channel product of scales then channel mean; 5 scales when the short side "
        "> 160 px, else the largest n with side > 10*2^(n-1) and the first n weights renormalised"
    ),
)
def build_msssim(context: MetricContext):
    return ms_ssim_of_signed
