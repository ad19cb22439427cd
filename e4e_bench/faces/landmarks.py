"""Faces found by dlib (the `[faces]` extra): the frontal face detector and the 68 landmarks.

The model files come from the face-recognition-models package. Its ``__init__`` imports
``pkg_resources``, which current setuptools no longer ships, so the files are found through the
package's import spec without running it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e4e_bench.errors import E4EBenchError

FACES_EXTRA = 'pip install -e ".[faces]"'
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
RESNET_DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"
UPSAMPLING = 1  # the detector also looks at the photo upsampled 2x, as the FFHQ and e4e/pSp scripts do


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise E4EBenchError(f"dlib is not installed; it comes with the faces extra: {FACES_EXTRA}") from None
    return dlib


def model_file(name: str) -> Path:
    """A model file shipped by face-recognition-models."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise E4EBenchError(
            f"face-recognition-models (dlib's {name}) is not installed; it comes with the faces extra: {FACES_EXTRA}"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise E4EBenchError(f"{path} is missing; reinstall it: pip install --force-reinstall face-recognition-models")
    return path


@dataclass(frozen=True)
class Face:
    shape: Any  # dlib.full_object_detection: the box and the 68 points, what dlib's descriptor network takes
    n_faces: int  # faces the detector found in the photo; this is the largest

    @property
    def landmarks(self) -> np.ndarray:
        """[68, 2] float (x, y) pixel positions, in dlib's order (jaw 0-16 ... eyes 36-47, mouth 48-67)."""
        return np.array([(point.x, point.y) for point in self.shape.parts()], dtype=np.float64)


class FaceFinder:
    """RGB uint8 ``[H, W, 3]`` photo -> its largest frontal face with 68 landmarks, or None."""

    def __init__(self):
        dlib = import_dlib()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_file(LANDMARKS_68)))

    def __call__(self, image: np.ndarray) -> Face | None:
        # The official scripts keep the detector's last box, which can be a false one (a patch of
        # the suit on scikit-image's astronaut); the largest box is the face the photo is about.
        image = np.ascontiguousarray(image)
        boxes = self.detector(image, UPSAMPLING)
        if len(boxes) == 0:
            return None
        largest = max(boxes, key=lambda box: box.area())
        return Face(self.predictor(image, largest), len(boxes))
