"""MoCo-v2 ResNet-50 feature network, preprocessed exactly as e4e's MocoLoss does it.

Used for the identity metric on non-face domains and for the MoCo loss when training on them.
The official checkpoint (``moco_v2_800ep_pretrain.pth.tar``) stores the query encoder under
``state_dict['module.encoder_q.*']``; its MLP head (``encoder_q.fc``) is dropped, so the network
ends at ResNet-50's global average pool and gives 2048-d features.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.errors import E4EBenchError

MOCO_ASSET = "moco-v2"
QUERY_PREFIX = "module.encoder_q."
HEAD_PREFIX = QUERY_PREFIX + "fc."
MOCO_INPUT_SIZE = 224


class MocoFeatures(nn.Module):
    """ResNet-50 without its classifier: [-1,1] images [B,3,H,W] -> unit features [B,2048]."""

    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet50(weights=None)
        self.backbone.fc = nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # e4e's recipe: nearest resize to 224x224 (no crop, so 192x256 cars are stretched) and no
        # ImageNet mean/std; the [-1,1] tensor goes straight in. Changing either changes the numbers.
        resized = F.interpolate(images, size=(MOCO_INPUT_SIZE, MOCO_INPUT_SIZE), mode="nearest")
        return F.normalize(self.backbone(resized), dim=1)


def moco_backbone_state_dict(checkpoint: dict, source: str) -> dict:
    """The ResNet-50 keys of an official MoCo checkpoint (query encoder, head removed)."""
    state_dict = checkpoint.get("state_dict", checkpoint)
    backbone = {
        key[len(QUERY_PREFIX):]: value
        for key, value in state_dict.items()
        if key.startswith(QUERY_PREFIX) and not key.startswith(HEAD_PREFIX)
    }
    if not backbone:
        raise E4EBenchError(
            f"{source} is not a MoCo-v2 checkpoint: no 'module.encoder_q.*' keys; "
            f"get the official file with `python -m e4e_bench assets fetch {MOCO_ASSET}`"
        )
    return backbone


def load_moco(path: Path | str | None = None, *, pretrained: bool = True,
              device: torch.device | str = "cpu") -> MocoFeatures:
    """A frozen MocoFeatures in eval mode.

    ``path`` defaults to the ``moco-v2`` asset; ``pretrained=False`` keeps random weights (tests).
    """
    net = MocoFeatures()
    if pretrained:
        source = Path(path) if path is not None else asset_path(MOCO_ASSET)
        backbone = moco_backbone_state_dict(read_checkpoint(source), str(source))
        missing, unexpected = net.backbone.load_state_dict(backbone, strict=False)
        if missing or unexpected:
            raise E4EBenchError(
                f"{source} does not match ResNet-50: missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}; use the official MoCo-v2 800-epoch checkpoint"
            )
    return net.requires_grad_(False).eval().to(device)
