"""Seeded module initialisation without touching the caller's random state.

PyTorch module constructors draw their initial weights from the global generator and take no
`torch.Generator`; this runs them on a private, seeded copy of it, so building a model with
random weights is reproducible and no code that runs afterwards sees a reseeded global stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded_initialisation(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield
