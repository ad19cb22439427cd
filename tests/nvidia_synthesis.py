"""stylegan2-ada-pytorch's synthesis forward on its own state dict, from the reference (§1.3, §1.6, §2.5).

Independent of e4e_bench.networks.generator: resampling is done literally (zero insertion, padding, a true
convolution with the FIR filter), the up-convolution as zero insertion then a correlation with
the flipped kernel, and the conv weights carry no 1/sqrt(fan_in) gain, as in NVIDIA's layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def zero_insert(x: torch.Tensor, up: int) -> torch.Tensor:
    out = x.new_zeros(*x.shape[:2], x.shape[2] * up, x.shape[3] * up)
    out[:, :, ::up, ::up] = x
    return out


def upfirdn(x: torch.Tensor, taps: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    x = F.pad(zero_insert(x, up), (pad[0], pad[1], pad[0], pad[1]))
    channels = x.shape[1]
    return F.conv2d(x, taps.flip(0, 1).expand(channels, 1, *taps.shape), groups=channels)


def modulated_conv(x, weight, styles, demodulate: bool, up: int, resample_filter) -> torch.Tensor:
    """Per-sample weights [B, out, in, k, k], applied as one grouped convolution."""
    batch, in_channels = styles.shape
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    w = w.reshape(-1, in_channels, *weight.shape[2:])
    x = x.reshape(1, -1, *x.shape[2:])
    k = weight.shape[-1]
    if up == 2:
        x = F.pad(zero_insert(x, 2), (k - 1, k - 2, k - 1, k - 2))
        x = F.conv2d(x, w.flip(2, 3), groups=batch)
        x = upfirdn(x, resample_filter * 4, 1, (1, 1))
    else:
        x = F.conv2d(x, w, padding=k // 2, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def affine(t: dict, prefix: str, w: torch.Tensor) -> torch.Tensor:
    weight = t[f"{prefix}.affine.weight"]
    return w @ (weight / math.sqrt(weight.shape[1])).T + t[f"{prefix}.affine.bias"]


def synthesis_layer(t: dict, prefix: str, x, w, up: int) -> torch.Tensor:
    x = modulated_conv(x, t[f"{prefix}.weight"], affine(t, prefix, w), True, up, t[f"{prefix}.resample_filter"])
    x = x + t[f"{prefix}.noise_const"] * t[f"{prefix}.noise_strength"]
    return F.leaky_relu(x + t[f"{prefix}.bias"][None, :, None, None], 0.2) * math.sqrt(2)


def torgb_layer(t: dict, prefix: str, x, w) -> torch.Tensor:
    weight = t[f"{prefix}.weight"]
    styles = affine(t, prefix, w) / math.sqrt(weight.shape[1])
    return modulated_conv(x, weight, styles, False, 1, None) + t[f"{prefix}.bias"][None, :, None, None]


def nvidia_synthesis(t: dict[str, torch.Tensor], ws: torch.Tensor) -> torch.Tensor:
    """`G.synthesis(ws, noise_mode='const')` for ws [B, num_ws, w_dim]."""
    x = t["synthesis.b4.const"][None].expand(ws.shape[0], -1, -1, -1)
    x = synthesis_layer(t, "synthesis.b4.conv1", x, ws[:, 0], up=1)
    img = torgb_layer(t, "synthesis.b4.torgb", x, ws[:, 1])
    res, w_idx = 8, 1
    while f"synthesis.b{res}.conv0.weight" in t:
        block = f"synthesis.b{res}"
        x = synthesis_layer(t, f"{block}.conv0", x, ws[:, w_idx], up=2)
        x = synthesis_layer(t, f"{block}.conv1", x, ws[:, w_idx + 1], up=1)
        img = upfirdn(img, t[f"{block}.resample_filter"] * 4, 2, (2, 1)) + torgb_layer(t, f"{block}.torgb", x, ws[:, w_idx + 2])
        res, w_idx = res * 2, w_idx + 2
    return img
