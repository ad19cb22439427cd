"""Process groups under torchrun, for training and for evaluation sharded across ranks.

One process per device: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; NCCL joins GPUs, gloo
joins CPU processes. Without torchrun everything here degrades to a single process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from e4e_bench.devices import resolve_device
from e4e_bench.errors import E4EBenchError

Item = TypeVar("Item")


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def progress(self) -> bool:
        """Whether this process draws progress bars: rank 0 only, so that K ranks do not print K bars."""
        return self.is_main

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

    def shard(self, items: Sequence[Item]) -> Sequence[Item]:
        """This rank's share of `items`: every world_size-th one, starting at its rank."""
        return items[self.rank :: self.world_size]

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_process_group(device_spec: str) -> ProcessGroup:
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
