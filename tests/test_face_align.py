"""FFHQ alignment on real photos: framing at 256 and 1024, rotation and scale, largest face, no face, no extra."""

import logging
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from e4e_bench import cli
from e4e_bench.errors import E4EBenchError
from e4e_bench.faces.align import align_face, align_photos, ffhq_quad
from tests.face_photos import astronaut, ffhq_geometry, grace_hopper, grace_hopper_file, require_faces_extra

TIGHT_BOX = (150, 110, 400, 360)  # left, top, right, bottom: the face and little else
STEMS = ("grace", "astronaut", "grace_rotated", "grace_half", "grace_tight")


def upright_landmarks(eye_mid, eye_distance, eye_to_mouth) -> np.ndarray:
    """68 points of which the recipe reads only the eyes (36-47) and the mouth corners (48, 54)."""
    x, y = eye_mid
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = (x - eye_distance / 2, y)
    landmarks[42:48] = (x + eye_distance / 2, y)
    landmarks[48], landmarks[54] = (x - 10, y + eye_to_mouth), (x + 10, y + eye_to_mouth)
    return landmarks


@pytest.mark.parametrize(
    "eye_distance, half_side",
    [(20, 1.8 * 30), (40, 2 * 40)],  # the half side is the larger of 2x eye distance and 1.8x eye-to-mouth
    ids=["mouth_sets_the_size", "eyes_set_the_size"],
)
def test_the_quad_of_an_upright_face_by_hand(eye_distance, half_side):
    """Eyes at height 50 around x=50, mouth 30 below: centre (50, 50 + 0.1 x 30), axes along x and y."""
    quad, side = ffhq_quad(upright_landmarks((50, 50), eye_distance, 30))
    left, right, top, bottom = 50 - half_side, 50 + half_side, 53 - half_side, 53 + half_side
    np.testing.assert_allclose(quad, [[left, top], [left, bottom], [right, bottom], [right, top]], atol=1e-12)
    assert side == pytest.approx(2 * half_side)


