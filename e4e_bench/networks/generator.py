"""StyleGAN2 generator in plain PyTorch, with the module names of rosinality's checkpoints.

Module and buffer names are the checkpoint keys (`style.N`, `convs.N`, `to_rgbs.N`,
`noises.noise_N`, the FIR `kernel` buffers), so `g_ema` state dicts and the `decoder.*` part of
official e4e/pSp checkpoints load with `strict=True`.

The official fallback ops are replaced by cheaper equivalents with the same maths:
  * upfirdn2d upsampling (zero insertion, pad, FIR) is one depthwise transposed convolution;
  * the blur after an up-convolution is one depthwise convolution;
  * the modulated convolution folds style, demodulation and gain into the weights for one image
    at inference, and otherwise scales activations, so that a batch shares one dense convolution
    and backpropagation never needs a weight gradient of the folded kernels (which costs a third
    more FLOPs per projection step) (demodulation is a matrix product of squared styles with the
    squared weight norms);
  * activations are channels_last, and with grad mode off (inference) the per-channel scales,
    biases and noise are applied in place: at 512 px a new activation map is
    64 MB per image, and allocating it costs more than the arithmetic;
  * under autocast the activations stay in the autocast type from one convolution to the next
    (scales, biases and noise are cast to them, not they to fp32), while the 3-channel RGB skip
    path, cheap and what the pixels are made of, stays fp32;
  * fp32 CPU inference from CPU_PER_IMAGE_SIZE up decodes a batch one image at a time (see there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

NoiseSpec = str | Sequence[torch.Tensor]
NOISE_MODES = ("const", "random", "none")
SQRT2 = math.sqrt(2)


def default_channels(channel_multiplier: int) -> dict[int, int]:
    """Feature maps per resolution of config-f (channel_multiplier=2) and its relatives."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> torch.Tensor:
    """2-D separable FIR kernel from 1-D taps, normalised to sum to `gain`."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def multiply_add(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
    """x * scale + shift (`shift` None: + 0), in x's dtype, overwriting x when grad mode is off (inference)."""
    scale = scale.to(x.dtype)
    if torch.is_grad_enabled():
        return x * scale if shift is None else torch.addcmul(shift.to(x.dtype), x, scale)
    if shift is None:
        return x.mul_(scale)
    return torch.addcmul(shift.to(x.dtype), x, scale, out=x)


