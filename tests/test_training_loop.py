"""Training runs on a tiny generator and tiny images: loss, schedule, discriminator, resume, bad input, CLI."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import write_images
from e4e_bench import cli
from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import read_checkpoint
from e4e_bench.data import list_images, load_images
from e4e_bench.domains import get_domain
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import load_inverter
from tests.official_checkpoints import TINY_STAGE_DEPTHS
from encoders.training import trainer
from encoders.training.options import TrainOptions
from encoders.training.setup import build_encoder, load_decoder, run_training, starting_point
from encoders.training.stop_signals import ignore_stop_signals


def tiny_options(tmp_path, generator_ckpt, data, out="out", **overrides) -> dict:
    """Offline settings: a narrow random encoder, a random LPIPS backbone, no similarity network."""
    return dict(exp_dir=str(tmp_path / out), data=str(data), stylegan_weights=str(generator_ckpt), random_weights=True,
                encoder_init="random", encoder_stage_depths=TINY_STAGE_DEPTHS, workers=0, test_workers=0,
                batch_size=2, test_batch_size=2, id_lambda=0.0, moco_lambda=0.0,
                board_interval=1, image_interval=2, val_interval=100, test_fraction=0.25) | overrides


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


E4E_FULL = dict(progressive_steps=(0, 2, 4), use_w_pool=True, w_pool_size=3, w_discriminator_lambda=0.1, d_reg_every=3)


@pytest.mark.parametrize("method", ["psp", "e4e"])
def test_loss_goes_down(method, tmp_path, tiny_domain, tiny_generator_ckpt, tiny_generator):
    with torch.no_grad():
        image = tiny_generator(tiny_generator.mapping(torch.randn(1, tiny_generator.style_dim)))
    write_images(tmp_path / "same", image.repeat(4, 1, 1, 1))
    opts = tiny_options(tmp_path, tiny_generator_ckpt, tmp_path / "same", max_steps=12, optim_name="adam",
                        learning_rate=1e-3, lpips_lambda=0.0, flip=False)
    summary = run_training(method, "tiny", opts)  # e4e: its recipe (discriminator, base code only until 20k)
    l2 = [r["l2"] for r in read_log(tmp_path / "out") if r["split"] == "train"]
    assert summary["steps"] == 12 and len(l2) == 12
    assert sum(l2[-3:]) < 0.7 * sum(l2[:3])


def test_e4e_stages_discriminator_and_r1_follow_the_schedule(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    run_training("e4e", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=6, **E4E_FULL))
    train = [r for r in read_log(tmp_path / "out") if r["split"] == "train"]
    assert [r["stage"] for r in train] == [0, 0, 1, 1, 2, 2]
    assert all("discriminator_loss" in r and "adversarial" in r for r in train)
    assert [r["step"] for r in train if "discriminator_r1_loss" in r] == [1, 4]  # step indices 0 and 3
    assert [r["delta_reg"] == 0.0 for r in train] == [True, True, False, False, False, False]
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["000002.png", "000004.png", "000006.png"]
    ckpt = read_checkpoint(out / "checkpoints" / "iteration_6.pt")
    assert ckpt["opts"]["progressive_steps"] == [0, 2, 4] and ckpt["global_step"] == 6
    assert set(ckpt["discriminator_state_dict"]) == {f"mlp.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")}
    assert ckpt["w_pools"]["fake"]["codes"].shape[0] == 3
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"encoder", "decoder"}
    assert ckpt["latent_avg"].shape == (8, 64)
    assert (out / "checkpoints" / "best_model.pt").is_file()


def twice_each(images: Path, data: Path) -> Path:
    """`data` holding every image of `images` twice: 6 training images, 3 batches an epoch, so that an
    interruption after step 2 falls mid-epoch."""
    data.mkdir()
    for copy in range(2):
        for path in sorted(images.iterdir()):
            shutil.copy(path, data / f"{copy}_{path.name}")
    return data


def straight_and_resumed(tmp_path: Path, method: str, options: Callable[..., dict], steps: int) -> tuple[dict, dict]:
    """The step-`steps` checkpoints of a run trained straight (`straight/`) and of one stopped after step 2 and
    resumed (`resumed/`); `options(out=, max_steps=)` gives a run's options."""
    run_training(method, "tiny", options(out="straight", max_steps=steps))
    interrupted = options(out="resumed", max_steps=2)
    run_training(method, "tiny", interrupted)
    run_training(method, "tiny", interrupted | {"max_steps": steps}, resume="latest")
    return tuple(read_checkpoint(tmp_path / out / "checkpoints" / f"iteration_{steps}.pt") for out in ("straight", "resumed"))


