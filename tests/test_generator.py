"""The generator: official key layout, strict loading, and the maths of every block."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from e4e_bench.errors import E4EBenchError
from e4e_bench.checkpoints import generator_config, generator_from_state_dict
from e4e_bench.networks import generator as generator_module
from e4e_bench.networks.generator import Blur, Generator, ModulatedConv2d, StyledConv, Upsample, fir_kernel, sample_w, scaled_leaky_relu


def upfirdn2d_reference(x, kernel, up=1, pad=(0, 0)):
    """The official definition written out: zero insertion, pad, true convolution (flipped kernel)."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = kernel.flip(0, 1)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, k, groups=c)


def test_config_f_counts_at_512():
    g = Generator(512)
    state = g.state_dict()
    assert len(state) == 153
    assert sum(p.numel() for p in g.parameters()) == 30_276_583
    assert (g.n_latent, g.num_layers) == (16, 15)
    assert state["convs.12.conv.weight"].shape == (1, 64, 128, 3, 3)
    assert state["convs.0.conv.blur.kernel"].sum() == pytest.approx(4.0)
    assert state["to_rgbs.6.upsample.kernel"].shape == (4, 4)
    assert state["noises.noise_14"].shape == (1, 1, 512, 512)
    assert "convs.1.conv.blur.kernel" not in state


def test_counts_at_1024_and_256():
    assert len(Generator(1024).state_dict()) == 171
    assert sum(p.numel() for p in Generator(1024).parameters()) == 30_370_060
    assert len(Generator(256).state_dict()) == 135


def test_upsample_equals_zero_insertion_and_fir():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    taps = [1.0, 2.0, 5.0, 1.0]  # asymmetric: catches a flipped kernel
    up = Upsample(taps)
    expected = upfirdn2d_reference(x, fir_kernel(taps, gain=4), up=2, pad=up.pad)
    torch.testing.assert_close(up(x), expected, atol=1e-5, rtol=1e-5)
    assert up(x).shape[-2:] == (10, 14)


def test_blur_equals_true_convolution():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    taps = [1.0, 2.0, 5.0, 1.0]
    for pad in [(1, 1), (2, 1)]:
        blur = Blur(taps, pad=pad, upsample_factor=2)
        torch.testing.assert_close(blur(x), upfirdn2d_reference(x, fir_kernel(taps, gain=4), pad=pad))


# Inference (no autograd) takes the in-place path; both must compute the same maths.
GRAD_MODES = pytest.mark.parametrize("grad_mode", [torch.enable_grad, torch.inference_mode], ids=["autograd", "inference"])


@GRAD_MODES
@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv_equals_per_sample_weights(batch, grad_mode):
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(6, 5, 3, 16, upsample=upsample)
        x, w = torch.randn(batch, 6, 8, 8), torch.randn(batch, 16)
        s = conv.modulation(w)
        weight = conv.scale * conv.weight * s[:, None, :, None, None]  # [B, out, in, k, k]
        weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        outs = []
        for b in range(batch):
            if upsample:
                y = F.conv_transpose2d(x[b : b + 1], weight[b].transpose(0, 1), stride=2)
                outs.append(conv.blur(y))
            else:
                outs.append(F.conv2d(x[b : b + 1], weight[b], padding=1))
        with grad_mode():
            out = conv(x, w)
        torch.testing.assert_close(out, torch.cat(outs), atol=1e-5, rtol=1e-4)


def test_demodulated_kernels_have_unit_norm():
    """Demodulation scales each output channel's modulated kernel to unit L2 norm: feeding a 1x1 conv
    the input basis e_1..e_4 reads the kernel out, and every output channel's squares sum to 1."""
    conv = ModulatedConv2d(4, 3, 1, 8)
    basis = torch.eye(4)[:, :, None, None]
    kernel = conv(basis, torch.randn(1, 8).expand(4, -1))[:, :, 0, 0]  # [input channel, output channel]
    torch.testing.assert_close(kernel.square().sum(0), torch.ones(3), rtol=1e-5, atol=1e-6)
    assert kernel.abs().max() < 0.999  # more than one input channel contributes: not a trivial bound


