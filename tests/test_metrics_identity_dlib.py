"""id_dlib on real photos: itself, a shifted crop, a resized copy, another person, no face; dlib's own numbers."""

import csv
import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from e4e_bench import cli
from e4e_bench.data import pil_to_tensor
from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics import MetricContext, get_metric
from tests.face_photos import astronaut, grace_hopper, require_faces_extra


@pytest.fixture(scope="module")
def faces():
    """256x256 face photos: grace_hopper's top square and the astronaut, each resized (no alignment)."""
    size = (256, 256)
    return {
        "grace": grace_hopper().crop((0, 0, 512, 512)).resize(size, Image.Resampling.LANCZOS),
        "astronaut": astronaut().resize(size, Image.Resampling.LANCZOS),
    }


@pytest.fixture
def id_dlib():
    require_faces_extra()
    return get_metric("id_dlib").build(MetricContext())


def batch(*images: Image.Image) -> torch.Tensor:
    return torch.stack([pil_to_tensor(image) for image in images])


def shifted(image: Image.Image, columns: int) -> Image.Image:
    """The same frame moved right by `columns`, the left edge column repeated into the gap."""
    pixels = np.asarray(image)
    moved = np.concatenate([np.repeat(pixels[:, :1], columns, axis=1), pixels[:, :-columns]], axis=1)
    return Image.fromarray(moved)


def test_a_face_against_itself_is_one_at_distance_zero(id_dlib, faces):
    grace = batch(faces["grace"])
    assert id_dlib(grace, grace).item() == pytest.approx(1.0, abs=1e-12)
    assert id_dlib.summary_details()["distance"] == 0


def test_a_shifted_crop_is_the_same_person_and_another_person_is_not(id_dlib, faces):
    """dlib's descriptors do not spread over the whole sphere: two different people still have a cosine
    near 0.9 (0.88 here), so the cosine of a 16 px shift of the same face (0.999) sits above 0.99, and the
    distance, which dlib's same-person rule (< 0.6) reads, tells the two apart by a wide margin."""
    grace = faces["grace"]
    same, other = id_dlib(batch(grace, grace), batch(shifted(grace, 16), faces["astronaut"])).tolist()
    same_distance, other_distance = id_dlib.distances[-1]
    assert same > 0.99 and other < same - 0.05
    assert same_distance < 0.6 < other_distance
    assert id_dlib.summary_details()["same_person_rate"] == 0.5


def test_metrics_command_gives_dlibs_own_numbers_and_counts_a_missing_face(tmp_path, faces, capsys):
    """Pairs: grace vs a copy resized to 160 px and back, grace vs the astronaut, grace vs a grey image."""
    require_faces_extra()
    import dlib

    from e4e_bench.faces.landmarks import LANDMARKS_68, RESNET_DESCRIPTOR, model_file

    grace = faces["grace"]
    resized = grace.resize((160, 160), Image.Resampling.LANCZOS).resize((256, 256), Image.Resampling.BICUBIC)
    grey = Image.new("RGB", (256, 256), (128, 128, 128))
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    for name, fake in {"a.png": resized, "b.png": faces["astronaut"], "c.png": grey}.items():
        grace.save(tmp_path / "real" / name)
        fake.save(tmp_path / "fake" / name)
    code = cli.main([
        "metrics", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics", "id_dlib",
        "--domain", "faces", "--device", "cpu", "--per-image", str(tmp_path / "scores.csv"),
    ])
    result = json.loads(capsys.readouterr().out)
    assert code == 0

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_file(LANDMARKS_68)))
    network = dlib.face_recognition_model_v1(str(model_file(RESNET_DESCRIPTOR)))

    def descriptor(path):
        image = dlib.load_rgb_image(str(path))
        (box,) = detector(image, 1)  # each of these images shows one face
        return np.array(network.compute_face_descriptor(image, predictor(image, box), 0))

    expected_cosine, expected_distance = {}, {}
    for name in ("a.png", "b.png"):
        real, fake = descriptor(tmp_path / "real" / name), descriptor(tmp_path / "fake" / name)
        expected_cosine[name] = real @ fake / (np.linalg.norm(real) * np.linalg.norm(fake))
        expected_distance[name] = np.linalg.norm(real - fake)
    with open(tmp_path / "scores.csv", newline="") as stream:
        per_image = {row["image"]: float(row["id_dlib"]) for row in csv.DictReader(stream)}
    assert per_image["a.png"] == pytest.approx(expected_cosine["a.png"], abs=1e-6)
    assert per_image["b.png"] == pytest.approx(expected_cosine["b.png"], abs=1e-6)
    assert math.isnan(per_image["c.png"])

    details = result["details"]["id_dlib"]
    assert result["id_dlib"] == pytest.approx(np.mean(list(expected_cosine.values())), abs=1e-6)
    assert details["distance"] == pytest.approx(np.mean(list(expected_distance.values())), abs=1e-6)
    assert (details["n"], details["n_failed"], details["n_no_face_real"], details["n_no_face_fake"]) == (2, 1, 0, 1)
    assert "dlib_face_recognition_resnet_model_v1" in details["protocol"]
    # the resized copy is the same person by a wide margin, the astronaut is not
    assert expected_cosine["a.png"] > expected_cosine["b.png"] + 0.05
    assert expected_distance["a.png"] < 0.3 and expected_distance["b.png"] > 0.6


def test_without_dlib_id_dlib_is_an_error_naming_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now fails as it does without the extra
    with pytest.raises(E4EBenchError, match=r'^dlib is not installed; .*pip install -e "\.\[faces\]"$'):
        get_metric("id_dlib").build(MetricContext())


def test_without_the_model_files_id_dlib_says_how_to_install_them(monkeypatch):
    pytest.importorskip("dlib", reason="the model files are looked for once dlib imports")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "face_recognition_models" else find_spec(name, *rest)
    )
    with pytest.raises(E4EBenchError, match=r'^face-recognition-models .* is not installed; .*pip install -e "\.\[faces\]"$'):
        get_metric("id_dlib").build(MetricContext())
