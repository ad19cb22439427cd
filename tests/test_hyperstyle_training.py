"""`train --method hyperstyle` on a tiny generator: the official coach's gradients (each pass's own backward,
the earlier offsets held fixed), exact resume, the official checkpoint layout, the command and torchrun."""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from e4e_bench import cli
from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.distributed import ProcessGroup
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import save_inverter
from encoders.hyperstyle_checkpoint import load_hyperstyle
from encoders.inverter import Inverter
from encoders.training import trainer
from encoders.training.options import TrainOptions, recipe_defaults
from encoders.training.setup import prepare, resolve_options, run_training
from encoders.w_encoder import WEncoder
from tests.official_checkpoints import TINY_STAGE_DEPTHS
from tests.test_training_loop import assert_same_training_state, read_log, straight_and_resumed, tiny_options, twice_each

REPO = Path(__file__).resolve().parents[1]
BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")  # move with every training step
# Narrow heads; layers 0 and 2 share the head, the toRGB 1 has its own block.
TINY_HYPERNET = dict(hypernet_width=8, hypernet_refinement_inner=8, hypernet_shared_inner=8, layers_to_tune="0,1,2",
                     lpips_lambda=0.0)


@pytest.fixture
def w_encoder_ckpt(tmp_path, tiny_generator) -> Path:
    """A random tiny WEncoder in the e4e layout."""
    torch.manual_seed(3)
    encoder = WEncoder(tiny_generator.n_latent, tiny_generator.style_dim, stage_depths=TINY_STAGE_DEPTHS)
    path = tmp_path / "w_encoder.pt"
    save_inverter(Inverter(encoder.eval(), tiny_generator, tiny_generator.mean_latent(100)[0]), path)
    return path


def hyperstyle_options(tmp_path, generator, data, w_encoder, **overrides) -> dict:
    return tiny_options(tmp_path, generator, data, w_encoder_checkpoint_path=str(w_encoder), **TINY_HYPERNET,
                        **overrides)


def test_a_step_adds_each_passs_gradients_with_the_earlier_offsets_fixed(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                         generated_images, w_encoder_ckpt, monkeypatch):
    overrides = hyperstyle_options(tmp_path, tiny_generator_ckpt, generated_images, w_encoder_ckpt, flip=False,
                                   n_iters_per_batch=3, max_steps=1)
    opts, _ = resolve_options("hyperstyle", "tiny", overrides, None)
    run, train_set, _ = prepare(opts, ProcessGroup(0, 1, torch.device("cpu")), None)
    x = torch.stack([train_set[0], train_set[1]])
    hypernet, decoder, names = copy.deepcopy(run.net.hypernet), run.net.decoder, run.net.layer_names
    grads = {}
    monkeypatch.setattr(run.optimizer, "step", lambda: grads.update(
        {name: p.grad.clone() for name, p in run.net.hypernet.named_parameters()}))
    trainer.train_step(run, x)

    # The official coach: pass 0 is the W encoder's reconstruction; each pass adds the hypernetwork's new
    # deltas to the previous ones detached, reads the previous output detached, and backpropagates its loss.
    codes = run.net.w_codes(x)
    previous = decoder(codes, noise="const")
    deltas = None
    for _ in range(3):
        new = {names[i]: d for i, d in hypernet.offsets(hypernet(torch.cat([x, previous], dim=1)), 1).items()}
        deltas = new if deltas is None else {name: deltas[name].detach() + value for name, value in new.items()}
        recon = decoder(codes, noise="const", offsets=deltas)
        F.mse_loss(recon, x).backward()
        previous = recon.detach()
    assert set(grads) == {name for name, _ in hypernet.named_parameters()}
    for name, param in hypernet.named_parameters():
        assert (grads[name] - param.grad).norm() <= 1e-4 * param.grad.norm(), name  # float32 summation order


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images,
                                                      w_encoder_ckpt):
    data = twice_each(generated_images, tmp_path / "twice")
    options = functools.partial(hyperstyle_options, tmp_path, tiny_generator_ckpt, data, w_encoder_ckpt,
                                n_iters_per_batch=2)
    a, b = straight_and_resumed(tmp_path, "hyperstyle", options, steps=4)
    assert_same_training_state(a, b)
    train = [[r for r in read_log(tmp_path / out) if r["split"] == "train"] for out in ("straight", "resumed")]
    assert train[0] == train[1]


def test_the_checkpoint_has_the_official_layout_and_loads_as_hyperstyle(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                       generated_images, w_encoder_ckpt):
    run_training("hyperstyle", "tiny", hyperstyle_options(tmp_path, tiny_generator_ckpt, generated_images,
                                                          w_encoder_ckpt, max_steps=2, n_iters_per_batch=2))
    best = read_checkpoint(tmp_path / "out" / "checkpoints" / "best_model.pt")
    assert {key.split(".")[0] for key in best["state_dict"]} == {"hypernet", "decoder"}
    assert set(best) == {"state_dict", "opts", "latent_avg", "global_step", "best_val_loss"}
    assert best["opts"]["encoder_type"] == "SharedWeightsHyperNetResNet" and best["opts"]["layers_to_tune"] == "0,1,2"
    assert best["opts"]["w_encoder_checkpoint_path"] == str(w_encoder_ckpt) and best["global_step"] == 2
    model = load_hyperstyle(tmp_path / "out" / "checkpoints" / "iteration_2.pt", w_encoder_ckpt)
    assert model.hypernet.tuned == (0, 1, 2) and model.hypernet.width == 8
    train = [r for r in read_log(tmp_path / "out") if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2] and all(set(r) == {"step", "split", "loss", "l2", "stage"} for r in train)


