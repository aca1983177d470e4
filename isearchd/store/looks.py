"""How each image looks, independent of the model: a perceptual hash and a colour signature.

Columns (migration ``m005_looks``): ``phash`` (the 64-bit DCT hash of the grey picture, stored as a
signed INTEGER), ``colours`` (the mean RGB of a ``COLOUR_GRID`` x ``COLOUR_GRID`` grid, one byte a
channel) and ``look_state`` (0: not computed yet, 1: computed, 2: cannot be: the file is gone, or
it was sent as bytes before this column existed). The duplicate finder (``isearchd.engine.dups``)
confirms the model's candidates with them; ``isearchd.engine.looks`` computes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from isearchd.files.names import to_db

LOOK_UNKNOWN, LOOK_KNOWN, LOOK_UNREADABLE = 0, 1, 2
COLOUR_GRID = 4
_CHUNK = 500


@dataclass(frozen=True)
class Look:
    phash: int  # unsigned 64-bit
    colours: bytes  # COLOUR_GRID * COLOUR_GRID * 3 bytes, row-major RGB


def m005_looks(db: sqlite_utils.Database) -> None:
    # Why: `isearch dups` must tell true copies from merely similar shots without trusting the
    # model alone, and decoding every image again for each run would take minutes. Rows of older
    # catalogs start unknown (look_state 0) and are filled in the background from their files.
    db.execute("ALTER TABLE images ADD COLUMN phash INTEGER")
    db.execute("ALTER TABLE images ADD COLUMN colours BLOB")
    db.execute("ALTER TABLE images ADD COLUMN look_state INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX images_look_state ON images(look_state) WHERE look_state = 0")


def signed_phash(phash: int) -> int:
    """The unsigned 64-bit perceptual hash as the signed 64-bit integer SQLite and Qdrant store."""
    return phash - (1 << 64) if phash >= 1 << 63 else phash


def stored_look(phash: int, colours: bytes) -> Look:
    """A look as read back from its stored columns (the signed phash made unsigned again)."""
    return Look(phash & ((1 << 64) - 1), bytes(colours))


def write_looks_by_label(conn: sqlite3.Connection, rows: Sequence[tuple[str, Look | None]]) -> None:
    """Store looks by label (``None``: unknown, so the background fills it in)."""
    conn.executemany(
        "UPDATE images SET phash = ?, colours = ?, look_state = ? WHERE label = ?",
        [
            (None, None, LOOK_UNKNOWN, to_db(label))
            if look is None
            else (signed_phash(look.phash), look.colours, LOOK_KNOWN, to_db(label))
            for label, look in rows
        ],
    )


def write_looks(conn: sqlite3.Connection, rows: Sequence[tuple[int, Look | None]]) -> None:
    """Store looks by id (``None``: the image cannot be read)."""
    conn.executemany(
        "UPDATE images SET phash = ?, colours = ?, look_state = ? WHERE id = ?",
        [
            (None, None, LOOK_UNREADABLE, i)
            if look is None
            else (signed_phash(look.phash), look.colours, LOOK_KNOWN, i)
            for i, look in rows
        ],
    )


def looks_for_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, Look]:
    """The known looks of images by id (images without one are left out)."""
    out: dict[int, Look] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id, phash, colours FROM images WHERE look_state = 1 AND id IN ({marks})"  # noqa: S608
        for ident, phash, colours in conn.execute(sql, chunk):
            out[ident] = stored_look(phash, colours)
    return out
