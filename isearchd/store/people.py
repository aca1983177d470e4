"""People in the embedded store: the faces found in photos, the persons they are grouped into, and
what the user said about them (migration ``m007_people``).

Tables
    faces(id, image_id, left, top, width, height, landmarks JSON [[x, y] x 5], score,
          descriptor BLOB (128 float32 LE), version, person_id, pinned)
        ``person_id`` NULL: no person yet. ``pinned`` 1: the user placed it (``remove_face``
        leaves it unassigned and pinned): grouping never moves a pinned face.
    people(id, name, hidden, created)
        ``name`` NULL for a person the user has not named; names are unique without regard to
        case (``COLLATE NOCASE`` for ASCII, ``name_key`` in Python for the rest of Unicode).
    face_rejects(face_id, person_id)
        "this face is not that person": grouping never puts the face into that person again.
    merges(id, op, into_id, from_id, from_name, from_hidden, from_created, face_ids JSON,
           from_rejects JSON, added_rejects JSON, created)
        one row per person merged away; the rows of one ``merge_people`` share ``op``. Enough to
        undo the merge exactly (``split_person``).

Rules
- Everything in ``faces`` is derived (the faces analysis rebuilds it), except ``person_id`` and
  ``pinned``; ``people``, ``face_rejects`` and ``merges`` are what the user said and are kept.
- Analysing a photo again replaces its faces but keeps each face that is found again (same box,
  IoU >= ``MATCH_IOU``) under its old id, with its person, pin and rejects: a re-analysis never
  loses a person, a name or a correction (``store_faces``).
- When an image is deleted or its content changes, its faces and their rejects are deleted (the
  triggers, as ``m006_analyses`` does for ``analyses``). Persons are never deleted that way: a
  person left without faces keeps its name (a correction the user made) and its rejects; with no
  face left, grouping cannot bring it faces, so ``people_list`` leaves it out unless asked
  (``include_empty``). Its name stays taken: naming another person so says which person has it,
  and merging the new person with it gives the new faces the old name (and id).
- ``people_enabled`` (``meta.people_enabled``, '1' or '0', on when absent) says whether the
  daemon looks for faces in this database; turning it off keeps what is stored
  (``forget_people`` deletes it).

The functions take a ``sqlite3.Connection``: the writer's inside ``Catalog.transaction()`` for
writes, a reader's for reads (``people_reads.py``, ``people_edits.py``; the ``Database`` methods
are in ``people_db.py``).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from isearchd.errors import NotFound

__all__ = [
    "DESCRIPTOR_DIM",
    "FACES_ANALYSIS",
    "Applied",
    "Box",
    "FaceRow",
    "apply_grouping",
    "create_people_tables",
    "forget_people",
    "m007_people",
    "match_boxes",
    "people_enabled",
    "set_people_enabled",
    "store_faces",
]

# The analysis that writes ``faces`` (its rows in ``analyses``; ``forget_people`` clears them).
FACES_ANALYSIS = "faces"
DESCRIPTOR_DIM = 128
LANDMARKS = 5
# A face found again in a re-analysed photo is the old face when their boxes overlap this much
# (intersection over union): a detector's boxes for one face differ by a few pixels between
# versions (IoU ~0.8-0.95), two different faces in one photo rarely overlap by a third.
MATCH_IOU = 0.5
ENABLED_KEY = "people_enabled"
_CHUNK = 500

Box = tuple[int, int, int, int]  # left, top, width, height, in pixels of the photo as shown


@dataclass(frozen=True)
class FaceRow:
    """A face as the faces analysis found it: box, five landmarks ((x, y), in pixels), the
    detector's score and the 128-d descriptor (float32)."""

    box: Box
    landmarks: tuple[tuple[float, float], ...]
    score: float
    descriptor: np.ndarray

    def __post_init__(self) -> None:
        if len(self.box) != 4 or self.box[2] < 0 or self.box[3] < 0:
            raise ValueError(f"a face box is (left, top, width, height), got {self.box}")
        if len(self.landmarks) != LANDMARKS or any(len(p) != 2 for p in self.landmarks):
            raise ValueError(f"a face has {LANDMARKS} (x, y) landmarks, got {self.landmarks}")
        if np.shape(self.descriptor) != (DESCRIPTOR_DIM,):
            raise ValueError(
                f"a face descriptor has {DESCRIPTOR_DIM} values, got shape {np.shape(self.descriptor)}"
            )
        if not math.isfinite(self.score):
            raise ValueError(f"a face score must be a number, got {self.score}")


