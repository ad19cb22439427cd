"""Process-group set-up for training under torchrun, and a sampler that can resume mid-epoch.

One process per device: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; NCCL joins GPUs, gloo
joins CPU processes. Without torchrun everything here degrades to a single process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from e4e_bench.errors import E4EBenchError


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped tensors of every rank along dim 0, in rank order."""
        if not self.distributed:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def all_gather_object(self, obj) -> list:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_process_group(device_spec: str, resolve_device) -> ProcessGroup:
    """Join torchrun's group (if any) and pick this process's device.

    `device_spec` is the user's --device; under torchrun `cuda` (or `auto` with GPUs present)
    means the GPU numbered LOCAL_RANK, and `cpu` runs every process on the CPU with gloo.
    """
    if not launched_by_torchrun():
        return ProcessGroup(0, 1, resolve_device(device_spec))
    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    wants_gpu = device_spec.startswith("cuda") or (device_spec == "auto" and torch.cuda.is_available())
    if wants_gpu:
        if torch.cuda.device_count() <= local_rank:
            raise E4EBenchError(f"torchrun started {world} processes on this node but only "
                                f"{torch.cuda.device_count()} GPUs are visible; lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device_spec in ("cpu", "auto"):
        device = torch.device("cpu")
    else:
        raise E4EBenchError(f"--device {device_spec} cannot be used under torchrun; use auto, cuda or cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return ProcessGroup(rank, world, device)


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
