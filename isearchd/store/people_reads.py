"""What the embedded store answers about people (tables: ``people.py``): the input of grouping,
the list of persons, a person's photos, who is in which photo, and the photos a group of named
people share. Every function takes a reader connection.

Names match without regard to case (``name_key``: Unicode case folding, NFC), as the user types
them; they are shown as the user wrote them.
"""

from __future__ import annotations

import difflib
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from isearchd.errors import InvalidRequest, NotFound
from isearchd.files.names import from_db
from isearchd.store.people import DESCRIPTOR_DIM, Box, chunks, marks, require_person

__all__ = [
    "Face",
    "FaceCrop",
    "FaceVectors",
    "GroupingInput",
    "PeopleCounts",
    "PersonPhoto",
    "PersonSummary",
    "face_crop_box",
    "face_rejects",
    "faces_in_image",
    "faces_of_people",
    "grouping_input",
    "image_ids_with_people",
    "name_key",
    "people_counts",
    "people_in_images",
    "people_list",
    "person_photos",
    "unassigned_faces",
]

# How many existing names a "no person is named ..." error offers.
_CLOSE_NAMES = 3


@dataclass(frozen=True)
class Face:
    """A stored face: its image, box, detector score, person (None: none) and pin."""

    id: int
    image_id: int
    box: Box
    score: float
    person_id: int | None
    pinned: bool


class FaceVectors(NamedTuple):
    """Faces by id (int64, ascending) and their descriptors (float32 rows): what grouping reads."""

    ids: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True)
class GroupingInput:
    """Grouping's input (``isearchd.engine.grouping.plan_grouping``): the free faces (no person,
    not pinned), every person's faces, and the rejects (face id -> persons it is not)."""

    unassigned: FaceVectors
    people: dict[int, FaceVectors]
    rejects: dict[int, frozenset[int]]


@dataclass(frozen=True)
class PersonSummary:
    """A person as the list shows it: ``photos`` is how many photos it is in; the sample is its
    best face (highest detector score, then largest) and that face's photo."""

    id: int
    name: str | None
    photos: int
    sample_face_id: int | None
    sample_path: str | None
    hidden: bool


@dataclass(frozen=True)
class PersonPhoto:
    """A photo a person is in, with that person's (best) face in it: its box and id."""

    image_id: int
    path: str
    box: Box
    face_id: int


@dataclass(frozen=True)
class FaceCrop:
    """Where a face is: its photo (id and path on this machine), its box and its person (None:
    nobody yet)."""

    face_id: int
    image_id: int
    path: str
    box: Box
    person_id: int | None = None


@dataclass(frozen=True)
class PeopleCounts:
    """Progress of people: faces stored, faces in no person, persons, named persons."""

    faces: int
    unassigned: int
    people: int
    named: int


def name_key(name: str) -> str:
    """How names compare: case-folded, NFC, without surrounding blanks."""
    return unicodedata.normalize("NFC", name.strip().casefold())


# -- grouping's input ----------------------------------------------------------------------------


def _vectors(rows: list[tuple[int, bytes]]) -> FaceVectors:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    blob = b"".join(r[1] for r in rows)
    matrix = np.frombuffer(blob, dtype="<f4").reshape(len(rows), DESCRIPTOR_DIM).astype(np.float32)
    return FaceVectors(ids, matrix)


def unassigned_faces(conn: sqlite3.Connection) -> FaceVectors:
    """The faces grouping may place: in no person and not pinned."""
    sql = "SELECT id, descriptor FROM faces WHERE person_id IS NULL AND pinned = 0 ORDER BY id"
    return _vectors(conn.execute(sql).fetchall())


def faces_of_people(conn: sqlite3.Connection) -> dict[int, FaceVectors]:
    """Every person's faces (persons without faces are left out)."""
    rows = conn.execute(
        "SELECT person_id, id, descriptor FROM faces WHERE person_id IS NOT NULL ORDER BY person_id, id"
    ).fetchall()
    grouped: dict[int, list[tuple[int, bytes]]] = {}
    for person_id, face_id, blob in rows:
        grouped.setdefault(person_id, []).append((face_id, blob))
    return {p: _vectors(faces) for p, faces in grouped.items()}


def face_rejects(conn: sqlite3.Connection) -> dict[int, frozenset[int]]:
    found: dict[int, set[int]] = {}
    for face_id, person_id in conn.execute("SELECT face_id, person_id FROM face_rejects"):
        found.setdefault(face_id, set()).add(person_id)
    return {f: frozenset(p) for f, p in found.items()}


def grouping_input(conn: sqlite3.Connection) -> GroupingInput:
    return GroupingInput(unassigned_faces(conn), faces_of_people(conn), face_rejects(conn))


# -- faces ---------------------------------------------------------------------------------------


def faces_in_image(conn: sqlite3.Connection, image_id: int) -> list[Face]:
    rows = conn.execute(
        """SELECT id, image_id, left, top, width, height, score, person_id, pinned FROM faces
           WHERE image_id = ? ORDER BY id""",
        [image_id],
    )
    return [Face(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], bool(r[8])) for r in rows]


