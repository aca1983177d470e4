"""Which photos each background analysis has read, in the embedded store's catalog.

An analysis (``isearchd.engine.analysis``: faces, words in pictures...) reads photos after they
are indexed. The catalog remembers, per image and analysis, the version of the analysis that read
it and, when it failed, the one-line reason (migration ``m006_analyses``):

    analyses(image_id, analysis, version, failure)

A photo is *pending* for version V of an analysis when it has no row for it or a row of another
version: added before the analysis existed, read by an earlier version, or read with other models
(the words analysis's version includes the language it reads, ``isearchd.models.ocr_languages``,
so switching languages back and forth reads the library again each time, as it must). Triggers
drop an image's rows when it is deleted or its content changes (a new picture under the same name
must be read again), so every write path follows the rule without knowing it.

Two passes older than this table keep their own state columns: photo metadata (``meta_state``,
``isearchd.store.metadata``) and looks (``look_state``, ``isearchd.store.looks``); ``pending`` and
``count_pending`` read those for them, so every pass is asked the same way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import sqlite_utils

from isearchd.files.names import from_db
from isearchd.store.records import PhotoFile

__all__ = ["LEGACY_PASSES", "count_failed", "count_pending", "m006_analyses", "pending", "record_outcomes"]

# Passes whose state is a column of ``images`` (0: not read yet, 2: unreadable), at version 1.
LEGACY_PASSES = {"metadata": "meta_state", "looks": "look_state"}
_CHUNK = 500


def m006_analyses(db: sqlite_utils.Database) -> None:
    # Why: analyses that run after indexing (faces, words in pictures) must find the photos they
    # have not read, at their current version, without a column per analysis in `images`; and an
    # image deleted or changed must lose what they read of it, on every write path.
    db.execute(
        """CREATE TABLE analyses (
            image_id INTEGER NOT NULL,
            analysis TEXT NOT NULL,
            version INTEGER NOT NULL,
            failure TEXT,
            PRIMARY KEY (image_id, analysis)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX analyses_by_analysis ON analyses(analysis, version)")
    db.execute(
        """CREATE TRIGGER analyses_image_deleted AFTER DELETE ON images
           BEGIN DELETE FROM analyses WHERE image_id = old.id; END"""
    )
    db.execute(
        """CREATE TRIGGER analyses_image_changed AFTER UPDATE OF content_hash ON images
           WHEN old.content_hash IS NOT new.content_hash
           BEGIN DELETE FROM analyses WHERE image_id = new.id; END"""
    )


def _pending_where(analysis: str, version: int) -> tuple[str, list[object]]:
    column = LEGACY_PASSES.get(analysis)
    if column is not None:
        return f"{column} = 0", []
    return (
        "NOT EXISTS (SELECT 1 FROM analyses a WHERE a.image_id = images.id"
        " AND a.analysis = ? AND a.version = ?)",
        [analysis, version],
    )


def pending(conn: sqlite3.Connection, analysis: str, version: int, limit: int) -> list[PhotoFile]:
    """Up to ``limit`` images that version ``version`` of ``analysis`` has not read, newest first."""
    where, args = _pending_where(analysis, version)
    # newest first: the photos an add just indexed, whose pictures may still be in memory
    sql = f"SELECT id, label, path, mtime_ns FROM images WHERE {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
    return [PhotoFile(i, from_db(lb), from_db(p), m) for i, lb, p, m in conn.execute(sql, [*args, limit])]


def count_pending(conn: sqlite3.Connection, analysis: str, version: int) -> int:
    where, args = _pending_where(analysis, version)
    return int(conn.execute(f"SELECT count(*) FROM images WHERE {where}", args).fetchone()[0])  # noqa: S608


def count_failed(conn: sqlite3.Connection, analysis: str, version: int) -> int:
    """Images that version ``version`` of ``analysis`` could not read."""
    column = LEGACY_PASSES.get(analysis)
    if column is not None:
        return int(conn.execute(f"SELECT count(*) FROM images WHERE {column} = 2").fetchone()[0])  # noqa: S608
    sql = "SELECT count(*) FROM analyses WHERE analysis = ? AND version = ? AND failure IS NOT NULL"
    return int(conn.execute(sql, [analysis, version]).fetchone()[0])


def record_outcomes(
    conn: sqlite3.Connection, analysis: str, version: int, outcomes: Mapping[int, str | None]
) -> None:
    """Version ``version`` of ``analysis`` has read these images: ``None``, or why it failed.
    Ids no longer in the catalog (deleted meanwhile) are left out."""
    if analysis in LEGACY_PASSES:
        raise ValueError(f"{analysis} records its state with its own data")
    ids: Sequence[int] = list(outcomes)
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        present = {r[0] for r in conn.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk)}  # noqa: S608
        conn.executemany(
            """INSERT INTO analyses(image_id, analysis, version, failure) VALUES (?, ?, ?, ?)
               ON CONFLICT(image_id, analysis) DO UPDATE SET
                 version = excluded.version, failure = excluded.failure""",
            [(i, analysis, version, outcomes[i]) for i in chunk if i in present],
        )
