"""``id_dlib``: identity similarity from dlib's ResNet face descriptors (the `[faces]` extra, no download).

Each image is searched on its own: dlib's frontal detector (one upsampling) and the largest face's
68 landmarks, from which dlib cuts its 150x150 chip and computes a 128-d descriptor (no jitter).
The score is the cosine of the two descriptors; their Euclidean distance, with dlib's same-person
rule (distance < 0.6), goes under ``details``. A pair where either image shows no face scores NaN:
counted as failed, with which side failed, never dropped. The model files ship with the extra, so
``--random-weights`` does not change this metric.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from e4e_bench.data import to_uint8
from e4e_bench.faces.landmarks import RESNET_DESCRIPTOR, FaceFinder, import_dlib, model_file
from e4e_bench.metrics.registry import MetricContext, register_metric

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold for its descriptors (dlib_face_recognition_resnet_model_v1)

DLIB_PROTOCOL = (
    "cosine of dlib ResNet 128-d face descriptors (dlib_face_recognition_resnet_model_v1, CPU, no jitter, "
    "150x150 chip with 0.25 padding) on each image's largest dlib frontal-face detection (HOG, 1 upsampling) "
    "with 68 landmarks (shape_predictor_68_face_landmarks), uint8 images at the evaluation size; Euclidean "
    f"distance in details (same person below {SAME_PERSON_DISTANCE}); images without a face counted as failures"
)


class DlibIdentity:
    """Paired metric: cosine of dlib descriptors of real and fake; keeps distances and face-finding counts."""

    def __init__(self):
        dlib = import_dlib()
        self.full_object_detections = dlib.full_object_detections
        self.find_face = FaceFinder()
        self.network = dlib.face_recognition_model_v1(str(model_file(RESNET_DESCRIPTOR)))
        self.distances: list[np.ndarray] = []
        self.no_face = {"real": 0, "fake": 0}
        self.several_faces = 0

    def describe(self, images: torch.Tensor) -> np.ndarray:
        """[B,3,H,W] in [-1,1] -> [B,128] float64 descriptors; NaN rows where no face was found."""
        pixels = np.ascontiguousarray(to_uint8(images).permute(0, 2, 3, 1).cpu().numpy())
        faces = [self.find_face(image) for image in pixels]
        self.several_faces += sum(face is not None and face.n_faces > 1 for face in faces)
        descriptors = np.full((len(pixels), 128), np.nan)
        rows = [row for row, face in enumerate(faces) if face is not None]
        if rows:
            found = self.network.compute_face_descriptor(
                [pixels[row] for row in rows],
                [self.full_object_detections([faces[row].shape]) for row in rows],
                0,
            )
            descriptors[rows] = np.array([np.array(per_image[0]) for per_image in found])
        return descriptors

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        described = {"real": self.describe(real), "fake": self.describe(fake)}
        for side, descriptors in described.items():
            self.no_face[side] += int(np.isnan(descriptors).any(axis=1).sum())
        a, b = described["real"], described["fake"]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        self.distances.append(np.linalg.norm(a - b, axis=1))
        return torch.from_numpy(cosine).to(real.device)

    def summary_details(self) -> dict:
        distances = np.concatenate(self.distances) if self.distances else np.empty(0)
        scored = distances[np.isfinite(distances)]
        return {
            "distance": float(scored.mean()) if len(scored) else math.nan,
            "distance_std": float(scored.std()) if len(scored) else math.nan,
            "same_person_rate": float((scored < SAME_PERSON_DISTANCE).mean()) if len(scored) else math.nan,
            "same_person_distance": SAME_PERSON_DISTANCE,
            "n_no_face_real": self.no_face["real"],
            "n_no_face_fake": self.no_face["fake"],
            "n_several_faces": self.several_faces,
        }


@register_metric("id_dlib", kind="paired", title="ID (dlib)", higher_is_better=True, protocol=DLIB_PROTOCOL)
def build_id_dlib(context: MetricContext) -> DlibIdentity:
    return DlibIdentity()
