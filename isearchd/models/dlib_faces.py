"""The face models on dlib: HOG detector, 5-point landmarks, ResNet descriptors.

``DlibFaceModels`` implements ``faces.FaceModels`` with dlib (PyPI ``dlib-bin``: prebuilt wheels)
and the weights of PyPI ``face-recognition-models``:

1. detect: the picture, reduced so its longer side is at most ``DETECT_LONG_SIDE``, in grey, goes
   through dlib's HOG frontal face detector; where small faces may have been missed (a small
   picture; nothing found; a face found near the detector's limit: ``UPSAMPLE_AT_ONCE_SIDE``,
   ``SECOND_PASS_BELOW``) a second pass scans the copy upsampled, at the finer scales only
   (``SECOND_PASS_LEVELS``); each face's 5 landmarks (the corners of
   both eyes, the base of the nose) come from ``shape_predictor_5_face_landmarks.dat`` on the same
   reduced picture, then are scaled back to the picture (found on the full picture instead, they
   gave the same distances to 0.01 over deepface's photos, for a full-size grey copy more);
2. describe: dlib aligns a 150 px chip from the 5 landmarks in the full-resolution RGB picture and
   ``dlib_face_recognition_resnet_model_v1.dat`` turns it into 128 numbers, scaled to unit length.

Only the 5-point landmark model is used: the 68-point one in the same package was trained on
iBUG 300-W, whose licence excludes commercial use.

Threads: one set of models behind one lock. dlib's Python calls hold the GIL (two threads running
detect + describe took 111 ms of wall time per picture, as one thread did; Intel Xeon, KVM, 2 cores),
so a set per thread would buy no speed and multiply the memory.

Memory: the models load on first use (0.4 s) and ``close()`` drops them and trims the heap, so
the daemon can hold them only while it analyses faces. RSS (``benchmarks/bench_faces.py``): +42 MiB
loaded (importing dlib included), +31 MiB more once a 1920 px photo was analysed; after
``close()`` 20 MiB stay (the imported dlib module, heap the allocator keeps).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from isearchd.errors import InvalidRequest, ModelError, WeightsMissing
from isearchd.files.images import to_rgb
from isearchd.memory import trim_heap
from isearchd.models.faces import DetectedFace, unit_rows

log = logging.getLogger(__name__)

INSTALL = "pip install dlib-bin face-recognition-models"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS = 5
DIM = 128

# The detector scans a grey copy whose longer side is at most this. The HOG detector on 1920x1440
# pictures with 12 faces of one width planted (bench_faces.py --small-faces; Intel Xeon, KVM,
# AVX-512, one core): a plain pass costs 21 ms at 640 px, 30 at 800, 49 at 1024, 77 at 1280; at
# 800 it finds every face of 160 px (in the 1920 px picture), 23 of 24 of 140 px, 11 of 120 px.
# 800 keeps the plain pass, all that most photos need, cheap; the second pass finds smaller faces.
DETECT_LONG_SIDE = 800
# The plain pass finds faces down to ~50 px in the detection copy, the upsampled one down to
# ~30 px (70 px in a 1920 px picture: 23 of 24) for 4x the time (124 ms at 800 px). A copy no
# longer than this is upsampled at once: that costs about one plain pass over 800 px.
UPSAMPLE_AT_ONCE_SIDE = 400
# A larger copy gets the upsampled pass too when the plain one found nothing, or a face whose box
# is narrower than this: dlib's boxes come in steps of 6/5 (73, 88, 105 px, ...), and a face on
# the smallest step means others may lie just under the limit (faces of 120 px in a 1920 px
# picture: 11 of 24 found by the plain pass, 24 with the second). Worth it: faces shrunk to 40 px
# still matched 93 % of same-person pairs at MATCH_DISTANCE without a false match (97.5 % at
# 140 px; --face-sizes).
SECOND_PASS_BELOW = 80
# The second pass scans only the scales the plain one has not: the copy upsampled to twice its
# size, at the first this many levels of dlib's pyramid (each 5/6 of the one above: 2x, 1.67x,
# 1.39x, 1.16x the copy; the plain pass starts at 1x). dlib's own upsampled pass scans every level
# down to 80 px, the plain pass's scales again (1x and below: a quarter of its work). Its
# detections join the plain pass's (``_merged``). On 300 photos of bench_faces_library's mix (AMD
# EPYC, one core): 67 core-ms a pass against 89 for dlib's whole upsampled pyramid, the same faces
# found in the same photos (boxes differ where a face is found at two scales); 3 levels: 60 ms.
SECOND_PASS_LEVELS = 4
# Two detections of the two passes overlapping more than this (intersection over union, or one
# inside the other) are one face, and the better scored is kept: one face's boxes at neighbouring
# scales overlap by 0.6-0.9; on the 300 photos above no two faces were taken for one.
SAME_FACE_OVERLAP = 0.3
# Two unit descriptors closer than this are one person. deepface's labelled test photos at
# 1920 px (61 photos of 13 people: 1830 pairs, 140 of one person; benchmarks/results/faces.json):
# 0.35 matched 96.4 % of same-person pairs (of master.csv's 38: 97.4 %) with no false match;
# 0.375 matched 99.3 % with 2 false matches (precision 0.986). Unit rows separate better than
# dlib's raw descriptors: without a false match those reached 93.6 % (at 0.50), and dlib's
# customary 0.6 let in 6 false matches (precision 0.959).
MATCH_DISTANCE = 0.35


@dataclass(frozen=True)
class _Loaded:
    dlib: Any
    detector: Any
    small_faces: Any  # the detector on its top SECOND_PASS_LEVELS pyramid levels only
    predictor: Any
    describer: Any


def model_files(models_dir: Path | None = None) -> tuple[Path, Path]:
    """The landmark and descriptor weights: in ``models_dir``, else in the installed
    face-recognition-models package (found without importing it: its ``__init__`` imports
    pkg_resources, which current setuptools no longer has). ``WeightsMissing`` when absent."""
    if models_dir is None:
        spec = find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise WeightsMissing(
                "the face models' weights (package face-recognition-models) are not installed;"
                f" run `{INSTALL}`"
            )
        models_dir = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = (models_dir / LANDMARKS_FILE, models_dir / DESCRIPTOR_FILE)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise WeightsMissing(
            f"face model files missing from {models_dir}: {', '.join(missing)}; run `{INSTALL}`"
            " (or `pip install --force-reinstall face-recognition-models`)"
        )
    return files


def check_installed(models_dir: Path | None = None) -> None:
    """Whether the face models can load, without loading them: dlib imports and the weight files
    are there (``ModelError`` or ``WeightsMissing`` saying how to install them)."""
    model_files(models_dir)
    _import_dlib()


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise ModelError(f"the face models need dlib, which did not import ({err}); run `{INSTALL}`") from err
    return dlib


def _load(models_dir: Path | None) -> _Loaded:
    landmarks, descriptor = model_files(models_dir)
    dlib = _import_dlib()
    start = time.perf_counter()
    try:
        detector = dlib.get_frontal_face_detector()
        loaded = _Loaded(
            dlib=dlib,
            detector=detector,
            small_faces=_top_levels(dlib, detector, SECOND_PASS_LEVELS),
            predictor=dlib.shape_predictor(str(landmarks)),
            describer=dlib.face_recognition_model_v1(str(descriptor)),
        )
    except RuntimeError as err:  # dlib's deserialisation errors (a truncated or foreign file)
        raise ModelError(
            f"cannot load the face models from {landmarks.parent}: {err}; "
            "run `pip install --force-reinstall face-recognition-models`"
        ) from err
    log.info("face models loaded from %s in %.2f s", landmarks.parent, time.perf_counter() - start)
    return loaded


def _detection_copy(rgb: Image.Image) -> np.ndarray:
    """The grey picture the detector scans: ``rgb`` reduced to ``DETECT_LONG_SIDE`` at most.

    Grey first, then reduced: resizing one plane instead of three halves the cost (1920x1080:
    5.6 core-ms against 12; AMD EPYC), and the copy differs by at most 1-2 of 255 (rounding)."""
    grey = rgb.convert("L")
    scale = DETECT_LONG_SIDE / max(grey.size)
    if scale < 1:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        # reducing_gap: a box reduction first, then bilinear (cheaper than bilinear over it all)
        grey = grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(grey)


# How dlib (19.x to 20.x) serialises the frontal face detector's scanner, up to its pyramid depth:
# versions 2 and 1, the feature extractor, no cached features, cell size 8, padding 0, an 80x80
# window, then ``max_pyramid_levels`` (1000: unlimited), each an int in dlib's variable-length
# coding (a byte count, then the bytes, little-endian).
_SCANNER_HEAD = bytes.fromhex("0102 0101 0100 0100 0108 0100 0150 0150")
_UNLIMITED_LEVELS = bytes.fromhex("02e803")


def _top_levels(dlib: Any, detector: Any, levels: int) -> Any:
    """``detector`` scanning only the first ``levels`` levels of its image pyramid (dlib's Python
    API has no such switch: the depth is set in its serialised form). If dlib's format is not the
    one known here, ``detector`` itself (the second pass then costs its old price; same faces)."""
    with tempfile.TemporaryDirectory(prefix="isearch-hog-") as tmp:
        saved = Path(tmp) / "frontal.svm"
        detector.save(str(saved))
        data = saved.read_bytes()
        head = _SCANNER_HEAD + _UNLIMITED_LEVELS
        if not data.startswith(head) or not 0 < levels < 128:
            log.warning("dlib's face detector is not in the known format: the second pass scans every scale")
            return detector
        saved.write_bytes(_SCANNER_HEAD + bytes((1, levels)) + data[len(head) :])
        return dlib.fhog_object_detector(str(saved))


def _scan(models: _Loaded, grey: np.ndarray) -> tuple[list[Any], list[float]]:
    """The detector's boxes and scores on the detection copy: upsampled at once when the copy is
    small; else a plain pass, and a second over the upsampled copy's finer scales when the first
    found nothing or a face near its limit."""
    if max(grey.shape) <= UPSAMPLE_AT_ONCE_SIDE:
        rects, scores, _ = models.detector.run(grey, 1, 0.0)
        return list(rects), list(scores)
    rects, scores, _ = models.detector.run(grey, 0, 0.0)
    if rects and min(rect.width() for rect in rects) >= SECOND_PASS_BELOW:
        return list(rects), list(scores)
    small, small_scores, _ = models.small_faces.run(grey, 1, 0.0)
    return _merged([*zip(rects, scores, strict=True), *zip(small, small_scores, strict=True)])


def _merged(found: list[tuple[Any, float]]) -> tuple[list[Any], list[float]]:
    """The detections of both passes, one per face: the best scored of those that overlap."""
    kept: list[tuple[Any, float]] = []
    for rect, score in sorted(found, key=lambda d: -d[1]):
        if all(_overlap(rect, other) <= SAME_FACE_OVERLAP for other, _ in kept):
            kept.append((rect, score))
    return [r for r, _ in kept], [s for _, s in kept]


def _overlap(a: Any, b: Any) -> float:
    """Intersection over union of two dlib rectangles; 1 when one lies inside the other."""
    inter = a.intersect(b).area()
    if inter == 0:
        return 0.0
    if inter >= min(a.area(), b.area()):
        return 1.0
    return float(inter / (a.area() + b.area() - inter))


def _face(rect: Any, shape: Any, score: float, sx: float, sy: float, size: tuple[int, int]) -> DetectedFace:
    """A detection at the reduced size (dlib rectangle and landmarks) in the picture's coordinates.

    ``sx``, ``sy``: detection size / picture size. Pixel centres map onto pixel centres; the box's
    edges are scaled and clipped to the picture."""
    width, height = size
    left = min(max(round(rect.left() / sx), 0), width - 1)
    top = min(max(round(rect.top() / sy), 0), height - 1)
    right = min(max(round((rect.right() + 1) / sx), left + 1), width)
    bottom = min(max(round((rect.bottom() + 1) / sy), top + 1), height)
    points = tuple(
        (round((p.x + 0.5) / sx - 0.5, 2), round((p.y + 0.5) / sy - 0.5, 2)) for p in shape.parts()
    )
    return DetectedFace(box=(left, top, right - left, bottom - top), landmarks=points, score=float(score))


class DlibFaceModels:
    """``FaceModels`` on dlib (see the module docstring). ``models_dir``: a folder holding the two
    .dat files, instead of the face-recognition-models package. ``jitters``: descriptors averaged
    over this many jittered copies of each face (each costs one more pass, ~80 ms); 0 or 1: none."""

    name = "dlib-hog-5pt-resnet"
    version = 1
    dim = DIM
    match_distance = MATCH_DISTANCE

    def __init__(self, models_dir: Path | None = None, *, jitters: int = 0) -> None:
        self._models_dir = models_dir
        self._jitters = jitters
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _models(self) -> _Loaded:
        """The loaded models (loading them now if need be); call with the lock held."""
        if self._loaded is None:
            self._loaded = _load(self._models_dir)
        return self._loaded

    def detect(self, picture: Image.Image) -> list[DetectedFace]:
        rgb = to_rgb(picture)
        grey = _detection_copy(rgb)
        sx, sy = grey.shape[1] / rgb.width, grey.shape[0] / rgb.height
        with self._lock:
            models = self._models()
            rects, scores = _scan(models, grey)
            shapes = [models.predictor(grey, rect) for rect in rects]
        found = zip(rects, shapes, scores, strict=True)
        faces = [_face(rect, shape, score, sx, sy, rgb.size) for rect, shape, score in found]
        return sorted(faces, key=lambda face: -face.score)

    def describe(self, picture: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, DIM), dtype=np.float32)
        for face in faces:
            if len(face.landmarks) != LANDMARKS:
                raise InvalidRequest(
                    f"dlib aligns a face from {LANDMARKS} landmarks, this one has {len(face.landmarks)}"
                )
        pixels = np.ascontiguousarray(np.asarray(to_rgb(picture)))
        with self._lock:
            models = self._models()
            shapes = [self._shape(models.dlib, face) for face in faces]
            rows = [models.describer.compute_face_descriptor(pixels, s, self._jitters) for s in shapes]
        return unit_rows(np.asarray(rows, dtype=np.float32))

    @staticmethod
    def _shape(dlib: Any, face: DetectedFace) -> Any:
        """The face as dlib's ``full_object_detection`` (the chip is aligned from its points)."""
        left, top, width, height = face.box
        rect = dlib.rectangle(left, top, left + width - 1, top + height - 1)
        return dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in face.landmarks])

    def close(self) -> None:
        with self._lock:
            if self._loaded is None:
                return
            self._loaded = None
        trim_heap()
        log.info("face models released")
