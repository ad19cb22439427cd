"""Real face photos that ship with our dependencies, and the FFHQ geometry of a face's landmarks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FACES_EXTRA_MISSING = 'needs the faces extra (dlib-bin, face-recognition-models): pip install -e ".[faces]"'


def require_faces_extra() -> None:
    """Skip the calling test or fixture when dlib or its model files are not installed."""
    pytest.importorskip("dlib", reason=FACES_EXTRA_MISSING)
    # face_recognition_models cannot be imported (its __init__ needs pkg_resources): look it up only
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip(FACES_EXTRA_MISSING)


def grace_hopper_file() -> Path:
    """matplotlib's sample photo, a 600x512 (H x W) JPEG with one face."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def grace_hopper() -> Image.Image:
    with Image.open(grace_hopper_file()) as image:
        return image.convert("RGB")


def astronaut() -> Image.Image:
    """scikit-image's 512x512 astronaut (Eileen Collins); dlib also finds a false face on her suit."""
    data = pytest.importorskip("skimage.data", reason="the astronaut photo comes with scikit-image")
    return Image.fromarray(data.astronaut())


def ffhq_geometry(landmarks: np.ndarray) -> dict:
    """What the FFHQ recipe reads from 68 landmarks: eye midpoint, the quad's centre (eye midpoint plus
    0.1 of eye-to-mouth), its half side (max of 2x eye distance and 1.8x eye-to-mouth) and the angle of
    its horizontal axis (eye line minus eye-to-mouth turned by 90 degrees), in degrees."""
    eye_left, eye_right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (landmarks[48] + landmarks[54]) / 2 - eye_mid
    axis = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    return {
        "eye_mid": eye_mid,
        "centre": eye_mid + 0.1 * eye_to_mouth,
        "half_side": max(2 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth)),
        "angle": float(np.degrees(np.arctan2(axis[1], axis[0]))),
        "eye_to_mouth": eye_to_mouth,
    }
