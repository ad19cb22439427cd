"""The procedural toy cars: deterministic, letterboxed, disjoint splits, and the toy-data command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from e4e_bench.toy.render import sample_scenes, toy_images, toy_photos


def test_an_image_is_a_function_of_seed_split_and_index_alone():
    batch = toy_images(6, 32, seed=3, split="test")
    alone = toy_images(1, 32, seed=3, split="test", start=4)
    assert torch.equal(batch[4:5], alone)
    assert not torch.equal(toy_images(1, 32, seed=4, split="test", start=4), alone)


def test_train_and_test_splits_share_no_scene():
    train, test = sample_scenes(200, split="train"), sample_scenes(200, split="test")
    assert not np.intersect1d(train.length, test.length).size


def test_frame_is_letterboxed_like_the_cars_domain():
    frames = toy_images(8, 32)
    # Content in rows 4:28 of 32, as the car generator's rows 64:448 of 512; black bars elsewhere.
    assert frames[:, :, :4].eq(0).all() and frames[:, :, 28:].eq(0).all()
    assert frames[:, :, 4:28].float().mean(dim=(1, 2, 3)).gt(20).all()


def test_photos_are_the_frames_without_the_bars():
    assert torch.equal(toy_photos(2, 32, split="test"), toy_images(2, 32, split="test")[:, :, 4:28])


def test_scenes_vary_in_colour_size_and_facing():
    scenes = sample_scenes(100)
    assert set(scenes.facing.tolist()) == {-1.0, 1.0}
    assert np.ptp(scenes.length) > 0.25 and np.ptp(scenes.body_colour, axis=0).min() > 0.5


def test_edges_are_antialiased_by_the_box_filter():
    """A 4x supersampled hard edge box-filtered down leaves intermediate values: more distinct levels than colours painted."""
    frame = toy_images(1, 32)[0]
    assert len(torch.unique(frame.view(3, -1).T, dim=0)) > 40


def test_toy_data_command_writes_the_rendered_images(tmp_path):
    out = tmp_path / "test"
    subprocess.run([sys.executable, "-m", "e4e_bench", "toy-data", "--n", "3", "--out", str(out), "--split", "test", "--seed", "2"],
                   check=True, capture_output=True)
    written = np.stack([np.asarray(Image.open(out / f"{i:05d}.png")) for i in range(3)])
    expected = toy_photos(3, 32, seed=2, split="test").permute(0, 2, 3, 1).numpy()
    assert written.shape == (3, 24, 32, 3)
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(written, expected)