def assert_same_training_state(a: dict, b: dict) -> None:
    """Two training checkpoints hold the same weights, discriminator (if any) and Adam moments, bit for bit."""
    for part in ("state_dict", "discriminator_state_dict"):
        assert (part in a) == (part in b), part
        for key, value in a.get(part, {}).items():
            torch.testing.assert_close(b[part][key], value, rtol=0, atol=0, msg=f"{part}.{key} differs")
    moments = [s["exp_avg"] for s in a["optimizer"]["state"].values()]
    torch.testing.assert_close([s["exp_avg"] for s in b["optimizer"]["state"].values()], moments, rtol=0, atol=0)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    data = twice_each(generated_images, tmp_path / "eight")
    options = functools.partial(tiny_options, tmp_path, tiny_generator_ckpt, data, **E4E_FULL)
    a, b = straight_and_resumed(tmp_path, "e4e", options, steps=5)
    assert_same_training_state(a, b)
    torch.testing.assert_close(b["w_pools"]["real"]["codes"], a["w_pools"]["real"]["codes"], rtol=0, atol=0)
    assert b["opts"]["checkpoint_path"].endswith("iteration_2.pt")


def test_resume_rejects_another_method_and_changed_options(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1, lpips_lambda=0.0)
    run_training("psp", "tiny", opts)
    with pytest.raises(E4EBenchError, match="psp training run"):
        run_training("e4e", "tiny", opts, resume="latest")
    with pytest.raises(E4EBenchError, match="--l2-lambda"):
        run_training("psp", "tiny", opts | {"l2_lambda": 2.0, "max_steps": 2}, resume="latest")


def test_bad_data_and_generator_size_fail_before_training(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    (tmp_path / "empty").mkdir()
    with pytest.raises(E4EBenchError, match="no images"):
        run_training("psp", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, tmp_path / "empty", max_steps=1))
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.png", "b.jpg"):
        (broken / name).write_bytes(b"not an image")
    with pytest.raises(E4EBenchError, match="can be read"):
        run_training("psp", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, broken, max_steps=1, test_data=str(broken)))
    # faces needs a 1024 px generator unless --input-size says what to train at
    faces = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1)
    with pytest.raises(E4EBenchError, match="1024px"):
        run_training("psp", "faces", faces)
    assert run_training("psp", "faces", faces | {"input_size": (32, 32), "lpips_lambda": 0.0})["steps"] == 1
    with pytest.raises(E4EBenchError, match="larger than the 32x32 content"):
        run_training("psp", "faces", faces | {"input_size": (64, 64)})


def test_cars_geometry_trains_on_the_cropped_content(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    """tiny_cars keeps rows 4:28 of 32 (as cars keep 64:448 of 512) and trains at 24x32."""
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=2, lpips_lambda=0.0,
                        progressive_start=1, progressive_step_every=1)
    run_training("e4e", "tiny_cars", opts)
    with Image.open(tmp_path / "out" / "images" / "train" / "000002.png") as grid:
        assert grid.size == (2 * 32, 2 * 24)  # two rows of input | reconstruction, each 24x32
    assert read_checkpoint(tmp_path / "out" / "checkpoints" / "iteration_2.pt")["opts"]["input_size"] == [24, 32]


def test_missing_weights_stop_before_step_one_unless_their_lambda_is_zero(
        tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path / "empty_cache"))
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1, random_weights=False)
    with pytest.raises(E4EBenchError, match="assets fetch lpips-alex") as err:
        run_training("psp", "tiny", opts | {"encoder_init": "ir_se50", "encoder_stage_depths": None})
    assert "arcface-ir-se50" in str(err.value) and not (tmp_path / "out" / "log.jsonl").exists()
    summary = run_training("psp", "tiny", opts | {"lpips_lambda": 0.0})
    assert summary["steps"] == 1


def test_generator_and_starting_checkpoint_take_asset_names():
    opts = TrainOptions(method="e4e", domain="toy", stylegan_weights="toy-generator", checkpoint_path="toy-e4e",
                        encoder_init="random", encoder_stage_depths=(16, 32, 48, 64))
    path, decoder, _ = load_decoder(opts, get_domain("toy"), torch.device("cpu"))
    assert path == asset_path("toy-generator") and decoder.size == 32
    encoder = build_encoder(opts, decoder.n_latent, decoder.style_dim, pretrained_backbone=False)
    encoder, _ = starting_point(opts, encoder, None)
    shipped, _ = load_inverter(asset_path("toy-e4e"))
    assert all(torch.equal(value, shipped.encoder.state_dict()[key]) for key, value in encoder.state_dict().items())


