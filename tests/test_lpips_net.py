"""LPIPS backbones come from the assets cache, mapped onto the lpips package's slices."""

from __future__ import annotations

import pytest
import torch
import torchvision

from e4e_bench.errors import E4EBenchError
from e4e_bench.lpips_net import build_lpips


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
