"""The dlib face models on real photos: tests/fixtures/faces (four people, three photos each).

One model set for the module (loading takes ~0.4 s); each photo is analysed once.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from isearchd.errors import InvalidRequest, ModelError, WeightsMissing
from isearchd.models import dlib_faces
from isearchd.models.dlib_faces import DlibFaceModels
from isearchd.models.faces import DetectedFace

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
PEOPLE: dict[str, str] = json.loads((FACES / "people.json").read_text())
INSTALL = "pip install dlib-bin face-recognition-models"
# photo name -> (its faces, their descriptors)
Analysed = dict[str, tuple[list[DetectedFace], np.ndarray]]


def _photo(name: str) -> Image.Image:
    with Image.open(FACES / name) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def models() -> Iterator[DlibFaceModels]:
    m = DlibFaceModels()
    yield m
    m.close()


@pytest.fixture(scope="module")
def analysed(models: DlibFaceModels) -> Analysed:
    out = {}
    for name in PEOPLE:
        picture = _photo(name)
        faces = models.detect(picture)
        out[name] = (faces, models.describe(picture, faces))
    return out


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def test_the_models_say_what_they_are(models: DlibFaceModels) -> None:
    assert (models.name, models.version, models.dim) == ("dlib-hog-5pt-resnet", 1, 128)
    assert 0 < models.match_distance < 2


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_each_photo_has_one_face_with_its_landmarks_inside(name: str, analysed: Analysed) -> None:
    faces, _ = analysed[name]
    width, height = _photo(name).size
    assert len(faces) == 1
    face = faces[0]
    left, top, w, h = face.box
    assert left >= 0 and top >= 0 and left + w <= width and top + h <= height
    assert min(width, height) / 8 <= w <= min(width, height)  # portraits: the face is a large part
    assert 0.7 <= h / w <= 1.4
    assert face.score > 0
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:
        assert left <= x <= left + w and top <= y <= top + h


def test_descriptors_are_unit_float32_rows(analysed: Analysed) -> None:
    for _, rows in analysed.values():
        assert rows.shape == (1, 128) and rows.dtype == np.float32
        assert np.linalg.norm(rows[0]) == pytest.approx(1.0, abs=1e-5)


def test_one_person_within_the_match_distance_others_beyond(
    models: DlibFaceModels, analysed: Analysed
) -> None:
    same, other = [], []
    for a, b in itertools.combinations(sorted(PEOPLE), 2):
        d = _distance(analysed[a][1][0], analysed[b][1][0])
        (same if PEOPLE[a] == PEOPLE[b] else other).append((round(d, 3), a, b))
    assert len(same) == 12 and len(other) == 54
    assert max(same)[0] < models.match_distance, max(same)
    assert min(other)[0] > models.match_distance, min(other)


def _drawn() -> Image.Image:
    picture = Image.new("RGB", (900, 600), (120, 160, 210))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((300, 150, 600, 450), fill=(240, 200, 60))
    draw.rectangle((0, 420, 900, 600), fill=(60, 140, 60))
    return picture


@pytest.mark.parametrize("which", ["coffee", "rocket", "drawn"])
def test_a_picture_without_faces_has_none(models: DlibFaceModels, which: str) -> None:
    if which == "drawn":
        picture = _drawn()
    else:
        data = pytest.importorskip("skimage.data")
        picture = Image.fromarray(getattr(data, which)())
    assert models.detect(picture) == []
    rows = models.describe(picture, [])
    assert rows.shape == (0, 128) and rows.dtype == np.float32


@pytest.mark.parametrize("size", [(1, 1), (20, 20), (3, 500)])
def test_a_tiny_picture_has_no_face(models: DlibFaceModels, size: tuple[int, int]) -> None:
    assert models.detect(Image.new("RGB", size, (90, 90, 90))) == []


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16"])
def test_other_modes_find_the_same_face(models: DlibFaceModels, analysed: Analysed, mode: str) -> None:
    name = "img2.jpg"
    if mode == "I;16":  # 16-bit grey: the 8-bit values spread over 0..65535
        picture = Image.fromarray(np.asarray(_photo(name).convert("L")).astype(np.uint16) * 257)
    else:
        picture = _photo(name).convert(mode)
    assert picture.mode == mode
    faces = models.detect(picture)
    assert len(faces) == 1
    assert np.allclose(faces[0].box, analysed[name][0][0].box, atol=4)
    rows = models.describe(picture, faces)
    assert _distance(rows[0], analysed[name][1][0]) < models.match_distance


def test_a_large_picture_gives_its_own_coordinates(models: DlibFaceModels, analysed: Analysed) -> None:
    # 3x: the detector sees a reduced copy; box and landmarks come back in the big picture's pixels
    name = "img13.jpg"
    small = _photo(name)
    big = small.resize((small.width * 3, small.height * 3), Image.Resampling.BICUBIC)
    (face,) = models.detect(big)
    (small_face,) = analysed[name][0]
    # (HOG's boxes come in steps of scale: within 10 %)
    assert np.allclose(face.box, np.array(small_face.box) * 3, atol=0.1 * face.box[2])
    assert np.allclose(face.landmarks, np.array(small_face.landmarks) * 3 + 1, atol=12)
    assert _distance(models.describe(big, [face])[0], analysed[name][1][0]) < models.match_distance


def test_two_people_side_by_side(models: DlibFaceModels, analysed: Analysed) -> None:
    left, right = _photo("img1.jpg"), _photo("img16.jpg")
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    faces = models.detect(both)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    rows = models.describe(both, faces)
    for face, row in zip(faces, rows, strict=True):
        source = "img1.jpg" if face.box[0] < left.width else "img16.jpg"
        assert _distance(row, analysed[source][1][0]) < models.match_distance
    assert sorted(f.box[0] < left.width for f in faces) == [False, True]


def test_a_small_face_alone_in_a_large_photo_is_found(models: DlibFaceModels) -> None:
    # an 80 px face in a 1920 px photo is 33 px in the 800 px copy, too small for the detector's
    # plain pass (~50 px at least); the upsampled second pass finds it
    portrait = _photo("img4.jpg")
    photo = Image.new("RGB", (1920, 1440), (128, 128, 128))
    size = (portrait.width * 80 // 180, portrait.height * 80 // 180)  # its face: 180 px -> 80
    face = portrait.resize(size, Image.Resampling.LANCZOS)
    photo.paste(face, (900, 700))
    (found,) = models.detect(photo)
    left, top, width, _ = found.box
    assert 60 <= width <= 110 and 900 < left < 900 + face.width and 700 < top < 700 + face.height


def test_faces_near_the_limit_are_all_found(models: DlibFaceModels) -> None:
    # faces of 120 px in a 1920 px photo (50 px in the 800 px copy): the plain pass finds some of
    # them, on its smallest box; that sends the photo through the upsampled pass, which finds all
    photo = Image.new("RGB", (1920, 1440), (128, 128, 128))
    names = ["img1.jpg", "img4.jpg", "img14.jpg", "img16.jpg", "img53.jpg", "img62.jpg"]
    for i, (name, analysed_face) in enumerate((n, models.detect(_photo(n))[0]) for n in names):
        portrait = _photo(name)
        scale = 120 / analysed_face.box[2]
        small = portrait.resize((round(portrait.width * scale), round(portrait.height * scale)))
        photo.paste(small, ((i % 3) * 640 + 100, (i // 3) * 720 + 100))
    assert len(models.detect(photo)) == len(names)


def test_the_second_pass_finds_what_dlibs_upsampled_pass_finds(models: DlibFaceModels) -> None:
    # faces of 70-260 px in a 1920 px photo: the plain pass finds the large ones, the second pass
    # (the upsampled copy's finer scales only) the small ones, each face once, as dlib's whole
    # upsampled pyramid does
    import dlib

    detector = dlib.get_frontal_face_detector()
    assert dlib_faces._top_levels(dlib, detector, 4) is not detector  # dlib's format is the known one
    photo = Image.new("RGB", (1920, 1440), (128, 128, 128))
    names = ["img1.jpg", "img4.jpg", "img14.jpg", "img16.jpg", "img53.jpg", "img62.jpg"]
    for i, (name, width) in enumerate(zip(names, (70, 100, 130, 160, 200, 260), strict=True)):
        portrait = _photo(name)
        scale = width / models.detect(portrait)[0].box[2]
        small = portrait.resize((round(portrait.width * scale), round(portrait.height * scale)))
        photo.paste(small, ((i % 3) * 640 + 60, (i // 3) * 720 + 60))
    everywhere, _, _ = detector.run(dlib_faces._detection_copy(photo), 1, 0.0)
    found = models.detect(photo)
    assert len(found) == len(everywhere) == len(names)
    cells = sorted((f.box[0] // 640, f.box[1] // 720) for f in found)
    assert cells == sorted((i % 3, i // 3) for i in range(6))  # one face in each


def test_describe_refuses_a_face_it_cannot_align(models: DlibFaceModels) -> None:
    face = DetectedFace(box=(0, 0, 50, 50), landmarks=((10.0, 10.0), (20.0, 10.0)), score=1.0)
    with pytest.raises(InvalidRequest, match="5 landmarks"):
        models.describe(Image.new("RGB", (60, 60)), [face])


def test_threads_share_the_models(models: DlibFaceModels, analysed: Analysed) -> None:
    names = ["img1.jpg", "img14.jpg", "img17.jpg", "img53.jpg"]
    found: dict[str, list[DetectedFace]] = {}

    def work(name: str) -> None:
        found[name] = models.detect(_photo(name))

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {n: found[n] for n in names} == {n: analysed[n][0] for n in names}


def test_close_releases_and_the_next_call_loads_again(
    analysed: Analysed,
) -> None:
    m = DlibFaceModels()
    m.close()  # nothing loaded yet: nothing to do
    picture = _photo("img15.jpg")
    first = m.detect(picture)
    m.close()
    assert m.detect(picture) == first == analysed["img15.jpg"][0]
    m.close()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlib_faces, "find_spec", lambda name: None)
    m = DlibFaceModels()  # nothing is looked for before the first use
    with pytest.raises(WeightsMissing, match=INSTALL):
        m.detect(_photo("img1.jpg"))


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / dlib_faces.DESCRIPTOR_FILE).write_bytes(b"")
    with pytest.raises(WeightsMissing, match=dlib_faces.LANDMARKS_FILE) as err:
        DlibFaceModels(tmp_path).detect(_photo("img1.jpg"))
    assert INSTALL in err.value.message and dlib_faces.DESCRIPTOR_FILE not in err.value.message


def test_broken_files_are_a_model_error(tmp_path: Path) -> None:
    for name in (dlib_faces.LANDMARKS_FILE, dlib_faces.DESCRIPTOR_FILE):
        (tmp_path / name).write_bytes(b"not a dlib model")
    with pytest.raises(ModelError, match="cannot load the face models"):
        DlibFaceModels(tmp_path).detect(_photo("img1.jpg"))


def test_missing_dlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    dlib_faces.check_installed()  # (as the daemon asks at its start)
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib raises ImportError
    with pytest.raises(ModelError, match=INSTALL) as err:
        DlibFaceModels().detect(_photo("img1.jpg"))
    assert not isinstance(err.value, WeightsMissing)
    with pytest.raises(ModelError, match=INSTALL):
        dlib_faces.check_installed()
