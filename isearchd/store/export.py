"""Every image of an embedded catalog with all it holds (vector, photo metadata, look), in
batches: what ``isearch migrate`` copies into another store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from isearchd.files.names import from_db
from isearchd.store.catalog import blob_to_vector
from isearchd.store.looks import LOOK_KNOWN, Look
from isearchd.store.metadata import META_READ, PhotoInfo
from isearchd.store.records import ImageRecord

_SQL = (
    "SELECT id, label, path, size, mtime_ns, content_hash, vector, meta_state, look_state, phash, colours, "
    "taken, taken_local, taken_source, width, height, lat, lon, city, region, country, type "
    "FROM images WHERE id > ? ORDER BY id LIMIT ?"
)


def export_rows(conn: sqlite3.Connection, batch: int) -> Iterator[list[tuple[int, ImageRecord]]]:
    """Batches of ``(id, ImageRecord)``: the record's ``info`` is None when the photo's metadata
    was never read (or could not be), its ``look`` None when unknown, so the copy reads them
    again in the background."""
    last = 0
    while True:
        rows = conn.execute(_SQL, [last, batch]).fetchall()
        if not rows:
            return
        out: list[tuple[int, ImageRecord]] = []
        for r in rows:
            ident, label, path, size, mtime_ns, chash, blob, meta_state, look_state, phash, colours = r[:11]
            info = PhotoInfo(*r[11:]) if meta_state == META_READ else None
            look = Look(phash & ((1 << 64) - 1), bytes(colours)) if look_state == LOOK_KNOWN else None
            record = ImageRecord(
                from_db(label), from_db(path), size, mtime_ns, chash, blob_to_vector(blob), info, look
            )
            out.append((ident, record))
        last = rows[-1][0]
        yield out
