"""What the catalog knows about each photo besides its vector, and the filters that use it.

Columns (migration ``m004_photo_metadata``): ``taken`` (ISO 8601, with its UTC offset when the
camera wrote one), ``taken_local`` (wall-clock time where it was taken: dates filter and sort on
it), ``taken_source`` (``exif``, ``video`` or ``mtime``), ``width``/``height`` (after EXIF orientation),
``lat``/``lon``, ``city``/``region``/``country`` and ``place_key`` (``|city|region|country|``
case-folded, so ``--place lisbon`` is one indexed ``instr``), ``type`` (``jpeg``, ``png``,
``heic``..., ``video``), ``at``/``duration`` (a video frame's time and its video's length:
migration ``m009_videos``, ``isearchd.store.videos``) and ``meta_state`` (0: not read yet,
1: read, 2: unreadable: the file is gone or was sent as bytes before this column existed).

``filter_ids`` turns ``Filters`` into the ids of the images that pass, one SQL query on the
reader; the search then ranks exactly those (``isearchd.store.database``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlite_utils

from isearchd.files.names import from_db, to_db
from isearchd.messages import PhotoFacts
from isearchd.store.videos import PHOTO_TYPE, VIDEO_TYPE
from isearchd.store.words import words_where

META_UNREAD, META_READ, META_UNREADABLE = 0, 1, 2
_CHUNK = 500


@dataclass(frozen=True)
class PhotoInfo:
    taken: str | None = None
    taken_local: str | None = None
    taken_source: str | None = None
    width: int | None = None
    height: int | None = None
    lat: float | None = None
    lon: float | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    type: str | None = None
    at: float | None = None  # a video frame's time, seconds from the start (isearchd.store.videos)
    duration: float | None = None  # a video's length in seconds

    @property
    def place(self) -> str | None:
        parts: list[str] = []
        for name in (self.city, self.region, self.country):
            if name and name not in parts:
                parts.append(name)
        return ", ".join(parts) or None

    def facts(self) -> PhotoFacts:
        """What a search hit or an image's details say of the photo, as the protocol sends it."""
        video = {"at": self.at, "duration": self.duration} if self.at is not None and self.duration else {}
        return PhotoFacts(taken=self.taken, taken_source=self.taken_source, width=self.width,
                          height=self.height, place=self.place, type=self.type, **video)  # fmt: skip

    def place_names(self) -> list[str]:
        """City, region and country, case-folded, those that are known."""
        return [n.casefold() for n in (self.city, self.region, self.country) if n]

    def place_key(self) -> str | None:
        names = self.place_names()
        return "|" + "|".join(names) + "|" if names else None


INFO_COLUMNS = ("taken", "taken_local", "taken_source", "width", "height", "lat", "lon", "city", "region",
            "country", "type", "at", "duration")  # fmt: skip


def m004_photo_metadata(db: sqlite_utils.Database) -> None:
    # Why: search by date, place, folder and type needs what each photo says about itself. Rows of
    # older catalogs start unread (meta_state 0) and are filled in the background from their files
    # (metadata only: nothing is embedded again).
    for column, kind in (
        ("taken", "TEXT"), ("taken_local", "TEXT"), ("taken_source", "TEXT"), ("width", "INTEGER"),
        ("height", "INTEGER"), ("lat", "REAL"), ("lon", "REAL"), ("city", "TEXT"), ("region", "TEXT"),
        ("country", "TEXT"), ("place_key", "TEXT"), ("type", "TEXT"),
        ("meta_state", "INTEGER NOT NULL DEFAULT 0"),
    ):  # fmt: skip
        db.execute(f"ALTER TABLE images ADD COLUMN {column} {kind}")
    db.execute("CREATE INDEX images_taken_local ON images(taken_local)")
    db.execute("CREATE INDEX images_meta_state ON images(meta_state) WHERE meta_state = 0")


def info_values(info: PhotoInfo | None) -> tuple[Any, ...]:
    """The metadata columns' values for an upsert (``META_COLUMNS`` order)."""
    if info is None:
        return (None,) * (len(INFO_COLUMNS) + 1) + (META_UNREAD,)
    return (*(getattr(info, c) for c in INFO_COLUMNS), info.place_key(), META_READ)


META_COLUMNS = (*INFO_COLUMNS, "place_key", "meta_state")


