"""LPIPS backbones come from the assets cache, mapped onto the lpips package's slices."""

from __future__ import annotations

from pathlib import Path

import lpips
import pytest
import torch
import torchvision

from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.lpips_net import build_lpips


def test_backbone_loaded_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    with pytest.raises(E4EBenchError, match="assets fetch lpips-alex"):
        build_lpips("alex")
    reference = torchvision.models.alexnet()
    torch.save(reference.state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    model = build_lpips("alex")
    torch.testing.assert_close(model.net.slice1[0].weight, reference.features[0].weight)
    torch.testing.assert_close(model.net.slice5._modules["10"].bias, reference.features[10].bias)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(model(x, x), torch.zeros(2, 1, 1, 1), atol=1e-6)
    assert (model(x, x.flip(0)) > 0).all()
    assert not any(p.requires_grad for p in model.parameters())


# The reference LPIPS v0.1, written from its definition: torchvision's backbone (ReLU taps), the
# lpips package's own learned 1x1 heads, the v0.1 input scaling, unit-normalised channel features.
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}  # features[i] whose outputs are compared
SHIFT = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
SCALE = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]


def reference_lpips(features: torch.nn.Sequential, heads: dict, taps, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def tapped(image):
        outputs, h = [], (image - SHIFT) / SCALE
        for index, layer in enumerate(features[: taps[-1] + 1]):
            h = layer(h)
            if index in taps:
                outputs.append(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return outputs

    total = torch.zeros(len(x))
    for k, (a, b) in enumerate(zip(tapped(x), tapped(y))):
        weighted = torch.nn.functional.conv2d((a - b).square(), heads[f"lin{k}.model.1.weight"])
        total += weighted.mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize(("net", "asset_file", "backbone"), [
    ("alex", "alexnet-owt-7be5be79.pth", lambda: torchvision.models.alexnet().features),
    ("vgg", "vgg16-397923af.pth", lambda: torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])),
])
def test_lpips_equals_a_reference_built_from_torchvision_and_the_lpips_heads(tmp_path, monkeypatch, net, asset_file,
                                                                            backbone):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    features = backbone().eval()
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, tmp_path / asset_file)
    heads = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth", map_location="cpu",
                       weights_only=True)
    x = torch.rand(2, 3, 48, 40) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape)).clamp(-1, 1)
    with torch.inference_mode():
        ours = build_lpips(net)(x, y).flatten()
        expected = reference_lpips(features, heads, TAPS[net], x, y)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert (expected > 0).all()