def test_the_quad_turns_with_the_face():
    landmarks = upright_landmarks((50, 50), 40, 30)
    angle = np.radians(15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = (landmarks - (7, 9)) @ rotation.T + (7, 9)
    quad, side = ffhq_quad(turned)
    upright, upright_side = ffhq_quad(landmarks)
    np.testing.assert_allclose(quad, (upright - (7, 9)) @ rotation.T + (7, 9), atol=1e-9)
    assert side == pytest.approx(upright_side)


def test_an_upright_quad_inside_the_photo_is_sampled_between_pixel_centres():
    """A quad of side 256 from (128, 128) to (384, 384), sampled at 256: the half-pixel shift of the recipe
    puts every output pixel at the meeting point of four photo pixels, so bilinear sampling averages them."""
    photo = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    landmarks = upright_landmarks((256, 250), 64, 60)  # half side 2 x 64 = 128, centre (256, 256)
    aligned = np.asarray(align_face(Image.fromarray(photo), landmarks, 256), dtype=np.float64)
    pixels = photo.astype(np.float64)
    four = pixels[128:384, 128:384] + pixels[129:385, 128:384] + pixels[128:384, 129:385] + pixels[129:385, 129:385]
    np.testing.assert_allclose(aligned, four / 4, atol=1)


@pytest.fixture(scope="module")
def find_face():
    require_faces_extra()
    from e4e_bench.faces.landmarks import FaceFinder

    return FaceFinder()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """grace_hopper.jpg as shipped, the astronaut, and copies of grace rotated by 15 degrees, at half size, and
    cropped so tightly that the FFHQ square leaves the photo on every side (the padding path)."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(grace_hopper_file(), folder / "grace.jpg")
    astronaut().save(folder / "astronaut.png")
    grace = grace_hopper()
    grace.rotate(15, resample=Image.Resampling.BICUBIC, expand=True).save(folder / "grace_rotated.png")
    grace.resize((grace.width // 2, grace.height // 2), Image.Resampling.LANCZOS).save(folder / "grace_half.png")
    grace.crop(TIGHT_BOX).save(folder / "grace_tight.png")
    return folder


@pytest.fixture(scope="module")
def aligned(photos, find_face, tmp_path_factory):
    """size -> (report, folder of aligned faces)."""
    results = {}
    for size in (256, 1024):
        out = tmp_path_factory.mktemp(f"aligned{size}")
        results[size] = align_photos(sorted(photos.iterdir()), out, size), out
    return results


@pytest.mark.parametrize("size", [256, 1024])
@pytest.mark.parametrize("stem", STEMS)
def test_aligned_faces_are_upright_and_ffhq_framed(aligned, find_face, size, stem):
    """The recipe maps its quad onto the whole output square, so on the output the landmarks define that
    square again: quad centre at the frame centre, half side half the frame, horizontal axis level, and
    the eye midpoint 0.1 eye-to-mouth above the centre (landmarks read at 256 px)."""
    report, out = aligned[size]
    image = Image.open(out / f"{stem}.png")
    assert image.size == (size, size) and image.mode == "RGB"
    face = find_face(np.asarray(image.resize((256, 256), Image.Resampling.LANCZOS)))
    assert face is not None and face.n_faces == 1
    geometry = ffhq_geometry(face.landmarks)
    np.testing.assert_allclose(geometry["centre"], [128, 128], atol=4)
    assert geometry["half_side"] == pytest.approx(128, rel=0.06)
    assert abs(geometry["angle"]) < 3
    expected_eyes = [128, 128 - 0.1 * np.hypot(*geometry["eye_to_mouth"])]
    np.testing.assert_allclose(geometry["eye_mid"], expected_eyes, atol=4)


def expected_eyes(landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """Where the recipe puts a photo's eye centres in the aligned square: the similarity that maps the quad
    (centre, half side, axis angle read from the photo's landmarks) onto the square, in pixel-index
    coordinates (the quad's corners are pixel centres shifted by half a pixel onto pixel edges)."""
    geometry = ffhq_geometry(landmarks)
    angle = np.radians(geometry["angle"])
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    eyes = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)])
    return size / 2 * (1 + (eyes - geometry["centre"]) @ rotation.T / geometry["half_side"]) - 0.5


@pytest.mark.parametrize("stem", STEMS)
def test_the_eyes_land_where_the_recipe_maps_them(photos, aligned, find_face, stem):
    _, out = aligned[256]
    photo = next(photos.glob(f"{stem}.*"))
    expected = expected_eyes(find_face(np.asarray(Image.open(photo).convert("RGB"))).landmarks)
    landmarks = find_face(np.asarray(Image.open(out / f"{stem}.png"))).landmarks
    found = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)])
    np.testing.assert_allclose(found, expected, atol=2.5)


def test_where_the_square_leaves_the_photo_it_is_padded_with_a_blur(aligned):
    """The tight crop's top edge falls about a quarter down the aligned square: above it the pixels are a
    blurred reflection, far smoother than the photo's own content."""
    _, out = aligned[256]
    pixels = np.asarray(Image.open(out / "grace_tight.png"), dtype=np.float64)

    def roughness(block):
        return np.abs(np.diff(block, axis=1)).mean()

    assert roughness(pixels[:40]) < 0.3 * roughness(pixels[100:140])


def test_rotated_and_half_size_copies_align_like_the_original(aligned, find_face):
    _, out = aligned[256]

    def pixels(stem):
        return np.asarray(Image.open(out / f"{stem}.png"))

    def eyes(stem):
        landmarks = find_face(pixels(stem)).landmarks
        return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)])

    original = pixels("grace").astype(np.float64)
    other_person = np.abs(pixels("astronaut") - original).mean()
    for copy in ("grace_rotated", "grace_half"):
        np.testing.assert_allclose(eyes(copy), eyes("grace"), atol=3)
        assert np.abs(pixels(copy) - original).mean() < 0.5 * other_person


