"""What the "people" feature asks of face models: find the faces in a picture, describe each one.

A ``FaceModels`` is a detector, a landmark model and a descriptor model that belong together:

1. ``detect(picture)`` finds the faces: a box, the landmarks the models align a face from, and the
   detector's score, all in the picture's own pixel coordinates;
2. ``describe(picture, faces)`` aligns each face from its landmarks and returns one descriptor per
   face, float32 rows of unit length: two faces of one person lie within ``match_distance``
   (Euclidean) of each other.

Descriptors of different models (or of one model's versions) are never compared: ``name`` and
``version`` are stored with each face, so faces analysed by older models can be found and analysed
again. ``dlib_faces.DlibFaceModels`` is the implementation on dlib; an ONNX pair (YuNet or SCRFD
with SFace or ArcFace) would be another, with its own landmarks, ``dim`` and ``match_distance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from isearchd.errors import BadImage
from isearchd.files.images import load_image
from isearchd.models.workers import PictureFile

Point = tuple[float, float]


@dataclass(frozen=True)
class DetectedFace:
    """One face found in a picture, in that picture's pixel coordinates (x to the right, y down)."""

    box: tuple[int, int, int, int]
    """left, top, width, height; within the picture."""
    landmarks: tuple[Point, ...]
    """The points the models align the face from (5 for dlib), in the order of the models that
    found them: only the same models' ``describe`` reads them."""
    score: float
    """The detector's confidence; each model has its own scale."""


class FaceModels(Protocol):
    """A detector with its landmark and descriptor models. Models are loaded on first use;
    ``close()`` releases them (the next call loads them again)."""

    @property
    def name(self) -> str:
        """What the models are (``dlib-hog-5pt-resnet``): stored with every face."""
        ...

    @property
    def version(self) -> int:
        """Bumped when the models or their use change descriptors: stored with every face."""
        ...

    @property
    def dim(self) -> int:
        """Length of a descriptor (128 for dlib)."""
        ...

    @property
    def match_distance(self) -> float:
        """Two descriptors closer than this (Euclidean, unit rows) are taken as one person."""
        ...

    def detect(self, picture: Image.Image) -> list[DetectedFace]:
        """The faces in ``picture`` (any Pillow mode), highest score first; [] when there is none."""
        ...

    def describe(self, picture: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        """float32 (len(faces), dim) descriptors of unit length, one row per face, in order.
        ``faces`` come from this object's ``detect`` on the same picture."""
        ...

    def close(self) -> None:
        """Release the loaded models (and their memory)."""
        ...


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` as float32 scaled to unit length (an all-zero row stays zero)."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: np.ndarray = rows / np.maximum(norms, np.float32(1e-12))
    return unit


FoundFace = tuple[DetectedFace, np.ndarray]
"""A face found in a picture and its descriptor (a float32 row of unit length)."""


@dataclass(frozen=True)
class FacesRead:
    """The faces of one picture, in the coordinates of the picture that was read (``size``)."""

    size: tuple[int, int]
    faces: list[FoundFace]


class FaceReader(Protocol):
    """Reads the faces of several pictures: where the face models run (in this process, or in
    worker processes: ``face_workers.FaceWorkers``). ``close()`` releases the models; the next
    ``read`` loads them again."""

    @property
    def version(self) -> int:
        """The models' version (``FaceModels.version``), stored with every face."""
        ...

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[FacesRead | str]:
        """For each picture (decoded, or a file to decode), in order: its faces with their
        descriptors (highest score first), or why it could not be read (one line). One picture's
        failure never affects the others'."""
        ...

    def close(self) -> None: ...


def read_faces(models: FaceModels, picture: Image.Image | PictureFile) -> FacesRead:
    """The faces of ``picture`` (decoding it first if it is a file) with their descriptors."""
    if isinstance(picture, PictureFile):
        picture = load_image(picture.path, min_side=picture.min_side, name=picture.path)
    found = models.detect(picture)
    return FacesRead(picture.size, list(zip(found, models.describe(picture, found), strict=True)))


def failure(error: Exception) -> str:
    """Why a picture could not be read, in one line."""
    if isinstance(error, BadImage):
        return error.reason
    return f"the face models could not read it: {error}"


# What a picture's decoding or the models may raise for that picture alone (dlib: RuntimeError).
PICTURE_ERRORS = (BadImage, OSError, ValueError, RuntimeError)


class ModelsReader:
    """A ``FaceReader`` that runs ``models`` in the calling thread, one picture after another."""

    def __init__(self, models: FaceModels) -> None:
        self.models = models

    @property
    def version(self) -> int:
        return self.models.version

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[FacesRead | str]:
        out: list[FacesRead | str] = []
        for picture in pictures:
            try:
                out.append(read_faces(self.models, picture))
            except PICTURE_ERRORS as e:
                out.append(failure(e))
        return out

    def close(self) -> None:
        self.models.close()