def test_strict_round_trip_and_config_inference(tiny_generator):
    state = tiny_generator.state_dict()
    config = generator_config(state)
    assert config["size"] == 32 and config["style_dim"] == 64 and config["n_mlp"] == 2
    clone = generator_from_state_dict(state)
    codes = torch.randn(2, tiny_generator.n_latent, 64)
    torch.testing.assert_close(clone(codes), tiny_generator(codes), atol=0, rtol=0)


def test_config_f_channel_multiplier_is_inferred():
    assert generator_config(Generator(64, channel_multiplier=1).state_dict())["channel_multiplier"] == 1
    assert generator_config(Generator(128).state_dict())["channel_multiplier"] == 2


def test_every_key_matters(tiny_generator):
    """Drop any one key, or perturb it, and loading or the output must notice."""
    state = tiny_generator.state_dict()
    codes = torch.randn(1, tiny_generator.n_latent, 64, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    reference, reference_w = tiny_generator(codes), tiny_generator.mapping(z)
    for key in ["noises.noise_3", "convs.2.conv.modulation.bias", "to_rgbs.0.upsample.kernel"]:
        broken = {k: v for k, v in state.items() if k != key}
        with pytest.raises(E4EBenchError, match="do not match a StyleGAN2 generator"):
            generator_from_state_dict(broken)
    for key, value in state.items():
        changed = dict(state)
        changed[key] = value + 0.5 if not key.endswith("kernel") else value * 1.5
        clone = generator_from_state_dict(changed)
        if key.startswith("style."):
            assert not torch.allclose(clone.mapping(z), reference_w), key
        else:
            assert not torch.allclose(clone(codes), reference), key


def test_noise_modes(tiny_generator):
    codes = torch.randn(2, 64)
    const = tiny_generator(codes, noise="const")
    torch.testing.assert_close(tiny_generator(codes, noise=tiny_generator.noise_buffers()), const, atol=0, rtol=0)
    a = tiny_generator(codes, noise="random", rng=torch.Generator().manual_seed(1))
    b = tiny_generator(codes, noise="random", rng=torch.Generator().manual_seed(1))
    c = tiny_generator(codes, noise="random", rng=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c) and not torch.allclose(a, const)
    assert not torch.allclose(tiny_generator(codes, noise="none"), const)


def test_w_broadcast_equals_repeated_wplus(tiny_generator):
    w = tiny_generator.mapping(torch.randn(3, 64))
    wplus = w[:, None].repeat(1, tiny_generator.n_latent, 1)
    torch.testing.assert_close(tiny_generator(w), tiny_generator(wplus), atol=0, rtol=0)
    with pytest.raises(ValueError, match="codes must be"):
        tiny_generator(torch.randn(3, 5, 64))


def test_every_wplus_row_is_used(tiny_generator):
    codes = torch.randn(1, tiny_generator.n_latent, 64)
    reference = tiny_generator(codes)
    for row in range(tiny_generator.n_latent):
        moved = codes.clone()
        moved[:, row] += 1.0
        assert not torch.allclose(tiny_generator(moved), reference), row


def test_truncation_and_mixing(tiny_generator):
    w = tiny_generator.mapping(torch.randn(2, 64))
    center = tiny_generator.mean_latent(500, rng=torch.Generator().manual_seed(0))
    torch.testing.assert_close(Generator.truncate(w, 0.0, center), center.expand(2, -1))
    mixed = tiny_generator.style_mix(w[:1], w[1:], crossover=3)
    assert torch.equal(mixed[0, :3], w[0].expand(3, -1)) and torch.equal(mixed[0, 3:], w[1].expand(tiny_generator.n_latent - 3, -1))


def test_scaled_leaky_relu_value():
    x = torch.tensor([[-1.0, 2.0]])
    out = scaled_leaky_relu(x, torch.zeros(2))
    torch.testing.assert_close(out, torch.tensor([[-0.2 * math.sqrt(2), 2 * math.sqrt(2)]]))


@GRAD_MODES
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("upsample", [False, True])
def test_styled_conv_order_of_operations(batch, upsample, grad_mode):
    """modconv -> + strength * noise -> + bias -> lrelu(0.2) -> * sqrt(2), for one image and for a batch."""
    torch.manual_seed(0)
    layer = StyledConv(6, 5, 3, 16, upsample=upsample)
    with torch.no_grad():
        layer.noise.weight.fill_(0.7)
        layer.activate.bias.normal_()
    x, w = torch.randn(batch, 6, 8, 8), torch.randn(batch, 16)
    size = 16 if upsample else 8
    noise = torch.randn(batch, 1, size, size)
    expected = scaled_leaky_relu(layer.conv(x, w) + 0.7 * noise, layer.activate.bias)
    with grad_mode():
        out = layer(x, w, noise)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_sample_w_maps_the_draws_of_the_given_generator_whatever_the_chunking(monkeypatch):
    generator = Generator(16, style_dim=8, n_mlp=2, channels={4: 8, 8: 8, 16: 8})
    z = torch.randn(25, 8, generator=torch.Generator().manual_seed(4))
    expected = generator.mapping(z)
    monkeypatch.setattr(generator_module, "MAPPING_BATCH", 7)  # 4 chunks: 7, 7, 7, 4
    torch.testing.assert_close(sample_w(generator, 25, torch.Generator().manual_seed(4)), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(generator.mean_latent(25, torch.Generator().manual_seed(4)), expected.mean(0, keepdim=True))


@pytest.mark.parametrize("noise", ["const", "random", "per-image maps", "shared maps"])
def test_cpu_inference_decodes_a_large_batch_image_by_image_with_the_same_result(noise, monkeypatch):
    """From CPU_PER_IMAGE_SIZE up, fp32 inference on the CPU decodes one image at a time; autograd and autocast
    decode the batch in one pass. The images must be the same for every kind of noise, each image keeping its
    own maps (the noise strengths are non-zero, so a wrong map shows)."""
    size = generator_module.CPU_PER_IMAGE_SIZE
    generator = Generator(size, style_dim=16, n_mlp=1, channels={2**k: 4 for k in range(2, int(math.log2(size)) + 1)})
    with torch.no_grad():
        for layer in [generator.conv1, *generator.convs]:
            layer.noise.weight.fill_(0.5)
            layer.activate.bias.normal_(generator=torch.Generator().manual_seed(3))
    codes = torch.randn(3, generator.n_latent, 16, generator=torch.Generator().manual_seed(0))
    if noise in ("per-image maps", "shared maps"):
        noise = generator.make_noise(3 if noise == "per-image maps" else 1, rng=torch.Generator().manual_seed(2))
    passes = []
    synthesize = generator._synthesize
    monkeypatch.setattr(generator, "_synthesize", lambda latent, *rest: passes.append(len(latent)) or synthesize(latent, *rest))
    with torch.enable_grad():
        batched = generator(codes, noise=noise, rng=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        image_by_image = generator(codes, noise=noise, rng=torch.Generator().manual_seed(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            generator(codes, noise=noise, rng=torch.Generator().manual_seed(1))
    assert passes == [3, 1, 1, 1, 3]
    torch.testing.assert_close(image_by_image, batched.detach(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv_gradients_match_finite_differences(batch):
    """Under autograd one image takes the activation-scaling path like a batch: its gradients with respect to
    the input, the codes and the weights are those of finite differences (float64)."""
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(3, 2, 3, 4, upsample=upsample).double()
        x, w = torch.randn(batch, 3, 5, 5, dtype=torch.float64), torch.randn(batch, 4, dtype=torch.float64)
        weight = conv.weight

        def f(x, w, weight):
            conv.weight = weight
            return conv(x, w, gain=1.3, bias=torch.ones(2, dtype=torch.float64))

        assert torch.autograd.gradcheck(f, (x.requires_grad_(), w.requires_grad_(), weight))
