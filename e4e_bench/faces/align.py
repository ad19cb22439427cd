"""FFHQ face alignment: the oriented square around eyes and mouth that the FFHQ faces were cut with.

From dlib's 68 landmarks the recipe (NVlabs' FFHQ script, and e4e/pSp's ``align_face`` for their
inputs) builds a square, the "quad", in the photo:

- ``e``: from the centre of the left eye (points 36-41) to that of the right eye (42-47);
  ``m``: from the eye midpoint to the midpoint of the mouth corners (48 and 54);
- centre: the eye midpoint plus 0.1 m;
- half side: max(2 |e|, 1.8 |m|), along e - rot90(m) (the eye line averaged with the normal of the
  eye-to-mouth line), the other half side at right angles to it, pointing from the eyes to the mouth.

The photo is shrunk by an integer factor when the quad is at least 4x the output size, cropped to
the quad plus a border of 10% of its side, and, where the quad leaves the photo, padded by
reflection (at least 30% of the side) fading into a blurred copy (sigma 2% of the side) and the
median colour. The quad is then sampled bilinearly onto a square of the transform size and
resized (Lanczos) to the output size. A photo's largest face is aligned (see `FaceFinder`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from e4e_bench.data import list_images
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.faces.landmarks import FaceFinder
from e4e_bench.io import atomic_write

log = logging.getLogger(__name__)

# Output size -> the size the quad is first sampled at: 256 as e4e/pSp align their inputs,
# 1024 as the FFHQ data set was made (sampled at 4096, then downsized).
TRANSFORM_SIZES = {256: 256, 1024: 4096}


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """[68, 2] (x, y) landmarks -> the quad's corners [4, 2] (top-left, bottom-left, bottom-right,
    top-right of the aligned face) and its side length."""
    eye_left, eye_right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (landmarks[48] + landmarks[54]) / 2 - eye_mid
    across = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    across *= max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth)) / np.hypot(*across)
    down = np.array([-across[1], across[0]])
    centre = eye_mid + 0.1 * eye_to_mouth
    corners = np.stack([centre - across - down, centre - across + down, centre + across + down, centre + across - down])
    return corners, 2.0 * float(np.hypot(*across))


def shrink(image: Image.Image, quad: np.ndarray, side: float, output_size: int):
    factor = int(np.floor(side / output_size * 0.5))
    if factor <= 1:
        return image, quad, side
    size = (int(np.rint(image.width / factor)), int(np.rint(image.height / factor)))
    return image.resize(size, Image.Resampling.LANCZOS), quad / factor, side / factor


def crop_to_quad(image: Image.Image, quad: np.ndarray, border: int):
    left, top = (int(v) - border for v in np.floor(quad.min(0)))
    right, bottom = (int(v) + border for v in np.ceil(quad.max(0)))
    box = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
    if box == (0, 0, image.width, image.height):
        return image, quad
    return image.crop(box), quad - box[:2]


def pad_beyond_photo(image: Image.Image, quad: np.ndarray, side: float, border: int):
    """Reflect-pad where the quad (plus border) leaves the photo, blurring and greying toward the new edges."""
    low, high = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    needed = np.concatenate([np.maximum(border - low, 0), np.maximum(high - (image.width, image.height) + border, 0)])
    if needed.max() <= border - 4:
        return image, quad
    left, top, right, bottom = (int(v) for v in np.maximum(needed, int(np.rint(side * 0.3))))
    pixels = np.pad(np.asarray(image, np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    height, width = pixels.shape[:2]
    rows, columns = np.ogrid[:height, :width]
    # 1 on the padded image's edge, 0 at a pad's width inside it, negative further in.
    to_edge = np.maximum(
        1 - np.minimum(columns / left, (width - 1 - columns) / right),
        1 - np.minimum(rows / top, (height - 1 - rows) / bottom),
    )[..., None].astype(np.float32)
    blur = side * 0.02
    pixels += (gaussian_filter(pixels, [blur, blur, 0]) - pixels) * np.clip(to_edge * 3 + 1, 0, 1)
    pixels += (np.median(pixels, axis=(0, 1)) - pixels) * np.clip(to_edge, 0, 1)
    padded = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    return padded, quad + (left, top)


def transform_size(output_size: int) -> int:
    try:
        return TRANSFORM_SIZES[output_size]
    except KeyError:
        raise E4EBenchError(f"alignment size {output_size} is not one of {sorted(TRANSFORM_SIZES)}") from None


def align_face(image: Image.Image, landmarks: np.ndarray, output_size: int) -> Image.Image:
    """The FFHQ-aligned ``output_size`` square (256 or 1024) of an RGB photo, given its face's landmarks."""
    sampled_size = transform_size(output_size)
    quad, side = ffhq_quad(landmarks)
    image, quad, side = shrink(image, quad, side, output_size)
    border = max(int(np.rint(side * 0.1)), 3)
    image, quad = crop_to_quad(image, quad, border)
    image, quad = pad_beyond_photo(image, quad, side, border)
    # PIL's QUAD takes the source corners in pixel-edge coordinates, hence the half-pixel shift.
    square = image.transform(
        (sampled_size, sampled_size),
        Image.Transform.QUAD,
        (quad + 0.5).flatten().tolist(),
        Image.Resampling.BILINEAR,
    )
    if output_size < sampled_size:
        square = square.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return square


