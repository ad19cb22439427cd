"""`torchrun --nproc_per_node 2 -m e4e_bench train` on the CPU (gloo): DDP keeps the ranks in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e4e_bench.checkpoints import read_checkpoint
from tests.official_checkpoints import TINY_STAGE_DEPTHS

REPO = Path(__file__).resolve().parents[1]


# ReStyle-e4e: two refinement steps per batch, so each step runs two forward and backward passes under DDP
@pytest.mark.parametrize("method, extra", [("e4e", []), ("restyle_e4e", ["--n-iters-per-batch", "2"])])
def test_torchrun_two_cpu_processes_train_with_equal_weights(method, extra, tmp_path, tiny_generator_ckpt,
                                                             generated_images):
    out = tmp_path / "out"
    # A real domain with --input-size: any generator size trains, at the size given.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "e4e_bench", "train", "--method", method, "--domain", "faces", "--input-size", "32,32",
               "--generator", str(tiny_generator_ckpt), "--data", str(generated_images), "--out", str(out),
               "--device", "cpu", "--max-steps", "3", "--batch-size", "1", "--test-batch-size", "1",
               "--test-fraction", "0.5", "--workers", "0", "--test-workers", "0", "--random-weights",
               "--encoder-init", "random", "--encoder-stage-depths", *map(str, TINY_STAGE_DEPTHS),
               "--id-lambda", "0", "--lpips-lambda", "0", "--progressive-steps", "0", "2",
               "--w-pool-size", "3", "--d-reg-every", "2", "--board-interval", "1", *extra]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["effective_batch_size"] == 2 and summary["steps"] == 3
    assert summary["ranks_consistent"] is True  # every rank's encoder and discriminator weights, compared exactly
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records if r["split"] == "train"] == [0, 0, 1]  # rank 0 alone writes
    ckpt = read_checkpoint(out / "checkpoints" / "iteration_3.pt")
    assert len(ckpt["rng_states"]) == 2 and ckpt["w_pools"]["real"]["codes"].shape[0] == 3
