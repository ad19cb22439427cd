"""LPIPS networks (the `lpips` package, v0.1 linear heads) with backbones from the assets registry.

The `lpips` wheel ships the linear heads; the AlexNet/VGG16 backbone is torchvision's ImageNet
model, which `lpips` would download at run time. We build the backbone empty and load the cached
torchvision file instead, so the download goes through `assets fetch` and can be done by hand.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import read_checkpoint

BACKBONE_ASSETS = {"alex": "lpips-alex", "vgg": "lpips-vgg"}


def build_lpips(net: str = "alex", pretrained: bool = True, device: torch.device | str = "cpu",
                backbone_file: Path | None = None) -> torch.nn.Module:
    """Frozen `lpips.LPIPS` taking images in [-1, 1]; the backbone is `backbone_file` (a torchvision file),
    else the cached asset; `pretrained=False` keeps random backbone weights (tests)."""
    import lpips  # imports torchvision's model zoo: only when a network is built

    if net not in BACKBONE_ASSETS:
        raise ValueError(f"LPIPS backbone must be one of {sorted(BACKBONE_ASSETS)}, got {net!r}")
    if not pretrained:
        backbone_file = None
    elif backbone_file is None:
        backbone_file = asset_path(BACKBONE_ASSETS[net])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecated `pretrained=` argument
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if backbone_file is not None:
        torchvision_state = read_checkpoint(backbone_file)
        # lpips slices keep torchvision's `features` indices: slice1.0 is features.0, and so on.
        state = {name: torchvision_state["features." + name.split(".", 1)[1]] for name in model.net.state_dict()}
        model.net.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False).to(device)