def write_info(conn: sqlite3.Connection, rows: Sequence[tuple[int, PhotoInfo | None]]) -> None:
    """Store the metadata of images by id (``None``: unreadable)."""
    sets = ", ".join(f"{c} = ?" for c in META_COLUMNS)
    conn.executemany(
        f"UPDATE images SET {sets} WHERE id = ?",  # noqa: S608 - fixed column names
        [(*_stored(info), ident) for ident, info in rows],
    )


def _stored(info: PhotoInfo | None) -> tuple[Any, ...]:
    if info is not None:
        return info_values(info)
    return (*info_values(None)[:-1], META_UNREADABLE)


def unread(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str, str, int]]:
    """Up to ``limit`` images whose metadata was never read: (id, label, path, mtime_ns)."""
    sql = "SELECT id, label, path, mtime_ns FROM images WHERE meta_state = 0 ORDER BY id LIMIT ?"
    return [(i, from_db(lb), from_db(p), m) for i, lb, p, m in conn.execute(sql, [limit])]


def info_for_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[PhotoInfo, int]]:
    """Metadata and file size of images by id."""
    out: dict[int, tuple[PhotoInfo, int]] = {}
    cols = ", ".join(INFO_COLUMNS)
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id, size, {cols} FROM images WHERE id IN ({marks})"  # noqa: S608
        for row in conn.execute(sql, chunk):
            out[row[0]] = (PhotoInfo(*row[2:]), row[1])
    return out


@dataclass(frozen=True)
class Filters:
    """Which images a search may return. Dates are wall-clock bounds: ``after`` inclusive,
    ``before`` exclusive (``"2019-07-01T00:00:00"``); ``within``: absolute folders."""

    after: str | None = None
    before: str | None = None
    within: tuple[str, ...] = ()
    place: str | None = None
    types: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # named people who must all be in the photo (any case)
    words: str | None = None  # every word of it must occur in the photo's text (store.words)

    def __bool__(self) -> bool:
        return bool(
            self.after or self.before or self.within or self.place or self.types or self.people or self.words
        )


def below_range(folder: str) -> tuple[bytes, bytes]:
    """The stored paths below ``folder`` are exactly those in ``[low, high)``: every byte string
    that starts with "<folder>/" sorts there, '0' being the byte right after '/' (uses the index)."""
    low = to_db(folder.rstrip("/") + "/")
    return low, low[:-1] + b"0"


def filter_ids(conn: sqlite3.Connection, f: Filters) -> np.ndarray:
    """The ids of the images that pass ``f`` (int64, ascending)."""
    where, args = _where(f)
    # (only fixed conditions with "?" placeholders are joined here)
    sql = "SELECT id FROM images" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"  # noqa: S608
    return np.fromiter((r[0] for r in conn.execute(sql, args)), dtype=np.int64)


def filter_vectors(conn: sqlite3.Connection, f: Filters) -> tuple[np.ndarray, np.ndarray]:
    """The ids and stored vectors (float32 rows) of the images that pass ``f``, in one query."""
    where, args = _where(f)
    sql = "SELECT id, vector FROM images" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
    rows = conn.execute(sql, args).fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return ids, matrix.astype(np.float32, copy=False)


def _where(f: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if f.after:
        where.append("taken_local >= ?")
        args.append(f.after)
    if f.before:
        where.append("taken_local < ?")
        args.append(f.before)
    if f.within:
        ors = []
        for folder in f.within:
            ors.append("(path >= ? AND path < ?)")
            args += list(below_range(folder))
        where.append("(" + " OR ".join(ors) + ")")
    if f.place:
        where.append("instr(place_key, ?) > 0")
        args.append("|" + f.place.strip().casefold() + "|")
    if f.types:
        # "photo": every type but video (isearchd.store.videos)
        named = [t for t in f.types if t != PHOTO_TYPE]
        ors = ["type IN (" + ",".join("?" * len(named)) + ")"] if named else []
        if PHOTO_TYPE in f.types:
            ors.append("coalesce(type, '') != ?")
            named.append(VIDEO_TYPE)
        where.append("(" + " OR ".join(ors) + ")")
        args += named
    for name in f.people:  # (the faces and people tables: isearchd.store.people)
        where.append(
            "id IN (SELECT f.image_id FROM faces f JOIN people p ON p.id = f.person_id"
            " WHERE p.name = ? COLLATE NOCASE)"
        )
        args.append(name)
    if f.words is not None:  # (the words tables: isearchd.store.words)
        condition, more = words_where(f.words)
        where.append(condition)
        args += more
    return where, args