def test_the_astronaut_is_aligned_on_her_face_not_on_the_last_detection(photos, aligned, find_face):
    report, _ = aligned[256]
    assert [(path.name, count) for path, count in report.several_faces] == [("astronaut.png", 2)]
    image = np.asarray(Image.open(photos / "astronaut.png"))
    boxes = find_face.detector(image, 1)
    assert boxes[-1].top() > 256  # the box the official loop would keep: a patch of the suit, low in the photo
    kept = find_face(image).shape.rect
    assert kept.bottom() < 256 and kept.area() > boxes[-1].area()


@pytest.mark.parametrize("large_on_left", [True, False])
def test_the_largest_of_two_faces_is_kept(find_face, large_on_left):
    grace = grace_hopper()
    small = grace.resize((grace.width // 2, grace.height // 2), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (grace.width + small.width + 40, grace.height), (128, 128, 128))
    large_x, small_x = (0, grace.width + 40) if large_on_left else (small.width + 40, 0)
    canvas.paste(grace, (large_x, 0))
    canvas.paste(small, (small_x, grace.height // 4))
    face = find_face(np.asarray(canvas))
    assert face.n_faces == 2
    columns = face.landmarks[:, 0]
    assert large_x <= columns.min() and columns.max() < large_x + grace.width


def test_align_names_and_counts_the_photos_it_could_not_align(tmp_path, capsys, caplog, find_face):
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut().save(photos / "astronaut.png")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(photos / "grey.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING, logger="e4e_bench"):
        code = cli.main(["align", "--images", str(photos), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["astronaut.png"]
    assert "aligned 1 of 3 photos" in out and "several faces, the largest aligned (1): astronaut.png (2)" in out
    assert "no face found (1): grey.png" in out and "unreadable (1): broken.jpg" in out
    assert "astronaut.png: 2 faces found; aligning the largest" in caplog.text
    assert "grey.png: no face found" in caplog.text


def test_without_the_faces_extra_align_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    shutil.copy(grace_hopper_file(), tmp_path / "grace.jpg")
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now fails as it does without the extra
    code = cli.main(["align", "--images", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: dlib is not installed") and 'pip install -e ".[faces]"' in err


def test_two_photos_with_one_stem_are_refused_before_any_work(tmp_path):
    shutil.copy(grace_hopper_file(), tmp_path / "me.jpg")
    grace_hopper().save(tmp_path / "me.png")
    with pytest.raises(E4EBenchError, match="would both be written as me.png"):
        align_photos(sorted(tmp_path.iterdir()), tmp_path / "out", 256)
    assert not (tmp_path / "out").exists()


def test_invert_align_aligns_the_photos_first_and_keeps_them(tmp_path, capsys):
    """`invert --align`: the photos are FFHQ-aligned at 256 px into OUT/aligned/, and those are inverted."""
    require_faces_extra()
    import dataclasses

    from e4e_bench.domains import DOMAINS
    from tests.conftest import TINY, make_tiny_generator
    from tests.official_checkpoints import write_official_checkpoint

    faces = dataclasses.replace(TINY, name="tiny_faces", identity="arcface")
    checkpoint = write_official_checkpoint(tmp_path / "e4e.pt", "e4e", make_tiny_generator())
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(grace_hopper_file(), photos / "grace.jpg")
    Image.new("RGB", (64, 64), (128, 128, 128)).save(photos / "grey.png")
    out = tmp_path / "out"
    argv = ["invert", "--method", "e4e", "--checkpoint", str(checkpoint), "--images", str(photos), "--device", "cpu"]
    with DOMAINS.registered(faces.name, faces):
        assert cli.main([*argv, "--domain", faces.name, "--out", str(out), "--align"]) == 0
    with Image.open(out / "aligned" / "grace.png") as aligned:
        assert aligned.size == (256, 256)
    assert (out / "names.txt").read_text().split() == ["grace"]  # the grey picture has no face
    assert cli.main([*argv, "--domain", "cars", "--out", str(tmp_path / "cars"), "--align"]) == 2
    assert "not a face domain" in capsys.readouterr().err