def test_train_command_end_to_end(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--method", "e4e", "--domain", "tiny", "--data", str(generated_images), "--out", str(out),
            "--generator", str(tiny_generator_ckpt), "--max-steps", "2", "--batch-size", "2", "--device", "cpu",
            "--workers", "0", "--test-workers", "0", "--random-weights", "--encoder-init", "random",
            "--encoder-stage-depths", *map(str, TINY_STAGE_DEPTHS),
            "--id-lambda", "0", "--progressive-start", "1", "--progressive-step-every", "1", "--val-interval", "1"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["effective_batch_size"] == 2
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"iteration_2.pt", "best_model.pt"}
    assert [r["split"] for r in read_log(out)].count("test") == 2
    assert cli.main(argv + ["--resume", "--max-steps", "3"]) == 0
    assert (out / "checkpoints" / "iteration_3.pt").is_file()
    assert cli.main(argv[:-2] + ["--optim-name", "sgd"]) == 2
    assert "--optim-name" in capsys.readouterr().err


def test_trained_checkpoint_loads_strict_with_the_official_loader_and_inverts(
        tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    run_training("e4e", "tiny", tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1,
                                             progressive_start=1, progressive_step_every=1, lpips_lambda=0.0))
    path = tmp_path / "out" / "checkpoints" / "iteration_1.pt"
    inverter, method = load_inverter(path)  # strict=True on encoder.* and decoder.*
    assert method == "e4e" and inverter.latent_avg.shape == (8, 64)
    assert load_inverter(tmp_path / "out" / "checkpoints" / "best_model.pt")[1] == "e4e"
    inv = tmp_path / "inv"
    assert cli.main(["invert", "--method", "e4e", "--domain", "tiny", "--checkpoint", str(path), "--images",
                     str(generated_images), "--out", str(inv), "--device", "cpu"]) == 0
    latents = torch.from_numpy(np.load(inv / "latents.npy"))
    images = load_images(list_images(generated_images), (32, 32)).images
    with torch.inference_mode():
        torch.testing.assert_close(latents, inverter.codes(images), rtol=1e-4, atol=1e-5)


def test_training_can_start_from_a_checkpoint(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images):
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=1, lpips_lambda=0.0)
    run_training("psp", "tiny", opts)
    first = tmp_path / "out" / "checkpoints" / "iteration_1.pt"
    run_training("psp", "tiny", opts | dict(exp_dir=str(tmp_path / "tuned"), checkpoint_path=str(first),
                                            learning_rate=1e-12, seed=1))
    start, tuned = (read_checkpoint(p)["state_dict"] for p in (first, tmp_path / "tuned/checkpoints/iteration_1.pt"))
    weights = [k for k in start if k.startswith("encoder.") and k.endswith("weight") and "running" not in k]
    for key in weights:
        torch.testing.assert_close(tuned[key], start[key], rtol=0, atol=1e-6)


def stop_at(monkeypatch, stops: dict[int, Callable[[], None]]):
    """Call stops[n] as soon as step n has run (before its logging and saving)."""
    original = trainer.train_step

    def step_then_stop(run, images):
        result = original(run, images)
        if run.state.global_step in stops:
            stops.pop(run.state.global_step)()
        return result

    monkeypatch.setattr(trainer, "train_step", step_then_stop)


def send(number: signal.Signals) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), number)


def without_summaries(records: list[dict]) -> list[dict]:
    return [r for r in records if r["split"] != "summary"]


