"""The faces analysis: finds the faces in every photo, describes them, and groups them into people.

An ``Analysis`` (``isearchd.engine.analysis``): it runs on the analyses' background thread after
the image tower, never while a search computes or indexing has work, and reads the picture the
indexer decoded (no second decode) at ``FACES_SIDE``, or (for a photo the indexer left no
picture of) has the reader decode the file, in its worker processes. For each photo it stores
every face found (box and landmarks in the photo's pixels, detector score, descriptor, the
models' version); a photo that cannot be read is recorded with its reason. After each chunk is
saved, the faces that no person holds are grouped (``isearchd.engine.grouping``): a face joins
the person it is nearest to within ``max_distance``, and ``min_faces`` similar free faces form a
new person.

Databases keep people (in either store) only while people are on for them (``[people] enabled``,
``isearch people --disable``): ``applies`` says so, and the others are not read at all. A
database in Qdrant is read for faces by each daemon in its own photos; the people are shared.
The face models run where the reader puts them (the daemon's: ``FaceWorkers``, worker processes
on every core, below the daemon's priority); they are loaded on first use and released after
``MODELS_IDLE_S`` without work (they are held only while faces are being read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from isearchd.engine.analysis import Failed, Outcome, Photo
from isearchd.engine.grouping import plan_grouping
from isearchd.engine.idle import IdleRelease, ReaderLifecycle
from isearchd.models.faces import FaceReader, FacesRead, PictureFile
from isearchd.store import ImageDatabase
from isearchd.store.people import FaceRow
from isearchd.store.people_db import PeopleStore

log = logging.getLogger(__name__)

__all__ = ["FACES_SIDE", "FacesAnalysis", "GroupingRules"]

# The shorter side of the picture faces are read from. Detection runs on a further reduced grey
# copy (isearchd.models.dlib_faces); descriptors are computed on this picture, where a face that
# fills 1/20 of a 1080p photo's width is still ~80 px wide (dlib aligns faces to 150 px chips).
FACES_SIDE = 720
# Seconds without faces to read after which the face models are released (~100 MB).
MODELS_IDLE_S = 60.0


@dataclass(frozen=True)
class GroupingRules:
    max_distance: float
    min_faces: int


class FacesAnalysis(ReaderLifecycle):
    """See the module docstring. ``reader``: where the face models run (``ModelsReader``: in this
    thread; ``FaceWorkers``: in worker processes); loaded lazily, released when idle."""

    name: str = "faces"
    priority: int = 3
    side: int = FACES_SIDE
    # photos per step: ~1.3 s on two workers. The workers run in their own processes below the
    # daemon's priority, so a search does not wait for a step. Each step ends with a save and the
    # grouping, while the workers wait: 1,000 photos took 95.8 s in steps of 8 (16 min per 10,000;
    # bench_faces_library.py, AMD EPYC, 2 cores) and 91.8 s in steps of 16 (15.3 min); 32 gave
    # 91.3 s: the rest is the models' own CPU time (~180 core-ms a photo, decoding included).
    chunk: int = 16
    tables: tuple[str, ...] = ("faces", "people", "face_rejects", "merges")
    reads_new: bool = True
    decodes_files: bool = True  # in the reader's worker processes

    def __init__(
        self, reader: FaceReader, rules: GroupingRules, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reader = reader
        self.rules = rules
        self.version = reader.version
        self._idle = IdleRelease(reader.close, MODELS_IDLE_S, clock=clock)

    def applies(self, db: ImageDatabase) -> bool:
        return isinstance(db, PeopleStore) and db.people_enabled()

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        # the indexer's picture when it left one, else the file, decoded by the reader's workers
        pictures = [p.picture or PictureFile(p.file.path, self.side) for p in photos]
        found = self.reader.read(pictures)
        self._idle.used()
        return {
            photo.file.id: Failed(read) if isinstance(read, str) else read
            for photo, read in zip(photos, found, strict=True)
        }

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        if not isinstance(db, PeopleStore):  # (``applies`` keeps other stores out)
            return
        rows: dict[int, Sequence[FaceRow]] = {}
        failures: dict[int, str] = {}
        for image_id, outcome in outcomes.items():
            if isinstance(outcome, FacesRead):
                rows[image_id] = _in_photo_pixels(db, image_id, outcome)
            else:
                failures[image_id] = outcome.reason if isinstance(outcome, Failed) else "no result"
        db.store_faces(self.version, rows, failures)
        self.group(db)

    def group(self, db: PeopleStore) -> None:
        """Group the faces no person holds (runs on the write queue, as every write)."""
        given = db.grouping_input()
        if len(given.unassigned.ids) == 0:
            return
        plan = plan_grouping(
            (given.unassigned.ids, given.unassigned.descriptors),
            {p: (f.ids, f.descriptors) for p, f in given.people.items()},
            given.rejects,
            max_distance=self.rules.max_distance,
            min_faces=self.rules.min_faces,
        )
        if plan.joins or plan.new_people:
            applied = db.apply_grouping(plan.joins, plan.new_people, min_faces=self.rules.min_faces)
            log.info("people: %d faces joined people, %d new people", applied.joined, len(applied.new_people))



def _in_photo_pixels(db: ImageDatabase, image_id: int, found: FacesRead) -> tuple[FaceRow, ...]:
    """The faces found, with box and landmarks scaled from the picture that was read to the
    photo's own pixels (its stored width and height; as read when they are unknown)."""
    record = db.record_by_id(image_id)
    info = record.info if record is not None else None
    width, height = found.size
    sx = sy = 1.0
    if info is not None and info.width and info.height and width and height:
        sx, sy = info.width / width, info.height / height
    return tuple(
        FaceRow(
            box=(round(f.box[0] * sx), round(f.box[1] * sy), round(f.box[2] * sx), round(f.box[3] * sy)),
            landmarks=tuple((x * sx, y * sy) for x, y in f.landmarks),
            score=float(f.score),
            descriptor=descriptor,
        )
        for f, descriptor in found.faces
    )