@dataclass(frozen=True)
class Applied:
    """What ``apply_grouping`` did: faces that joined a person, and the persons it created."""

    joined: int
    new_people: list[int]


def m007_people(db: sqlite_utils.Database) -> None:
    # Why: people search needs the faces found in each photo, the persons they are grouped into
    # and what the user said (names, merges, "not this person"), which must outlive re-analysis;
    # an image deleted or changed must lose its faces, on every write path.
    create_people_tables(db)
    db.execute(
        """CREATE TRIGGER faces_image_deleted AFTER DELETE ON images
           BEGIN DELETE FROM faces WHERE image_id = old.id; END"""
    )
    db.execute(
        """CREATE TRIGGER faces_image_changed AFTER UPDATE OF content_hash ON images
           WHEN old.content_hash IS NOT new.content_hash
           BEGIN DELETE FROM faces WHERE image_id = new.id; END"""
    )
    db.execute(
        """CREATE TRIGGER face_rejects_face_deleted AFTER DELETE ON faces
           BEGIN DELETE FROM face_rejects WHERE face_id = old.id; END"""
    )


def create_people_tables(db: sqlite_utils.Database) -> None:
    """m007's tables (part of the migration: never edited once released; the Qdrant store builds
    the same tables in memory, ``isearchd.store.qdrant_people_rows``)."""
    db.execute(
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            hidden INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE UNIQUE INDEX people_name ON people(name COLLATE NOCASE)")
    db.execute(
        """CREATE TABLE faces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL,
            left INTEGER, top INTEGER, width INTEGER, height INTEGER,
            landmarks TEXT NOT NULL,
            score REAL NOT NULL,
            descriptor BLOB NOT NULL,
            version INTEGER NOT NULL,
            person_id INTEGER,
            pinned INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute("CREATE INDEX faces_image ON faces(image_id)")
    db.execute("CREATE INDEX faces_person ON faces(person_id)")
    db.execute(
        """CREATE TABLE face_rejects (
            face_id INTEGER NOT NULL,
            person_id INTEGER NOT NULL,
            PRIMARY KEY (face_id, person_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX face_rejects_person ON face_rejects(person_id)")
    db.execute(
        """CREATE TABLE merges (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            op INTEGER NOT NULL,
            into_id INTEGER NOT NULL,
            from_id INTEGER NOT NULL,
            from_name TEXT,
            from_hidden INTEGER,
            from_created REAL,
            face_ids TEXT NOT NULL,
            from_rejects TEXT NOT NULL DEFAULT '[]',
            added_rejects TEXT NOT NULL DEFAULT '[]',
            created REAL
        )"""
    )
    db.execute("CREATE INDEX merges_into ON merges(into_id, op)")


# -- shared helpers ------------------------------------------------------------------------------


def descriptor_blob(descriptor: np.ndarray) -> bytes:
    return np.ascontiguousarray(descriptor, dtype="<f4").tobytes()


def marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def chunks(items: Sequence[int]) -> list[list[int]]:
    return [list(items[k : k + _CHUNK]) for k in range(0, len(items), _CHUNK)]


def require_person(conn: sqlite3.Connection, person_id: int) -> tuple[str | None, int, float]:
    """``(name, hidden, created)`` of a person, or NotFound (naming where a merged one went)."""
    row = conn.execute("SELECT name, hidden, created FROM people WHERE id = ?", [person_id]).fetchone()
    if row is not None:
        return row[0], int(row[1]), float(row[2])
    into = conn.execute(
        "SELECT into_id FROM merges WHERE from_id = ? ORDER BY id DESC LIMIT 1", [person_id]
    ).fetchone()
    if into is not None:
        raise NotFound(f"person {person_id} was merged into person {into[0]}")
    raise NotFound(f"there is no person {person_id}; list the people to see their numbers")


# -- faces found by the analysis -----------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_boxes(old: Sequence[tuple[int, Box]], new: Sequence[Box]) -> dict[int, int]:
    """Which new face (by index) is which old face (by id): pairs with IoU >= ``MATCH_IOU``,
    best overlap first (ties: lower old id, then lower index), each face matched at most once."""
    pairs = sorted(
        (-overlap, face_id, k)
        for face_id, box in old
        for k, candidate in enumerate(new)
        if (overlap := iou(box, candidate)) >= MATCH_IOU
    )
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _, face_id, k in pairs:
        if k not in matched and face_id not in used:
            matched[k] = face_id
            used.add(face_id)
    return matched


def store_faces(conn: sqlite3.Connection, version: int, rows: Mapping[int, Sequence[FaceRow]]) -> None:
    """The faces version ``version`` of the analysis found in each image (by id), replacing what
    was stored for those images; a face found again keeps its id, person, pin and rejects
    (``match_boxes``). Images no longer in the catalog are left out."""
    ids = sorted(rows)
    present: set[int] = set()
    for chunk in chunks(ids):
        sql = f"SELECT id FROM images WHERE id IN ({marks(chunk)})"  # noqa: S608 - placeholders only
        present.update(r[0] for r in conn.execute(sql, chunk))
    for image_id in ids:
        if image_id in present:
            _replace_faces(conn, image_id, version, rows[image_id])


def _replace_faces(conn: sqlite3.Connection, image_id: int, version: int, faces: Sequence[FaceRow]) -> None:
    old = conn.execute(
        "SELECT id, left, top, width, height FROM faces WHERE image_id = ? ORDER BY id", [image_id]
    ).fetchall()
    same = match_boxes([(r[0], (r[1], r[2], r[3], r[4])) for r in old], [f.box for f in faces])
    kept = set(same.values())
    conn.executemany("DELETE FROM faces WHERE id = ?", [(r[0],) for r in old if r[0] not in kept])
    for k, face in enumerate(faces):
        values = (
            *(int(x) for x in face.box),
            json.dumps([[float(x), float(y)] for x, y in face.landmarks]),
            float(face.score),
            descriptor_blob(face.descriptor),
            version,
        )
        if k in same:
            conn.execute(
                """UPDATE faces SET left = ?, top = ?, width = ?, height = ?, landmarks = ?, score = ?,
                   descriptor = ?, version = ? WHERE id = ?""",
                [*values, same[k]],
            )
        else:
            conn.execute(
                """INSERT INTO faces(image_id, left, top, width, height, landmarks, score, descriptor,
                   version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [image_id, *values],
            )


# -- grouping's plan -----------------------------------------------------------------------------

_FREE = "person_id IS NULL AND pinned = 0"


def apply_grouping(
    conn: sqlite3.Connection,
    joins: Mapping[int, int],
    new_people: Sequence[Sequence[int]],
    *,
    created: float,
    min_faces: int = 1,
) -> Applied:
    """Carry out grouping's plan (``isearchd.engine.grouping``), checking each move against what
    changed since its input was read: a face joins a person only if it still exists, is still
    free (no person, not pinned), the person still exists and the face is not rejected from it;
    a new person is made of the faces of its group still free, if at least ``min_faces``."""
    joined = 0
    for face_id, person_id in sorted(joins.items()):
        cur = conn.execute(
            f"""UPDATE faces SET person_id = ? WHERE id = ? AND {_FREE}
                AND EXISTS (SELECT 1 FROM people WHERE id = ?)
                AND NOT EXISTS (SELECT 1 FROM face_rejects r WHERE r.face_id = ? AND r.person_id = ?)""",  # noqa: S608
            [person_id, face_id, person_id, face_id, person_id],
        )
        joined += cur.rowcount
    made: list[int] = []
    for group in new_people:
        free = [
            f for f in sorted(set(group))
            if conn.execute(f"SELECT 1 FROM faces WHERE id = ? AND {_FREE}", [f]).fetchone()  # noqa: S608
        ]  # fmt: skip
        if not free or len(free) < min_faces:
            continue
        cur = conn.execute("INSERT INTO people(name, hidden, created) VALUES (NULL, 0, ?)", [created])
        person_id = int(cur.lastrowid or 0)
        conn.executemany("UPDATE faces SET person_id = ? WHERE id = ?", [(person_id, f) for f in free])
        made.append(person_id)
    return Applied(joined, made)


# -- the database's switch, and forgetting -------------------------------------------------------


def people_enabled(conn: sqlite3.Connection) -> bool:
    """Whether faces are looked for in this database (on unless turned off)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [ENABLED_KEY]).fetchone()
    return row is None or str(row[0]) != "0"


def set_people_enabled(conn: sqlite3.Connection, enabled: bool) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [ENABLED_KEY, "1" if enabled else "0"],
    )


def forget_people(conn: sqlite3.Connection) -> None:
    """Delete every face, person, reject and merge, and the faces analysis's record of which
    photos it read (so they are read again if people are turned back on). The switch stays."""
    for table in ("face_rejects", "merges", "faces", "people"):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    conn.execute("DELETE FROM analyses WHERE analysis = ?", [FACES_ANALYSIS])
