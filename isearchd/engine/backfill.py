"""Photo metadata for images indexed before the catalog kept it, filled in the background.

When a database is opened and some of its rows were never read for metadata (a catalog migrated
to schema 4), jobs in the engine's one queue read those files' headers, ``CHUNK`` rows a job:
only the first ``HEAD_BYTES`` of each file (EXIF sits at the start of JPEG, HEIC and most TIFF
files; a file whose header needs more is read whole), nothing is decoded or embedded again. A
file that is gone, or that was sent as bytes by a TCP client (there is nothing on this machine
to read), is marked unreadable and counted. ``progress()`` feeds ``service status``.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import TYPE_CHECKING, Any

from isearchd.engine.photometa import photo_infos, read_metadata

if TYPE_CHECKING:
    from isearchd.engine.jobqueue import JobQueue
    from isearchd.engine.places import Gazetteer
    from isearchd.store import Database

log = logging.getLogger(__name__)

# Rows per job: small enough that an add waits at most ~1 s behind a backfill job.
CHUNK = 200
# Bytes read per file; EXIF is in the first 64 kB of a JPEG by the standard.
HEAD_BYTES = 256 * 1024


class MetadataBackfill:
    def __init__(self, jobs: JobQueue, places: Gazetteer) -> None:
        self._jobs = jobs
        self._places = places
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, int]] = {}

    def start(self, db: Database) -> None:
        """Queue the filling of ``db``'s unread rows, if it has any (safe to call again)."""
        total = db.count_unread_metadata()
        if not total:
            return
        with self._lock:
            if db.name in self._state and self._state[db.name]["left"]:
                return
            self._state[db.name] = {"total": total, "done": 0, "unreadable": 0, "left": total}
        log.info("database %r: reading the photo metadata of %d images in the background", db.name, total)
        self._jobs.submit(lambda: self._step(db), f"metadata of {db.name}")

    def _step(self, db: Database) -> None:
        rows = db.unread_metadata(CHUNK)
        metas = [_read_head(path, mtime_ns) for _, _, path, mtime_ns in rows]
        infos = photo_infos(metas, self._places)
        db.store_metadata([(ident, info) for (ident, *_), info in zip(rows, infos, strict=True)])
        unreadable = sum(info is None for info in infos)
        with self._lock:
            state = self._state[db.name]
            state["done"] += len(rows)
            state["unreadable"] += unreadable
            state["left"] = 0 if len(rows) < CHUNK else max(0, state["total"] - state["done"])
            more = bool(state["left"])
        if more:
            self._jobs.submit(lambda: self._step(db), f"metadata of {db.name}")
        else:
            log.info(
                "database %r: photo metadata read for %d images (%d could not be read: file gone, "
                "or sent as bytes)",
                db.name,
                state["done"],
                state["unreadable"],
            )

    def progress(self) -> dict[str, dict[str, int]]:
        """Per database: ``total`` rows to read, ``done``, ``unreadable`` (while or since it ran)."""
        with self._lock:
            return {name: {k: v for k, v in s.items() if k != "left"} for name, s in self._state.items()}


def _read_head(path: str, mtime_ns: int) -> Any:
    """The metadata of the file at ``path`` from its first bytes; None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO never blocks
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            data = fh.read(HEAD_BYTES)
            meta = read_metadata(data, mtime_ns)
            if meta.width is None and len(data) == HEAD_BYTES:  # a header longer than the head
                fh.seek(0)
                meta = read_metadata(fh.read(), mtime_ns)
    except OSError:
        return None
    return meta