def read_photo(path: Path) -> Image.Image:
    """An RGB photo, turned upright as its EXIF orientation says (phone pictures are often stored sideways)."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


@dataclass
class AlignReport:
    written: list[Path] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)
    several_faces: list[tuple[Path, int]] = field(default_factory=list)  # (photo, faces found): largest kept
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def align_photos(paths: Sequence[Path], out_dir: Path, output_size: int) -> AlignReport:
    """Write ``out_dir/<stem>.png``, the aligned largest face of each photo; photos without a face are counted."""
    transform_size(output_size)  # a wrong size fails before any work
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise E4EBenchError(f"{stems[path.stem]} and {path} would both be written as {path.stem}.png; rename one")
        stems[path.stem] = path
    find_face = FaceFinder()
    report = AlignReport()
    for path in tqdm(paths, desc="align", unit="photo", leave=False):
        try:
            photo = read_photo(path)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            log.warning("skipping %s: cannot read image (%s)", path, err)
            report.unreadable.append((path, str(err)))
            continue
        face = find_face(np.asarray(photo))
        if face is None:
            log.warning("skipping %s: no face found", path)
            report.no_face.append(path)
            continue
        if face.n_faces > 1:
            log.warning("%s: %d faces found; aligning the largest", path, face.n_faces)
            report.several_faces.append((path, face.n_faces))
        target = out_dir / f"{path.stem}.png"
        with atomic_write(target) as stream:
            align_face(photo, face.landmarks, output_size).save(stream, format="PNG")
        report.written.append(target)
    return report


INFERENCE_SIZE = 256  # e4e's and pSp's align_face output, what their face encoders were run on


def check_face_domain(domain: Domain) -> None:
    if domain.identity != "arcface":
        raise E4EBenchError(f"--align makes FFHQ-aligned faces; domain {domain.name!r} is not a face domain (use faces)")


def aligned_folder(photos_dir: Path, out_dir: Path, domain: Domain) -> Path:
    """`--align` of invert and run: the photos of a folder FFHQ-aligned at 256 px into `out_dir` (kept
    beside the results), which the inversion then reads; only for domains of aligned faces."""
    check_face_domain(domain)
    photos = list_images(photos_dir)
    report = align_photos(photos, out_dir, INFERENCE_SIZE)
    if not report.written:
        raise E4EBenchError(f"no face could be aligned in the {len(photos)} photos of {photos_dir}")
    log.info("aligned %d of %d photos of %s into %s", len(report.written), len(photos), photos_dir, out_dir)
    return out_dir