def test_training_can_start_from_a_hyperstyle_checkpoint(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images,
                                                         w_encoder_ckpt):
    opts = hyperstyle_options(tmp_path, tiny_generator_ckpt, generated_images, w_encoder_ckpt, max_steps=1,
                              n_iters_per_batch=1)
    run_training("hyperstyle", "tiny", opts)
    first = tmp_path / "out" / "checkpoints" / "iteration_1.pt"
    run_training("hyperstyle", "tiny", opts | dict(exp_dir=str(tmp_path / "tuned"), checkpoint_path=str(first),
                                                   learning_rate=1e-12, seed=1))
    start, tuned = (read_checkpoint(p)["state_dict"] for p in (first, tmp_path / "tuned/checkpoints/iteration_1.pt"))
    for key in (k for k in start if k.startswith("hypernet.") and not k.endswith(BATCHNORM_STATISTICS)):
        torch.testing.assert_close(tuned[key], start[key], rtol=0, atol=1e-6)


def test_the_recipe_is_the_readme_command_and_the_w_encoder_is_required(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                                        generated_images):
    faces, cars = (TrainOptions(**recipe_defaults("hyperstyle", domain)) for domain in ("faces", "cars"))
    assert (faces.l2_lambda, faces.lpips_lambda, faces.id_lambda, faces.moco_lambda) == (1.0, 0.8, 0.1, 0.0)
    assert (cars.id_lambda, cars.moco_lambda, cars.dataset_type) == (0.0, 0.5, "cars_hypernet")
    assert (faces.optim_name, faces.learning_rate, faces.batch_size, faces.n_iters_per_batch) == ("ranger", 1e-4, 8, 5)
    assert (faces.val_interval, faces.save_interval, faces.encoder_init, faces.input_nc) == (5000, 10_000, "resnet34", 6)
    assert not faces.train_decoder and faces.tuned_layers() is None
    with pytest.raises(E4EBenchError, match="needs --w-encoder FILE"):
        run_training("hyperstyle", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1,
                                                        **TINY_HYPERNET))
    with pytest.raises(E4EBenchError, match="HyperStyle options"):
        TrainOptions(**recipe_defaults("psp", "faces"), layers_to_tune="0,2")
    with pytest.raises(E4EBenchError, match="--layers-to-tune must be"):
        TrainOptions(**recipe_defaults("hyperstyle", "faces"), layers_to_tune="0;2")


def test_train_command_end_to_end(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, w_encoder_ckpt, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--method", "hyperstyle", "--domain", "tiny", "--data", str(generated_images), "--out", str(out),
            "--generator", str(tiny_generator_ckpt), "--w-encoder", str(w_encoder_ckpt), "--max-steps", "1",
            "--batch-size", "2", "--device", "cpu", "--workers", "0", "--test-workers", "0", "--random-weights",
            "--encoder-init", "random", "--encoder-stage-depths", *map(str, TINY_STAGE_DEPTHS), "--moco-lambda", "0",
            "--lpips-lambda", "0", "--n-iters-per-batch", "2", "--hypernet-width", "8",
            "--hypernet-refinement-inner", "8", "--hypernet-shared-inner", "8", "--layers-to-tune", "0,2"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 1
    assert cli.main(argv + ["--resume", "--max-steps", "2"]) == 0
    assert (out / "checkpoints" / "iteration_2.pt").is_file()
    assert cli.main(argv + ["--resume", "--max-steps", "3", "--layers-to-tune", "0"]) == 2
    assert "--layers-to-tune 0 (checkpoint: 0,2)" in capsys.readouterr().err


def test_torchrun_two_cpu_processes_train_with_equal_weights(tmp_path, tiny_generator_ckpt, generated_images,
                                                             w_encoder_ckpt):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "e4e_bench", "train", "--method", "hyperstyle", "--domain", "faces", "--input-size", "32,32",
               "--generator", str(tiny_generator_ckpt), "--w-encoder", str(w_encoder_ckpt), "--data",
               str(generated_images), "--out", str(out), "--device", "cpu", "--max-steps", "2", "--batch-size", "1",
               "--test-batch-size", "1", "--test-fraction", "0.5", "--workers", "0", "--test-workers", "0",
               "--random-weights", "--encoder-init", "random", "--encoder-stage-depths", *map(str, TINY_STAGE_DEPTHS),
               "--id-lambda", "0", "--lpips-lambda", "0", "--n-iters-per-batch", "2", "--hypernet-width", "8",
               "--hypernet-refinement-inner", "8", "--hypernet-shared-inner", "8"]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["ranks_consistent"] is True
    assert len(read_checkpoint(out / "checkpoints" / "iteration_2.pt")["rng_states"]) == 2
