"""The process group evaluation and training share: shards and progress bars per rank."""

import torch

from e4e_bench.distributed import ProcessGroup, start_process_group


def test_ranks_shard_items_disjointly_and_together_cover_them():
    items = [f"{i:03d}.png" for i in range(7)]
    shards = [ProcessGroup(rank, 3, torch.device("cpu")).shard(items) for rank in range(3)]
    assert shards[1] == ["001.png", "004.png"]
    assert sorted(sum(shards, [])) == items


def test_only_rank_zero_draws_progress_bars():
    assert [ProcessGroup(rank, 2, torch.device("cpu")).progress for rank in range(2)] == [True, False]


def test_without_torchrun_there_is_one_process_on_the_requested_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group = start_process_group("cpu")
    assert (group.rank, group.world_size, group.device, group.distributed) == (0, 1, torch.device("cpu"), False)
    assert group.shard([1, 2, 3]) == [1, 2, 3]
