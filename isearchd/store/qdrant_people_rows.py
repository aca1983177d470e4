"""People in a Qdrant store, row by row: the in-memory SQLite that holds a database's people while
one operation runs on it (the embedded store's own tables, ``people.create_people_tables``), and
how its rows are written as Qdrant points and read back. No requests here
(``qdrant_people_sync`` does them).

Points (ids: ``uuid5`` of kind, database and row id, so each row has one point and a row id one
owner):

``<prefix>.faces``, one point per face; its vector is the 128-d descriptor (Euclidean, never
normalised: what grouping reads back is what the analysis wrote):

=============  ===========================================================================
db, fid, iid   the database, the face id, the image id (``iid`` of the image's point)
host, hash     the image's machine and its content hash when the face was found: a face whose
               image is gone or holds another picture is stale (left out, then deleted)
box            left, top, width, height in the photo's pixels
landmarks      five [x, y]; ``score``, ``version`` as the embedded ``faces`` table
person, pinned the person (null: none) and whether the user placed it (``remove_face``)
rejects        the persons this face is not (the embedded ``face_rejects``: they go with the face)
=============  ===========================================================================

``<prefix>.people``, points without vectors, ``kind``:

- ``person``: db, id, name, hidden, created;
- ``merge``: db, id and the columns of the embedded ``merges`` table (enough to undo a merge);
- ``switch``: db, enabled (whether faces are looked for; absent: on);
- ``seq``: db, table, last: the highest id ever handed out for ``faces``, ``people`` or
  ``merges`` (SQLite's ``AUTOINCREMENT`` high-water mark: ids are never reused, even after a
  delete, so a merge's record of face ids never points at another face).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from isearchd.files.names import to_db
from isearchd.messages import JsonObject
from isearchd.store.people import DESCRIPTOR_DIM, create_people_tables
from isearchd.store.qdrant_payload import POINT_NAMESPACE, NewPayload

__all__ = [
    "SEQUENCED",
    "ImageRow",
    "Rows",
    "face_image",
    "face_payload",
    "face_row",
    "mirror",
    "person_payload",
    "point_uuid",
    "row_values",
    "table_rows",
]

SEQUENCED = ("faces", "people", "merges")  # tables whose new rows take the next id
_FACE_COLUMNS = ("image_id", "left", "top", "width", "height", "landmarks", "score", "descriptor",
                 "version", "person_id", "pinned")  # fmt: skip
_PERSON_COLUMNS = ("name", "hidden", "created")
MERGE_COLUMNS = ("op", "into_id", "from_id", "from_name", "from_hidden", "from_created", "face_ids",
                 "from_rejects", "added_rejects", "created")  # fmt: skip
_COLUMNS = {"faces": _FACE_COLUMNS, "people": _PERSON_COLUMNS, "merges": MERGE_COLUMNS}
# A face loaded without its descriptor (an operation that does not read them): never written back
# as a vector.
NO_DESCRIPTOR = b""

# table -> row id -> its values (faces: and the sorted person ids it is rejected from, last)
Rows = dict[str, dict[int, tuple[object, ...]]]


@dataclass(frozen=True)
class ImageRow:
    """What people's queries join from an image: its path, date taken, content and machine."""

    id: int
    path: str
    taken_local: str | None
    hash: str
    host: str


def point_uuid(kind: str, db: str, key: object) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"{kind}\0{db}\0{key}"))


