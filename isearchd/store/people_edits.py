"""What the user says about people (tables: ``people.py``): names, merges and their undoing, "this
face is not that person", hiding. Every function takes the writer's connection inside one
``Catalog.transaction()``; an unknown person raises NotFound, a request that cannot be carried out
InvalidRequest, each with a one-line message.

Merging keeps enough in ``merges`` to undo it exactly: ``split_person`` restores the persons the
last merge into a person took away (same ids, names, hidden flags, creation times), gives them
back those of their faces the merged person still holds, and moves the rejects back.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Sequence

from isearchd.errors import InvalidRequest, NotFound
from isearchd.store.people import marks, require_person
from isearchd.store.people_reads import name_key

__all__ = [
    "NAME_MAX_CHARS",
    "clean_name",
    "hide_person",
    "merge_people",
    "name_person",
    "remove_face",
    "split_person",
]

NAME_MAX_CHARS = 100


def clean_name(name: str | None) -> str | None:
    """A person's name as stored: without surrounding blanks; None or blank: no name."""
    if name is None or not name.strip():
        return None
    name = name.strip()
    if len(name) > NAME_MAX_CHARS:
        raise InvalidRequest(f"a person's name is at most {NAME_MAX_CHARS} characters, got {len(name)}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InvalidRequest(f"a person's name cannot contain control or invisible characters: {name!r}")
    return name


def name_person(conn: sqlite3.Connection, person_id: int, name: str | None) -> None:
    """Name (or, with None or a blank, unname) a person. A name another person has, in any case,
    is refused: the two are merged instead."""
    require_person(conn, person_id)
    clean = clean_name(name)
    if clean is not None:
        others = conn.execute("SELECT id, name FROM people WHERE name IS NOT NULL AND id != ?", [person_id])
        for other_id, other in others:
            if name_key(other) == name_key(clean):
                empty = conn.execute("SELECT 1 FROM faces WHERE person_id = ? LIMIT 1", [other_id]).fetchone()
                left = " (no photos left)" if empty is None else ""
                raise InvalidRequest(
                    f"person {other_id} is already named {other!r}{left}; "
                    f"to give person {person_id} that name, merge it with person {other_id}"
                )
    conn.execute("UPDATE people SET name = ? WHERE id = ?", [clean, person_id])


def hide_person(conn: sqlite3.Connection, person_id: int, hidden: bool = True) -> None:
    """Hide a person from the list and from the names shown on photos (or show it again)."""
    require_person(conn, person_id)
    conn.execute("UPDATE people SET hidden = ? WHERE id = ?", [int(hidden), person_id])


def merge_people(conn: sqlite3.Connection, ids: Sequence[int], *, created: float) -> int:
    """Merge persons into one: into the only named one, else the lowest id. Persons with two
    different names are refused. Returns the id of the merged person."""
    wanted = sorted(set(ids))
    if len(wanted) < 2:
        raise InvalidRequest("name at least two different persons to merge")
    rows = {p: require_person(conn, p) for p in wanted}
    named = [p for p in wanted if rows[p][0] is not None]
    if len(named) > 1:
        shown = ", ".join(f"person {p} is {rows[p][0]!r}" for p in named)
        raise InvalidRequest(f"cannot merge persons with different names ({shown}); unname all but one first")
    into = named[0] if named else wanted[0]
    op = int(conn.execute("SELECT coalesce(max(op), 0) + 1 FROM merges").fetchone()[0])
    into_rejects = _rejects(conn, into)
    for gone in (p for p in wanted if p != into):
        name, hidden, born = rows[gone]
        faces = [r[0] for r in conn.execute("SELECT id FROM faces WHERE person_id = ? ORDER BY id", [gone])]
        rejects = _rejects(conn, gone)
        added = sorted(set(rejects) - set(into_rejects))
        conn.execute(
            """INSERT INTO merges(op, into_id, from_id, from_name, from_hidden, from_created, face_ids,
               from_rejects, added_rejects, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                op,
                into,
                gone,
                name,
                hidden,
                born,
                json.dumps(faces),
                json.dumps(rejects),
                json.dumps(added),
                created,
            ],
        )
        conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", [into, gone])
        conn.executemany(
            "INSERT INTO face_rejects(face_id, person_id) VALUES (?, ?)", [(f, into) for f in added]
        )
        conn.execute("DELETE FROM face_rejects WHERE person_id = ?", [gone])
        conn.execute("DELETE FROM people WHERE id = ?", [gone])
        into_rejects = sorted(set(into_rejects) | set(added))
    return into


def _rejects(conn: sqlite3.Connection, person_id: int) -> list[int]:
    sql = "SELECT face_id FROM face_rejects WHERE person_id = ? ORDER BY face_id"
    return [r[0] for r in conn.execute(sql, [person_id])]


def split_person(conn: sqlite3.Connection, person_id: int) -> list[int]:
    """Undo the last merge into ``person_id``: the persons it took away come back with their
    ids, names and hidden flags, their faces that ``person_id`` still holds, and their rejects.
    Returns their ids. InvalidRequest when no merge made this person."""
    require_person(conn, person_id)
    last = conn.execute("SELECT max(op) FROM merges WHERE into_id = ?", [person_id]).fetchone()[0]
    if last is None:
        raise InvalidRequest(f"person {person_id} was not made by a merge: there is nothing to split")
    rows = conn.execute(
        """SELECT from_id, from_name, from_hidden, from_created, face_ids, from_rejects, added_rejects
           FROM merges WHERE op = ? AND into_id = ? ORDER BY id""",
        [last, person_id],
    ).fetchall()
    for gone, name, hidden, born, faces, rejects, added in rows:
        conn.execute(
            "INSERT INTO people(id, name, hidden, created) VALUES (?, ?, ?, ?)",
            [gone, name, hidden or 0, born if born is not None else 0.0],
        )
        back = json.loads(faces)
        for start in range(0, len(back), 500):
            chunk = back[start : start + 500]
            sql = f"UPDATE faces SET person_id = ? WHERE person_id = ? AND id IN ({marks(chunk)})"  # noqa: S608
            conn.execute(sql, [gone, person_id, *chunk])
        conn.executemany(
            "DELETE FROM face_rejects WHERE face_id = ? AND person_id = ?",
            [(f, person_id) for f in json.loads(added)],
        )
        conn.executemany(
            """INSERT OR IGNORE INTO face_rejects(face_id, person_id)
               SELECT id, ? FROM faces WHERE id = ?""",
            [(gone, f) for f in json.loads(rejects)],
        )
    conn.execute("DELETE FROM merges WHERE op = ? AND into_id = ?", [last, person_id])
    return [r[0] for r in rows]


def remove_face(conn: sqlite3.Connection, person_id: int, image_id: int) -> int:
    """The person's face(s) in one image are not that person: they leave it, stay out of every
    person (pinned) and are rejected from this one for good. Returns how many faces left;
    NotFound when the person is not in that image."""
    require_person(conn, person_id)
    faces = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM faces WHERE person_id = ? AND image_id = ?", [person_id, image_id]
        )
    ]
    if not faces:
        raise NotFound(f"person {person_id} is not in image {image_id}")
    conn.executemany("UPDATE faces SET person_id = NULL, pinned = 1 WHERE id = ?", [(f,) for f in faces])
    conn.executemany(
        "INSERT OR IGNORE INTO face_rejects(face_id, person_id) VALUES (?, ?)",
        [(f, person_id) for f in faces],
    )
    return len(faces)
