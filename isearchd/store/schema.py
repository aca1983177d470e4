"""The catalog's schema: its ordered, named migrations.

Each runs once, in its own transaction, and bumps ``meta.schema_version``; never edit a released
migration: add a new one. The migrations of the photo metadata (m004), the looks (m005), the
analyses (m006), people (m007), words in pictures (m008) and videos (m009) live beside the code
that reads those columns.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from isearchd.store.analyses import m006_analyses
from isearchd.store.looks import m005_looks
from isearchd.store.metadata import m004_photo_metadata
from isearchd.store.people import m007_people
from isearchd.store.videos import m009_videos
from isearchd.store.words import m008_words

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]


def m001_create_tables(db: sqlite_utils.Database) -> None:
    # Why: the initial schema. Vectors are stored in the catalog (float32 little-endian BLOB) so
    # the hnswlib index is pure derived data that can always be rebuilt; `seq` lets a reopen
    # replay only the rows the saved index lacks.
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            label TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            seq INTEGER NOT NULL,
            added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE folders (
            path TEXT PRIMARY KEY,
            options TEXT NOT NULL DEFAULT '{}',
            added_at TEXT NOT NULL
        )"""
    )


def m002_lookup_indexes(db: sqlite_utils.Database) -> None:
    # Why: delete-by-folder (path prefix range scan), reuse of vectors for identical content
    # (content_hash) and replay on reopen (seq > saved seq) must not scan the whole table.
    db.execute("CREATE INDEX images_path ON images(path)")
    db.execute("CREATE INDEX images_content_hash ON images(content_hash)")
    db.execute("CREATE INDEX images_seq ON images(seq)")


def m003_names_as_bytes(db: sqlite_utils.Database) -> None:
    # Why: a file name that is not valid UTF-8 (Linux allows any bytes) could not be stored as
    # TEXT, and one such name failed a whole add. Names are now the exact bytes (BLOB); TEXT rows
    # of older catalogs are their UTF-8 bytes, so CAST converts them without loss.
    db.execute(
        "UPDATE images SET label = CAST(label AS BLOB), path = CAST(path AS BLOB) "
        "WHERE typeof(label) = 'text' OR typeof(path) = 'text'"
    )
    db.execute("UPDATE folders SET path = CAST(path AS BLOB) WHERE typeof(path) = 'text'")


MIGRATIONS: tuple[tuple[str, Callable[[sqlite_utils.Database], None]], ...] = (
    ("m001_create_tables", m001_create_tables),
    ("m002_lookup_indexes", m002_lookup_indexes),
    ("m003_names_as_bytes", m003_names_as_bytes),
    ("m004_photo_metadata", m004_photo_metadata),
    ("m005_looks", m005_looks),
    ("m006_analyses", m006_analyses),
    ("m007_people", m007_people),
    ("m008_words", m008_words),
    ("m009_videos", m009_videos),
)
SCHEMA_VERSION = len(MIGRATIONS)