def mirror(images: list[ImageRow]) -> sqlite3.Connection:
    """An in-memory SQLite with the embedded store's people tables and the image rows they join."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.execute(
        """CREATE TABLE images (id INTEGER PRIMARY KEY, path BLOB NOT NULL, taken_local TEXT,
           content_hash TEXT, host TEXT)"""
    )
    create_people_tables(db)
    conn.executemany(
        "INSERT INTO images(id, path, taken_local, content_hash, host) VALUES (?, ?, ?, ?, ?)",
        [(i.id, to_db(i.path), i.taken_local, i.hash, i.host) for i in images],
    )
    return conn


def insert_rows(conn: sqlite3.Connection, table: str, rows: dict[int, tuple[object, ...]]) -> None:
    """Rows as ``table_rows`` gives them (faces: their rejects too)."""
    cols = _COLUMNS[table]
    sql = f"INSERT INTO {table}(id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})"  # noqa: S608
    conn.executemany(sql, [(i, *v[: len(cols)]) for i, v in rows.items()])
    if table == "faces":
        conn.executemany(
            "INSERT INTO face_rejects(face_id, person_id) VALUES (?, ?)",
            [(i, p) for i, v in rows.items() for p in rejects_of(v)],
        )


def set_sequences(conn: sqlite3.Connection, last: dict[str, int]) -> None:
    """New rows of each table take ids above ``last`` (and above every loaded row)."""
    for table in SEQUENCED:
        top = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]  # noqa: S608
        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", [table])
        conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", [table, max(top, last[table])])


def table_rows(conn: sqlite3.Connection) -> Rows:
    """Every row of the people tables, to compare before and after an operation."""
    rejects: dict[int, list[int]] = {}
    for face_id, person_id in conn.execute("SELECT face_id, person_id FROM face_rejects ORDER BY 1, 2"):
        rejects.setdefault(face_id, []).append(person_id)
    out: Rows = {}
    for table, cols in _COLUMNS.items():
        found = conn.execute(f"SELECT id, {', '.join(cols)} FROM {table}")  # noqa: S608
        out[table] = {r[0]: tuple(r[1:]) for r in found}
    out["faces"] = {i: (*v, tuple(rejects.get(i, ()))) for i, v in out["faces"].items()}
    return out


def row_values(table: str, values: tuple[object, ...]) -> dict[str, object]:
    return dict(zip(_COLUMNS[table], values, strict=False))


# -- faces ---------------------------------------------------------------------------------------


def face_image(values: tuple[object, ...]) -> int:
    """The image id of a face's row."""
    image_id = values[0]
    if not isinstance(image_id, int):
        raise TypeError(f"a face's image id is an integer, got {image_id!r}")
    return image_id


def rejects_of(values: tuple[object, ...]) -> tuple[int, ...]:
    """The persons a face's row is rejected from (the last item of ``table_rows``' face rows)."""
    rejects = values[-1]
    return tuple(int(p) for p in rejects) if isinstance(rejects, tuple) else ()


def face_row(payload: JsonObject, vector: object) -> tuple[object, ...]:
    """A face point as a ``faces`` row (and its rejects, last); ``vector`` None: not loaded."""
    box = payload["box"]
    descriptor = NO_DESCRIPTOR
    if isinstance(vector, list):
        descriptor = np.asarray(vector, dtype="<f4").reshape(DESCRIPTOR_DIM).tobytes()
    return (
        int(payload["iid"]), *(int(x) for x in box), json.dumps(payload["landmarks"]),
        float(payload["score"]), descriptor, int(payload["version"]), payload.get("person"),
        int(bool(payload.get("pinned"))), tuple(sorted(int(p) for p in payload.get("rejects") or ())),
    )  # fmt: skip


def face_payload(db: str, face_id: int, values: tuple[object, ...], image: ImageRow) -> NewPayload:
    row = row_values("faces", values)
    return {
        "db": db,
        "fid": face_id,
        "iid": row["image_id"],
        "host": image.host,
        "hash": image.hash,
        "box": [row["left"], row["top"], row["width"], row["height"]],
        "landmarks": json.loads(str(row["landmarks"])),
        "score": row["score"],
        "version": row["version"],
        "person": row["person_id"],
        "pinned": bool(row["pinned"]),
        "rejects": list(rejects_of(values)),
    }


def face_vector(values: tuple[object, ...]) -> list[float] | None:
    blob = row_values("faces", values)["descriptor"]
    if not isinstance(blob, bytes) or blob == NO_DESCRIPTOR:
        return None
    return [float(x) for x in np.frombuffer(blob, dtype="<f4")]


# -- persons and merges --------------------------------------------------------------------------


def person_payload(db: str, person_id: int, values: tuple[object, ...]) -> NewPayload:
    return {"kind": "person", "db": db, "id": person_id, **row_values("people", values)}


def merge_payload(db: str, merge_id: int, values: tuple[object, ...]) -> NewPayload:
    return {"kind": "merge", "db": db, "id": merge_id, **row_values("merges", values)}


def stored_row(table: str, payload: JsonObject) -> tuple[object, ...]:
    """A person's or a merge's point as its row."""
    return tuple(payload.get(c) for c in _COLUMNS[table])
