"""e4e's progressive schedule: the base code alone, then one more offset every few thousand steps."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def progressive_steps(n_styles: int, start: int, every: int) -> list[int]:
    """[0, start, start + every, ...]: entry i is the step at which stage i begins (one per style row).

    Cars (16 rows) with start 20000 and every 2000: [0, 20000, 22000, ..., 48000].
    """
    return [0] + [start + every * i for i in range(n_styles - 1)]


def stage_at(step: int, steps: Sequence[int]) -> int:
    """The stage in force at `step`: the number of active offsets (0 = only the base code).

    Equal to the official coach, which switches at `global_step == steps[i]`, for a run started
    at any step (so a resumed run lands on the same stage).
    """
    return bisect.bisect_right(steps, step) - 1


def active_rows(stage: int, n_styles: int) -> list[int]:
    """Style rows the delta regulariser and the discriminator see at `stage`: rows 0..stage."""
    return list(range(min(stage, n_styles - 1) + 1))