def add_product(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x + a * b in x's dtype, overwriting x when grad mode is off (inference)."""
    if torch.is_grad_enabled():
        return torch.addcmul(x, a.to(x.dtype), b.to(x.dtype))
    return x.addcmul_(a, b)


def scaled_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """rosinality's fused_leaky_relu: sqrt(2) * lrelu(x + bias, 0.2), bias broadcast over dim 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored raw, scaled at run time."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return scaled_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)

    def __repr__(self) -> str:
        out_dim, in_dim = self.weight.shape
        return f"{type(self).__name__}({in_dim}, {out_dim}, lr_mul={self.lr_mul}, activate={self.activate})"


class Upsample(nn.Module):
    """2x FIR upsampling (rosinality `Upsample`): zero insertion, pad, FIR, as a transposed conv."""

    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=factor**2))
        self.factor = factor
        pad = len(taps) - factor
        self.pad = ((pad + 1) // 2 + factor - 1, pad // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fir_upsample(x, self.kernel, self.factor, self.pad)


def fir_upsample(x: torch.Tensor, kernel: torch.Tensor, factor: int, pad: tuple[int, int]) -> torch.Tensor:
    """upfirdn2d(x, kernel, up=factor, pad=pad) as a depthwise transposed convolution.

    A stride-`factor` transposed convolution with the unflipped kernel equals zero insertion
    followed by a true convolution, padded by (k-1, k-factor); the requested pad is a crop of that.
    """
    channels = x.shape[1]
    k = kernel.shape[-1]
    weight = kernel.to(x.dtype).expand(channels, 1, k, k)
    full_pad = (k - 1, k - factor)
    crop = (full_pad[0] - pad[0], full_pad[1] - pad[1])
    if crop[0] == crop[1]:
        return F.conv_transpose2d(x, weight, stride=factor, padding=crop[0], groups=channels)
    out = F.conv_transpose2d(x, weight, stride=factor, groups=channels)
    return out[..., crop[0] : out.shape[-2] - crop[1], crop[0] : out.shape[-1] - crop[1]]


class Blur(nn.Module):
    """FIR filter with padding (rosinality `Blur`), as a depthwise convolution."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=upsample_factor**2))
        self.pad = pad

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        channels = x.shape[1]
        k = self.kernel.shape[-1]
        # upfirdn2d is a true convolution: correlate with the flipped kernel.
        weight = self.kernel.flip(0, 1).to(x.dtype).expand(channels, 1, k, k)
        p0, p1 = self.pad
        if p0 == p1:
            return F.conv2d(x, weight, bias, padding=p0, groups=channels)
        return F.conv2d(F.pad(x, (p0, p1, p0, p1)), weight, bias, groups=channels)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution with optional demodulation and 2x upsampling.

    `forward(x, w, gain, bias)` returns `gain * modconv(x, w) + bias`. For one image at inference the
    style, demodulation and gain are folded into the (small) weight; otherwise the activations are
    scaled instead, so that all images share one dense convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1)
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        if upsample:
            factor = 2
            pad = (len(blur_taps) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((pad + 1) // 2 + factor - 1, pad // 2 + 1), upsample_factor=factor)

    def forward(self, x: torch.Tensor, w: torch.Tensor, gain: float = 1.0, bias: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        """`offset` `[B, out, in, k, k]`: image b convolves with `weight * (1 + offset[b])` (HyperStyle)."""
        styles = self.modulation(w).to(self.weight.dtype)  # [B, in]
        if offset is not None:
            return self._per_image(x, styles, offset, gain, bias)
        weight = self.weight[0]  # [out, in, k, k], unscaled
        out_scale = torch.full_like(styles[:, :1], gain)  # [B, 1] or [B, out]
        if self.demodulate:
            # Scaled after the product: squares of scaled styles would be near fp16's subnormal range.
            weight_norms = torch.linalg.vector_norm(weight, dim=(2, 3)).square()  # [out, in]
            out_scale = out_scale * torch.rsqrt((styles.square() @ weight_norms.t()) * self.scale**2 + 1e-8)
        styles = styles * self.scale  # the weight scale, folded into the styles
        if x.shape[0] == 1 and not torch.is_grad_enabled():
            return self._conv(x, weight * (out_scale[0, :, None, None, None] * styles[0, None, :, None, None]), bias)
        x = self._conv(x * styles[:, :, None, None].to(x.dtype), weight, None)
        return multiply_add(x, out_scale[:, :, None, None], None if bias is None else bias[None, :, None, None])

    def _per_image(self, x: torch.Tensor, styles: torch.Tensor, offset: torch.Tensor, gain: float,
                   bias: torch.Tensor | None) -> torch.Tensor:
        """Each image's own kernel, style and demodulation folded in, as one grouped convolution."""
        batch = x.shape[0]
        if offset.shape != (batch, *self.weight.shape[1:]):
            raise ValueError(f"weight offsets must be {[batch, *self.weight.shape[1:]]}, got {list(offset.shape)}")
        weight = self.scale * (self.weight * (1 + offset.to(self.weight.dtype)) * styles[:, None, :, None, None])
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        weight = weight * gain
        grouped = x.reshape(1, batch * self.in_channels, *x.shape[2:])
        bias = None if bias is None else bias.repeat(batch)
        if self.upsample:
            kernels = weight.transpose(1, 2).reshape(batch * self.in_channels, self.out_channels, *weight.shape[3:])
            out = self.blur(F.conv_transpose2d(grouped, kernels.to(x.dtype), stride=2, groups=batch), bias)
        else:
            kernels = weight.reshape(batch * self.out_channels, self.in_channels, *weight.shape[3:])
            out = F.conv2d(grouped, kernels.to(x.dtype), bias, padding=self.kernel_size // 2, groups=batch)
        return out.reshape(batch, self.out_channels, *out.shape[2:])

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), bias)
        return F.conv2d(x, weight, bias, padding=self.kernel_size // 2)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
            f"upsample={self.upsample}, demodulate={self.demodulate})"
        )


class NoiseInjection(nn.Module):
    """Holds the per-layer noise strength; StyledConv applies it."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class FusedLeakyReLU(nn.Module):
    """Holds the activation bias; StyledConv applies it."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))


class StyledConv(nn.Module):
    """sqrt(2) * lrelu(modconv(x) + strength * noise + bias, 0.2).

    lrelu is positively homogeneous, so the sqrt(2) gain is applied to the convolution, the noise
    strength and the bias instead of to the (large) activation map.
    """

    def __init__(self, in_channels, out_channels, kernel_size, style_dim, upsample=False, blur_taps=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w, gain=SQRT2, bias=self.activate.bias * SQRT2, offset=offset)
        if noise is not None:
            out = add_product(out, noise, self.noise.weight * SQRT2)
        return F.leaky_relu(out, 0.2, inplace=True)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True, blur_taps=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        rgb = self.conv(x, w, bias=self.bias.view(3), offset=offset).to(self.bias.dtype)  # the 1x1 conv in the autocast type, the sum in fp32
        if skip is not None:
            with torch.autocast(x.device.type, enabled=False):
                rgb = rgb + self.upsample(skip)
        return rgb


class Generator(nn.Module):
    """StyleGAN2 (config-e/f skip architecture): W or W+ codes in, `[B, 3, size, size]` out."""

    # The activations' memory layout; `torch.func.vmap` (per-image weights, as PTI tunes) cannot
    # query any but the default, so a copy that is vmapped sets this to False.
    channels_last = True

    def __init__(
        self,
        size: int,  # output resolution, a power of two >= 8
        style_dim: int = 512,  # dimension of z, w and each W+ row
        n_mlp: int = 8,  # linear layers of the mapping network
        channel_multiplier: int = 2,  # 2 for config-f; scales the channels from 64 px up
        blur_kernel: Sequence[float] = (1, 3, 3, 1),  # FIR taps of every resampling filter
        lr_mlp: float = 0.01,  # learning-rate multiplier of the mapping network
        channels: dict[int, int] | None = None,  # explicit feature maps per resolution (overrides the table)
    ):
        super().__init__()
        log_size = int(math.log2(size))
        if size < 8 or 2**log_size != size:
            raise ValueError(f"generator size must be a power of two >= 8, got {size}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.log_size = log_size
        self.num_layers = (log_size - 2) * 2 + 1  # noise inputs
        self.n_latent = log_size * 2 - 2  # W+ rows
        self.channels = dict(channels) if channels is not None else default_channels(channel_multiplier)
        self.init_kwargs = dict(
            size=size,
            style_dim=style_dim,
            n_mlp=n_mlp,
            channel_multiplier=channel_multiplier,
            blur_kernel=list(blur_kernel),
            lr_mlp=lr_mlp,
            channels=None if channels is None else {int(k): int(v) for k, v in channels.items()},
        )

        self.style = nn.Sequential(
            PixelNorm(), *(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp))
        )
        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_taps=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer in range(self.num_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for i in range(3, log_size + 1):
            out_ch = ch[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_taps=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_taps=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, blur_taps=blur_kernel))
            in_ch = out_ch

    @property
    def device(self) -> torch.device:
        """Where the weights live (and where codes, noise and random draws must be)."""
        return self.input.input.device

    # -- latent space ------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z `[B, style_dim]` -> w `[B, style_dim]`."""
        return self.style(z)

    def mean_latent(self, n: int = 10_000, rng: torch.Generator | None = None) -> torch.Tensor:
        """Mean of `n` mapped samples, `[1, style_dim]` (`rng` None: torch's default stream)."""
        return sample_w(self, n, rng).mean(0, keepdim=True)

    def to_wplus(self, codes: torch.Tensor) -> torch.Tensor:
        """Broadcast W codes `[B, D]` to W+ `[B, n_latent, D]`; W+ codes pass through."""
        if codes.ndim == 2 and codes.shape[1] == self.style_dim:
            return codes[:, None, :].expand(-1, self.n_latent, -1)
        if codes.ndim == 3 and codes.shape[1:] == (self.n_latent, self.style_dim):
            return codes
        raise ValueError(
            f"codes must be [N, {self.style_dim}] (W) or [N, {self.n_latent}, {self.style_dim}] (W+), "
            f"got {list(codes.shape)}"
        )

    def style_mix(self, codes_a: torch.Tensor, codes_b: torch.Tensor, crossover: int) -> torch.Tensor:
        """W+ codes taking rows [0, crossover) from `codes_a` and the rest from `codes_b`."""
        a, b = self.to_wplus(codes_a), self.to_wplus(codes_b)
        return torch.cat([a[:, :crossover], b[:, crossover:]], dim=1)

    @staticmethod
    def truncate(codes: torch.Tensor, psi: float, center: torch.Tensor) -> torch.Tensor:
        """Move codes towards `center` (`[D]`, `[1, D]` or per-row `[n, D]`): center + psi * (codes - center)."""
        return center + psi * (codes - center)

    # -- noise -------------------------------------------------------------------------------
    def noise_buffers(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def make_noise(self, batch: int = 1, rng: torch.Generator | None = None) -> list[torch.Tensor]:
        return [torch.randn(batch, *buf.shape[1:], generator=rng, device=self.device) for buf in self.noise_buffers()]

    def _resolve_noise(self, noise: NoiseSpec, batch: int, rng: torch.Generator | None) -> list[torch.Tensor | None]:
        if isinstance(noise, str):
            if noise == "const":
                return self.noise_buffers()
            if noise == "random":
                return self.make_noise(batch, rng)
            if noise == "none":
                return [None] * self.num_layers
            raise ValueError(f"noise must be one of {NOISE_MODES} or a list of tensors, got {noise!r}")
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        return list(noise)

    def modulated_layers(self) -> dict[str, StyledConv | ToRGB]:
        """Every layer with a modulated convolution, in synthesis order (conv1, to_rgb1, then two convs and a
        to_rgb per resolution): the order of HyperStyle's outputs, and the names `offsets` are keyed by."""
        layers = {"conv1": self.conv1, "to_rgb1": self.to_rgb1}
        for k, to_rgb in enumerate(self.to_rgbs):
            layers |= {f"convs.{2 * k}": self.convs[2 * k], f"convs.{2 * k + 1}": self.convs[2 * k + 1],
                       f"to_rgbs.{k}": to_rgb}
        return layers

    def modulation_weights(self) -> dict[str, torch.Tensor]:
        """Style-affine weights `[C_in, style_dim]` of every conv (not ToRGB), in W+ row order."""
        layers = {"conv1": self.conv1, **{f"convs.{i}": conv for i, conv in enumerate(self.convs)}}
        return {f"{name}.conv.modulation.weight": layer.conv.modulation.weight for name, layer in layers.items()}

    # -- synthesis ---------------------------------------------------------------------------
    def forward(
        self,
        codes: torch.Tensor,
        noise: NoiseSpec = "const",
        rng: torch.Generator | None = None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Decode W `[B, D]` or W+ `[B, n_latent, D]` codes to images `[B, 3, size, size]` (unclamped).

        noise: "const" (the stored buffers), "random" (drawn from `rng`), "none", or a list of
        `num_layers` maps `[B or 1, 1, H, H]`.
        offsets: per-image weight offsets by layer name (`modulated_layers`), `[B, out, in, k, k]`:
        image b's layer convolves with `weight * (1 + offsets[name][b])`; absent layers are unchanged.
        """
        latent = self.to_wplus(codes)
        batch = latent.shape[0]
        noises = self._resolve_noise(noise, batch, rng)
        offsets = dict(offsets or {})
        if offsets and (unknown := set(offsets) - set(self.modulated_layers())):
            raise ValueError(f"no modulated layers named {sorted(unknown)}")
        if batch > 1 and self.size >= CPU_PER_IMAGE_SIZE and latent.device.type == "cpu" and not torch.is_grad_enabled() \
                and not torch.is_autocast_enabled("cpu"):
            return torch.cat([self._synthesize(latent[i : i + 1], _image_noise(noises, i),
                                               {name: value[i : i + 1] for name, value in offsets.items()})
                              for i in range(batch)])
        return self._synthesize(latent, noises, offsets)

    def _synthesize(self, latent: torch.Tensor, noises: list[torch.Tensor | None],
                    offsets: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        offsets = offsets or {}
        batch = latent.shape[0]
        # channels_last lets the CPU (oneDNN) and cuDNN convolutions skip layout conversions.
        out = self.input(batch)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        out = self.conv1(out, latent[:, 0], noises[0], offsets.get("conv1"))
        skip = self.to_rgb1(out, latent[:, 1], offset=offsets.get("to_rgb1"))
        row = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, latent[:, row], noises[2 * k + 1], offsets.get(f"convs.{2 * k}"))
            out = self.convs[2 * k + 1](out, latent[:, row + 1], noises[2 * k + 2], offsets.get(f"convs.{2 * k + 1}"))
            skip = to_rgb(out, latent[:, row + 2], skip, offsets.get(f"to_rgbs.{k}"))
            row += 2
        return skip.contiguous()

    def extra_repr(self) -> str:
        return f"size={self.size}, style_dim={self.style_dim}, n_latent={self.n_latent}, n_mlp={self.n_mlp}"


# From this resolution up, fp32 CPU inference decodes a batch one image at a time: each image's style
# folds into its (small) high-resolution weights, while a batch shares one dense convolution over maps
# far larger than the cache. 512 px, 2 threads, batch 4: 1.09 s per image this way, 1.25 s batched
# (1.08 s at batch 1). Not under autocast, where torch's bf16 reference kernels gain from a batch.
CPU_PER_IMAGE_SIZE = 256


def _image_noise(noises: list[torch.Tensor | None], index: int) -> list[torch.Tensor | None]:
    """Image `index`'s noise maps from maps `[B or 1, 1, H, H]` (or None)."""
    return [n if n is None or n.shape[0] == 1 else n[index : index + 1] for n in noises]


MAPPING_BATCH = 10_000


@torch.no_grad()
def sample_w(generator: Generator, n: int, rng: torch.Generator | None) -> torch.Tensor:
    """`n` mapped samples `[n, style_dim]` of z ~ N(0, I), drawn from `rng` on its own device, in one call
    (None: torch's default stream on the generator's device).

    Drawing on `rng`'s device keeps the samples of a CPU generator the same whichever device maps
    them; the mapping runs in chunks so that 100,000 samples need no more memory than 10,000.
    """
    z = torch.randn(n, generator.style_dim, generator=rng, device=rng.device if rng is not None else generator.device)
    like = next(generator.parameters())
    return torch.cat([generator.mapping(chunk.to(like)) for chunk in z.split(MAPPING_BATCH)])
