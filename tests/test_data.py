"""Image folders: sorting, resizing like the official transforms, and bad files skipped by name."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench.data import ImageFolder, check_aspect, list_images, load_images, readable_images, save_images, to_uint8
from e4e_bench.errors import E4EBenchError


def test_listing_is_sorted_and_filtered(tmp_path):
    for name in ["b.png", "a.jpg", "c.webp", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png", "c.webp"]
    with pytest.raises(E4EBenchError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(E4EBenchError, match="no images"):
        list_images(tmp_path / "empty")


def test_modes_resizing_and_bad_files(tmp_path, caplog):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "0_rgb.png")
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp_path / "1_gray.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8)).save(tmp_path / "2_rgba.png")
    (tmp_path / "3_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = (tmp_path / "0_rgb.png").read_bytes()
    (tmp_path / "4_truncated.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING):
        loaded = load_images(list_images(tmp_path), (12, 16))
    assert loaded.images.shape == (3, 3, 12, 16)
    assert [p.name for p in loaded.paths] == ["0_rgb.png", "1_gray.png", "2_rgba.png"]
    assert sorted(p.name for p, _ in loaded.failed) == ["3_broken.png", "4_truncated.png"]
    assert "converting L image to RGB" in caplog.text and "3_broken.png" in caplog.text
    assert loaded.images.min() >= -1 and loaded.images.max() <= 1


def test_readable_images_names_the_unreadable_in_one_warning(tmp_path, caplog):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        readable, unreadable = readable_images(list_images(tmp_path))
    assert readable == [tmp_path / "a.png"] and list(unreadable) == ["b.png", "c.jpg"]
    assert len(caplog.records) == 1 and "2 of 3 images" in caplog.text and "b.png" in caplog.text
    with pytest.raises(E4EBenchError, match="none of the 2 images"):
        readable_images([tmp_path / "b.png", tmp_path / "c.jpg"])


def test_pixels_round_trip_exactly(tmp_path):
    pixels = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    loaded = load_images([tmp_path / "x.png"], (16, 16))
    assert torch.equal(to_uint8(loaded.images)[0].permute(1, 2, 0), torch.from_numpy(pixels))
    save_images(loaded.images, [tmp_path / "out" / "y.png"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "y.png")), pixels)


def test_to_uint8_rounding():
    x = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0]).view(1, 1, 1, 6)
    assert to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255, 255]


def test_image_folder_drops_unreadable(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    dataset = ImageFolder(list_images(tmp_path), (8, 8))
    assert len(dataset) == 1 and dataset[0].shape == (3, 8, 8)
    (tmp_path / "ok.png").unlink()
    with pytest.raises(E4EBenchError, match="none of the images"):
        ImageFolder(list_images(tmp_path), (8, 8))


def test_aspect_refusal_writes_sizes_height_first(tmp_path):
    Image.new("RGB", (40, 10)).save(tmp_path / "wide.png")  # PIL takes (width, height): 10 rows of 40
    Image.new("RGB", (512, 384)).save(tmp_path / "car.png")  # the cars frame, 384 rows of 512
    with pytest.raises(E4EBenchError, match=r"wide.png \(10x40\) in .* this domain's 384x512 frame \(sizes are H x W\)"):
        check_aspect([tmp_path / "car.png", tmp_path / "wide.png"], (384, 512))