def test_stop_signals_save_a_snapshot_and_resume_equals_uninterrupted(
        tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, monkeypatch, capsys):
    """Ctrl-C at step 3 and SIGTERM at step 4 with --save-interval 1000: each saves the state of its step."""
    opts = dict(max_steps=5, save_interval=1000, val_interval=2, **E4E_FULL)
    straight = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, out="straight", **opts)
    run_training("e4e", "tiny", straight)
    stopped = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, out="stopped", **opts)
    out = tmp_path / "stopped"
    stop_at(monkeypatch, {3: send(signal.SIGINT), 4: send(signal.SIGTERM)})
    with pytest.raises(KeyboardInterrupt, match=f"SIGINT at step 3: the training state is saved in "
                                                f"{out / 'checkpoints' / 'iteration_3.pt'}; rerun with --resume"):
        run_training("e4e", "tiny", stopped)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM at step 4"):
        run_training("e4e", "tiny", stopped, resume="latest")
    # each session's snapshot stays until a later save of the same session supersedes it
    assert {p.name for p in (out / "checkpoints").glob("iteration_*")} == {"iteration_3.pt", "iteration_4.pt"}
    summary = run_training("e4e", "tiny", stopped, resume="latest")
    assert summary["steps"] == 5 and summary["steps_run"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "iteration_5.pt")
    b = read_checkpoint(out / "checkpoints" / "iteration_5.pt")
    for part in ("state_dict", "discriminator_state_dict"):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key], value, rtol=0, atol=0, msg=f"{part}.{key} differs")
    torch.testing.assert_close([s["exp_avg"] for s in b["optimizer"]["state"].values()],
                               [s["exp_avg"] for s in a["optimizer"]["state"].values()], rtol=0, atol=0)
    assert without_summaries(read_log(out)) == without_summaries(read_log(tmp_path / "straight"))


def test_a_hard_stop_loses_only_the_steps_after_the_last_save_and_the_log_has_no_duplicates(
        tmp_path, tiny_domain, tiny_generator_ckpt, generated_images, monkeypatch):
    """A kill between saves (here an error at step 3; save every 2): the resumed run logs steps 3-5 once."""
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=5, save_interval=2,
                        val_interval=1, **E4E_FULL)
    out = tmp_path / "out"

    def power_cut():
        raise RuntimeError("power cut")

    stop_at(monkeypatch, {4: power_cut})
    with pytest.raises(RuntimeError, match="power cut"):
        run_training("e4e", "tiny", opts)
    logged = [(r["step"], r["split"]) for r in read_log(out)]
    assert logged == [(s, split) for s in (1, 2, 3) for split in ("train", "test")]
    run_training("e4e", "tiny", opts, resume="latest")
    logged = [(r["step"], r["split"]) for r in read_log(out)]
    assert logged == [(s, split) for s in (1, 2, 3, 4, 5) for split in ("train", "test")] + [(5, "summary")]


def test_wall_time_snapshots_replace_each_other(tmp_path, tiny_domain, tiny_generator_ckpt, generated_images,
                                                monkeypatch):
    opts = tiny_options(tmp_path, tiny_generator_ckpt, generated_images, max_steps=4, lpips_lambda=0.0,
                        snapshot_minutes=1e-9)  # due after every step
    out = tmp_path / "out"

    def power_cut():
        assert {p.name for p in (out / "checkpoints").glob("iteration_*")} == {"iteration_2.pt"}
        raise RuntimeError("power cut")

    stop_at(monkeypatch, {3: power_cut})
    with pytest.raises(RuntimeError, match="power cut"):
        run_training("psp", "tiny", opts)
    assert run_training("psp", "tiny", opts, resume="latest")["steps_run"] == 2
    assert {p.name for p in (out / "checkpoints").glob("iteration_*")} == {"iteration_2.pt", "iteration_4.pt"}
    with pytest.raises(E4EBenchError, match="--snapshot-minutes must be >= 0"):
        run_training("psp", "tiny", opts | {"snapshot_minutes": -1.0})


def test_data_loader_workers_survive_a_ctrl_c(tmp_path):
    """A terminal's Ctrl-C reaches the workers too; they leave stopping to the main process."""

    class SignalsItself(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            if index == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the worker's own pid
            return index

    loader = torch.utils.data.DataLoader(SignalsItself(), num_workers=1, worker_init_fn=ignore_stop_signals)
    assert [int(batch) for batch in loader] == [0, 1, 2, 3]


def test_train_command_interrupted_says_where_the_state_is(tmp_path, tiny_domain, tiny_generator_ckpt,
                                                          generated_images, monkeypatch, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--method", "psp", "--domain", "tiny", "--data", str(generated_images), "--out", str(out),
            "--generator", str(tiny_generator_ckpt), "--max-steps", "3", "--batch-size", "2", "--workers", "0",
            "--test-workers", "0", "--random-weights", "--encoder-init", "random", "--lpips-lambda", "0",
            "--encoder-stage-depths", *map(str, TINY_STAGE_DEPTHS), "--id-lambda", "0", "--save-interval", "1000"]
    stop_at(monkeypatch, {1: send(signal.SIGINT)})
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert f"interrupted; SIGINT at step 1: the training state is saved in {out / 'checkpoints' / 'iteration_1.pt'}" in err
    assert cli.main(argv + ["--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps_run"] == 2
