"""bf16 and fp16 autocast on the CPU (what `bench --dtype` runs): the generator and the encoders stay close to fp32.

Tolerance: under autocast the inputs and weights of every convolution and matrix product are
rounded to the low-precision type (unit roundoff u = 2^-8 for bf16, 2^-11 for fp16) while
accumulation stays fp32, so each layer adds a relative error of about u and independent errors
partly cancel. We hold the largest difference to 8u of the output's range: the tiny generator
measures about 4.6u (bf16) and 2.7u (fp16), the 50-layer encoders about 1u, and a layer left in
fp32 or computed in the wrong type shows as zero or as a difference far above it.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from e4e_bench.methods import build_method
from tests.conftest import make_tiny_generator

UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
DTYPES = pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])


def relative_error(low: torch.Tensor, reference: torch.Tensor) -> float:
    return float((low.float() - reference).abs().max() / reference.abs().max())


@DTYPES
def test_generator_under_autocast_is_within_8_units_of_fp32(dtype):
    generator = make_tiny_generator()
    codes = generator.mapping(torch.randn(4, generator.style_dim, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        reference = generator(codes)
        with torch.autocast("cpu", dtype=dtype):
            low = generator(codes)
    assert low.dtype == torch.float32  # the output is fp32, the convolutions were not
    assert 0 < relative_error(low, reference) < 8 * UNIT_ROUNDOFF[dtype]


class ActivationCasts(TorchDispatchMode):
    """Records the shape of every activation map cast from fp32 to another dtype: a `[batch, C, H, W]`
    tensor with more than 3 channels and H, W >= 4 (weights lead with their output channels)."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch = batch
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.to.dtype, torch.ops.aten._to_copy.default):
            source = args[0]
            batch, channels, height, width = source.shape if source.ndim == 4 else (0, 0, 0, 0)
            if (batch, source.dtype) == (self.batch, torch.float32) and channels > 3 and min(height, width) >= 4 \
                    and out.dtype != torch.float32:
                self.shapes.append(tuple(source.shape))
        return out


@DTYPES
@pytest.mark.parametrize("batch", [1, 3])
def test_generator_activations_stay_in_the_autocast_dtype(dtype, batch):
    """Only the constant input is cast down: every later convolution receives the previous one's
    low-precision output (the old code went back to fp32 in every layer's scale and noise, and
    paid a cast of the whole map before each convolution)."""
    generator = make_tiny_generator()
    codes = torch.randn(batch, generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype), ActivationCasts(batch) as casts:
        generator(codes)
    assert casts.shapes == [(batch, generator.channels[4], 4, 4)]


@DTYPES
@pytest.mark.parametrize("name", ["e4e", "psp"])
def test_encoder_activations_stay_in_the_autocast_dtype(tiny_domain, name, dtype):
    """Only the 3-channel images are cast down; no feature map returns to fp32 on the way."""
    method = build_method(name, domain=tiny_domain, random_weights=True, seed=0)
    images = torch.rand(2, 3, *method.input_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.autocast("cpu", dtype=dtype), ActivationCasts(2) as casts:
        method.invert(images)
    assert casts.shapes == []


@DTYPES
@pytest.mark.parametrize("name", ["e4e", "psp"])
def test_encoder_offsets_under_autocast_are_within_8_units_of_fp32(tiny_domain, name, dtype):
    method = build_method(name, domain=tiny_domain, random_weights=True, seed=0)
    images = torch.rand(2, 3, *method.input_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latent_avg = method.inverter.latent_avg  # the encoder's own output is the offset from it
    reference = method.invert(images).codes - latent_avg
    with torch.autocast("cpu", dtype=dtype):
        low = method.invert(images).codes - latent_avg
    assert 0 < relative_error(low, reference) < 8 * UNIT_ROUNDOFF[dtype]
