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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from isearchd.engine.photometa import photo_infos, read_metadata
from isearchd.files.images import open_regular
from isearchd.messages import BackfillProgress
from isearchd.store import ImageDatabase

if TYPE_CHECKING:
    from isearchd.engine.jobqueue import JobQueue
    from isearchd.engine.places import Gazetteer

log = logging.getLogger(__name__)

# Rows per job: small enough that an add waits at most ~1 s behind a backfill job.
CHUNK = 200
# Bytes read per file; EXIF is in the first 64 kB of a JPEG by the standard.
HEAD_BYTES = 256 * 1024


@dataclass
class _Pass:
    """One database's pass: rows to fill, done, unreadable, and left to do (0: finished)."""

    total: int
    done: int = 0
    unreadable: int = 0
    left: int = 0


class Backfill:
    """Fills in what older rows of a database lack, ``chunk`` rows a job in the engine's one queue.

    ``count(db)`` says how many rows lack it; ``step(db, chunk)`` fills up to ``chunk`` of them and
    returns ``(rows done, rows that could not be read)``. ``what`` names it in the log and the job.
    """

    def __init__(
        self,
        jobs: JobQueue,
        what: str,
        count: Callable[[ImageDatabase], int],
        step: Callable[[ImageDatabase, int], tuple[int, int]],
        chunk: int,
    ) -> None:
        self._jobs = jobs
        self._what = what
        self._count = count
        self._fill = step
        self._chunk = chunk
        self._lock = threading.Lock()
        self._state: dict[str, _Pass] = {}

    def start(self, db: ImageDatabase) -> None:
        """Queue the filling of ``db``'s rows that lack it, if any (safe to call again)."""
        total = self._count(db)
        if not total:
            return
        with self._lock:
            if db.name in self._state and self._state[db.name].left:
                return
            self._state[db.name] = _Pass(total=total, left=total)
        log.info("database %r: %s of %d images, in the background", db.name, self._what, total)
        self._jobs.submit(lambda: self._step(db), f"{self._what} of {db.name}")

    def _step(self, db: ImageDatabase) -> None:
        done, unreadable = self._fill(db, self._chunk)
        with self._lock:
            state = self._state[db.name]
            state.done += done
            state.unreadable += unreadable
            state.left = 0 if done < self._chunk else max(0, state.total - state.done)
            more = bool(state.left)
        if more:
            self._jobs.submit(lambda: self._step(db), f"{self._what} of {db.name}")
        else:
            log.info(
                "database %r: %s done for %d images (%d could not be read: file gone, or sent as bytes)",
                db.name,
                self._what,
                state.done,
                state.unreadable,
            )

    def progress(self) -> dict[str, BackfillProgress]:
        """Per database: ``total`` rows to fill, ``done``, ``unreadable`` (while or since it ran)."""
        with self._lock:
            return {
                name: BackfillProgress(total=s.total, done=s.done, unreadable=s.unreadable)
                for name, s in self._state.items()
            }


def metadata_backfill(jobs: JobQueue, places: Gazetteer) -> Backfill:
    """Photo metadata for rows indexed before the catalog kept it (headers only)."""

    def step(db: ImageDatabase, chunk: int) -> tuple[int, int]:
        rows = db.unread_metadata(chunk)
        metas = [_read_head(path, mtime_ns) for _, _, path, mtime_ns in rows]
        infos = photo_infos(metas, places)
        db.store_metadata([(ident, info) for (ident, *_), info in zip(rows, infos, strict=True)])
        return len(rows), sum(info is None for info in infos)

    return Backfill(jobs, "reading photo metadata", lambda db: db.count_unread_metadata(), step, CHUNK)


def _read_head(path: str, mtime_ns: int) -> Any:
    """The metadata of the file at ``path`` from its first bytes; None when it cannot be read."""
    try:
        fh, _ = open_regular(path)  # a FIFO never blocks (NotRegularFile is an OSError)
        with fh:
            data = fh.read(HEAD_BYTES)
            meta = read_metadata(data, mtime_ns)
            if meta.width is None and len(data) == HEAD_BYTES:  # a header longer than the head
                fh.seek(0)
                meta = read_metadata(fh.read(), mtime_ns)
    except OSError:
        return None
    return meta
