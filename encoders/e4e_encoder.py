"""e4e's Encoder4Editing: one base code w0 plus per-style offsets, switched on progressively."""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from encoders.ir_se import STAGE_DEPTHS
from encoders.psp_encoder import GradualStyleEncoder


class ProgressiveOffsets:
    """e4e's progressive codes, for an encoder with `n_styles` heads in `styles`.

    codes[:, i] = w0 + delta_i, w0 from head 0 and delta_i from head i. `stage` is the
    progressive-training state: offsets 1..stage are predicted, those beyond are zero (stage 0 =
    every style equals w0). A new encoder is at the last stage, n_styles - 1, which is the official
    `Inference` stage (all offsets on).
    """

    n_styles: int
    styles: nn.ModuleList
    stage: int

    @property
    def last_stage(self) -> int:
        return self.n_styles - 1

    def set_stage(self, stage: int) -> None:
        """Predict offsets 1..`stage` from now on (0 <= stage <= n_styles - 1)."""
        if not 0 <= stage <= self.last_stage:
            raise ValueError(f"e4e stage must be in [0, {self.last_stage}], got {stage}")
        self.stage = stage

    def progressive_codes(self, head_input: Callable[[int], Tensor]) -> Tensor:
        """[B, n_styles, style_dim] from the heads in force, head i reading `head_input(i)`."""
        base = self.styles[0](head_input(0))
        codes = base.unsqueeze(1).repeat(1, self.n_styles, 1)
        for index in range(1, self.stage + 1):
            codes[:, index] += self.styles[index](head_input(index))
        return codes


class Encoder4Editing(ProgressiveOffsets, GradualStyleEncoder):
    """Images [B,3,H,W] in [-1,1] -> codes [B, n_styles, style_dim] with codes[:, i] = w0 + delta_i.

    Same modules (and checkpoint keys) as pSp's encoder; w0 comes from head 0 on the coarse level,
    delta_i from head i on its own level.
    """

    def __init__(self, n_styles: int, style_dim: int = 512, num_layers: int = 50, input_nc: int = 3,
                 stage_depths: tuple[int, ...] = STAGE_DEPTHS):
        super().__init__(n_styles, style_dim, num_layers, input_nc, stage_depths)
        self.stage = self.last_stage

    def forward(self, images: Tensor) -> Tensor:
        levels = self.levels(images, self.head_levels[self.stage])
        return self.progressive_codes(lambda index: levels[self.head_levels[index]])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stage={self.stage}"