def face_crop_box(conn: sqlite3.Connection, face_id: int) -> FaceCrop:
    """Where face ``face_id`` is, to cut its thumbnail; NotFound when it is gone."""
    row = conn.execute(
        """SELECT f.image_id, i.path, f.left, f.top, f.width, f.height, f.person_id
           FROM faces f JOIN images i ON i.id = f.image_id WHERE f.id = ?""",
        [face_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"there is no face {face_id} (its photo may have been removed or changed)")
    return FaceCrop(face_id, row[0], from_db(row[1]), (row[2], row[3], row[4], row[5]), row[6])


def people_counts(conn: sqlite3.Connection) -> PeopleCounts:
    faces, unassigned = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE person_id IS NULL) FROM faces"
    ).fetchone()
    people, named = conn.execute("SELECT count(*), count(name) FROM people").fetchone()
    return PeopleCounts(int(faces), int(unassigned), int(people), int(named))


# -- persons -------------------------------------------------------------------------------------


def people_list(
    conn: sqlite3.Connection, include_hidden: bool = False, *, include_empty: bool = False
) -> list[PersonSummary]:
    """The persons: named ones first, by name; then the others, in most photos first, then by
    id. Hidden persons only with ``include_hidden``; persons left without faces (their photos
    were deleted) only with ``include_empty``."""
    rows = conn.execute(
        """WITH per AS (
               SELECT person_id, count(DISTINCT image_id) AS photos FROM faces
               WHERE person_id IS NOT NULL GROUP BY person_id
           ), best AS (
               SELECT person_id, id AS face_id, image_id, ROW_NUMBER() OVER (
                   PARTITION BY person_id ORDER BY score DESC, width * height DESC, id) AS rank
               FROM faces WHERE person_id IS NOT NULL
           )
           SELECT p.id, p.name, coalesce(per.photos, 0), best.face_id, i.path, p.hidden
           FROM people p
           LEFT JOIN per ON per.person_id = p.id
           LEFT JOIN best ON best.person_id = p.id AND best.rank = 1
           LEFT JOIN images i ON i.id = best.image_id
           WHERE (? OR p.hidden = 0) AND (? OR per.photos > 0)""",
        [include_hidden, include_empty],
    ).fetchall()
    found = [
        PersonSummary(r[0], r[1], r[2], r[3], None if r[4] is None else from_db(r[4]), bool(r[5]))
        for r in rows
    ]
    named = sorted((p for p in found if p.name is not None), key=lambda p: (name_key(p.name or ""), p.id))
    others = sorted((p for p in found if p.name is None), key=lambda p: (-p.photos, p.id))
    return named + others


def person_photos(conn: sqlite3.Connection, person_id: int) -> list[PersonPhoto]:
    """The photos person ``person_id`` is in, newest first: by the date the photo was taken
    (``taken_local``), then photos without one, newest added first (highest id)."""
    require_person(conn, person_id)
    rows = conn.execute(
        """SELECT f.image_id, i.path, f.left, f.top, f.width, f.height, f.id
           FROM faces f JOIN images i ON i.id = f.image_id WHERE f.person_id = ?
           ORDER BY i.taken_local IS NULL, i.taken_local DESC, f.image_id DESC, f.score DESC, f.id""",
        [person_id],
    )
    photos: dict[int, PersonPhoto] = {}
    for image_id, path, left, top, width, height, face_id in rows:
        if image_id not in photos:  # the first row of an image is the person's best face in it
            photos[image_id] = PersonPhoto(image_id, from_db(path), (left, top, width, height), face_id)
    return list(photos.values())


def people_in_images(conn: sqlite3.Connection, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """The names of the named, not hidden persons in each image, sorted; images with none are
    left out."""
    found: dict[int, set[str]] = {}
    for chunk in chunks(list(image_ids)):
        sql = f"""SELECT DISTINCT f.image_id, p.name FROM faces f JOIN people p ON p.id = f.person_id
                  WHERE f.image_id IN ({marks(chunk)}) AND p.name IS NOT NULL AND p.hidden = 0"""  # noqa: S608
        for image_id, name in conn.execute(sql, chunk):
            found.setdefault(image_id, set()).add(name)
    return {i: sorted(names, key=name_key) for i, names in found.items()}


def image_ids_with_people(conn: sqlite3.Connection, names: Sequence[str]) -> set[int]:
    """The images in which every person named in ``names`` appears (names in any case; hidden
    persons too, since they are asked for by name). A name no person has raises NotFound,
    offering the closest names."""
    if not any(n.strip() for n in names):
        raise InvalidRequest("name at least one person")
    persons = {
        name_key(n): (p, n) for p, n in conn.execute("SELECT id, name FROM people WHERE name IS NOT NULL")
    }
    wanted: list[int] = []
    for name in names:
        if not name.strip():
            continue
        if name_key(name) not in persons:
            raise _unknown_name(name, [n for _, n in persons.values()])
        if persons[name_key(name)][0] not in wanted:
            wanted.append(persons[name_key(name)][0])
    common: set[int] | None = None
    for person_id in wanted:
        sql = "SELECT DISTINCT image_id FROM faces WHERE person_id = ?"
        images = {r[0] for r in conn.execute(sql, [person_id])}
        common = images if common is None else common & images
    return common or set()


def _unknown_name(name: str, known: list[str]) -> NotFound:
    keys = {name_key(k): k for k in known}
    close = [keys[k] for k in difflib.get_close_matches(name_key(name), list(keys), n=_CLOSE_NAMES)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    if not known:
        hint = "; no person has a name yet"
    return NotFound(f"no person is named {name.strip()!r}{hint}")
