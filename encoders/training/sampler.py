"""A distributed sampler that can resume mid-epoch (the process group is `e4e_bench.distributed`)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableDistributedSampler(Sampler[int]):
    """Each rank's share of a seeded per-epoch permutation, starting `start` samples in.

    Equal to torch's DistributedSampler(shuffle=True, drop_last=False) ordering (permutation of
    seed + epoch, padded by wrapping, then every world_size-th index), with an offset so that a
    resumed run reads exactly the samples the interrupted one would have read next.
    """

    def __init__(self, n_items: int, rank: int, world_size: int, seed: int, epoch: int = 0, start: int = 0):
        self.n_items = n_items
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = epoch
        self.start = start
        self.per_rank = -(-n_items // world_size)

    def __iter__(self) -> Iterator[int]:
        rng = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n_items, generator=rng)
        padding = self.per_rank * self.world_size - self.n_items
        order = torch.cat([order, order[:padding]]) if padding else order
        return iter(order[self.rank::self.world_size][self.start:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start
