"""Every image of an embedded catalog with all it holds (vector, photo metadata, look), in
batches: what ``isearch migrate`` copies into another store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from isearchd.files.names import from_db
from isearchd.store.catalog import blob_to_vector
from isearchd.store.looks import LOOK_KNOWN, stored_look
from isearchd.store.metadata import INFO_COLUMNS, META_READ, PhotoInfo
from isearchd.store.records import ImageRecord

_SQL = (
    "SELECT id, label, path, size, mtime_ns, content_hash, vector, meta_state, look_state, phash, colours, "  # noqa: S608
    + ", ".join(INFO_COLUMNS)  # PhotoInfo's fields, in its order
    + " FROM images WHERE id > ? ORDER BY id LIMIT ?"
)


def export_rows(conn: sqlite3.Connection, batch: int) -> Iterator[list[ImageRecord]]:
    """Batches of every image's ``ImageRecord``: its ``info`` is None when the photo's metadata
    was never read (or could not be), its ``look`` None when unknown, so the copy reads them
    again in the background."""
    last = 0
    while True:
        rows = conn.execute(_SQL, [last, batch]).fetchall()
        if not rows:
            return
        out: list[ImageRecord] = []
        for r in rows:
            label, path, size, mtime_ns, chash, blob, meta_state, look_state, phash, colours = r[1:11]
            info = PhotoInfo(*r[11:]) if meta_state == META_READ else None
            look = stored_look(phash, colours) if look_state == LOOK_KNOWN else None
            out.append(
                ImageRecord(
                    from_db(label), from_db(path), size, mtime_ns, chash, blob_to_vector(blob), info, look
                )
            )
        last = rows[-1][0]
        yield out
