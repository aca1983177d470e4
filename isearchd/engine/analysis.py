"""Analyses: what the daemon reads from each photo besides its embedding, after indexing it.

The seam that photo metadata, looks, faces, words in pictures and video frames plug into. An
``Analysis`` declares

- ``name`` and ``version``: the store keeps, per image, the version that read it (or why it
  failed); a photo is *pending* while it has none or another one (``ImageDatabase.pending``), so
  photos added before an analysis existed, and every photo after its version changes, are read
  again in the background; a photo deleted or changed loses what was read of it;
- ``priority``: the order among analyses (the image tower, 1, is the indexer's own, inline);
- ``side``: the shorter side of the picture it reads (0: it reads the file itself, not pixels);
- ``chunk``: photos read per step, and ``tables``: what it stores (for the docs and ``--forget``);
- ``applies(db)``: whether it reads that database at all (people may be off for one);
- ``decodes_files``: when the indexer left no picture, it decodes the file itself (faces do, in
  their worker processes: off this thread and on every core), and gets ``picture=None``;

and does ``read(photos)`` (CPU work on a few photos; an outcome per photo: a result, or
``Failed(reason)``) and ``save(db, outcomes)`` (its writes, with the photos' state).

``Analyses`` runs them on one background thread, lowest priority number first, newest photos
first, a chunk at a time: it waits before each photo while a search computes (the query gate) and
while the engine's write queue has work (indexing), so a search and the image tower's indexing are
never delayed by an analysis; each chunk's outcomes are saved in one job of the write queue (the
one writer). Pictures come from the ``Inbox`` when the indexer left one there (decoded once, for
the tower and the analyses: ``Analyses.want`` tells the indexer what to keep, bounded in memory),
else they are decoded again at the analysis's ``side``. A photo that cannot be decoded or read is
recorded with its reason and never stops the others. A video's frames are recorded as not read by
the analyses that read pixels (faces and words are not read from videos), without a decode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from isearchd.errors import BadImage, ISearchError
from isearchd.files.formats import is_video_name
from isearchd.files.images import load_image
from isearchd.messages import BackfillProgress
from isearchd.models.workers import Holdable

if TYPE_CHECKING:
    from PIL import Image

    from isearchd.engine.gate import QueryGate
    from isearchd.engine.jobqueue import JobQueue
    from isearchd.store import ImageDatabase, PhotoFile

log = logging.getLogger(__name__)

__all__ = ["Analyses", "Analysis", "Failed", "Inbox", "Photo", "read_progress"]

# Decoded pictures the indexer may leave for the analyses: each is a copy reduced to the largest
# ``side`` an analysis asks for (a 1080p photo at a shorter side of 960: ~2.8 MB of RGB), so this
# bounds the memory the hand-off can take. When it is full, a photo is decoded again later.
INBOX_PICTURES = 16
# How long the worker sleeps between looks at a busy write queue, and when there is nothing to do.
IDLE_POLL_S = 0.2


@dataclass(frozen=True)
class Failed:
    """Why an analysis could not read a photo (one line, shown in status and logs)."""

    reason: str


Outcome = object  # an analysis's result for one photo, or ``Failed``


@dataclass(frozen=True)
class Photo:
    """A photo to read: its file, and its picture at the analysis's side (None when ``side`` is 0,
    or when the analysis ``decodes_files`` and the indexer left no picture)."""

    file: PhotoFile
    picture: Image.Image | None


class Analysis(Protocol):
    name: str
    version: int
    priority: int
    side: int
    chunk: int
    tables: tuple[str, ...]
    # whether it reads new photos too (faces, words), or only catches up older ones (metadata and
    # looks are read at add time already): only the former get the indexer's pictures
    reads_new: bool
    # whether it decodes the files the indexer left no picture of itself (``Photo.picture`` None)
    decodes_files: bool

    def applies(self, db: ImageDatabase) -> bool:
        """Whether it reads ``db``'s photos at all (people can be off for a database)."""
        ...

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        """An outcome for each photo, by image id (CPU work; any other exception is a failure)."""
        ...

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        """Store the outcomes and the photos' state (runs as a job of the write queue)."""
        ...


def read_progress(analysis: Analysis, db: ImageDatabase) -> BackfillProgress:
    """``db``'s images ``done`` by ``analysis`` (read, or failed) of ``total``, and ``unreadable``
    (failed): what ``status`` shows per analysis, and the people list."""
    total = db.count()
    pending = db.count_pending(analysis.name, analysis.version)
    return BackfillProgress(
        total=total, done=total - pending, unreadable=db.count_failed(analysis.name, analysis.version)
    )


class Inbox:
    """Pictures the indexer decoded, kept for the analyses that read pixels until each has read
    them (bounded: the oldest is dropped first; its photo is then decoded again when read)."""

    def __init__(self, capacity: int = INBOX_PICTURES) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], tuple[int, Image.Image, set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def has_room(self) -> bool:
        with self._lock:
            return len(self._items) < self.capacity

    def put(self, db: str, label: str, mtime_ns: int, picture: Image.Image, readers: set[str]) -> None:
        """Keep ``picture`` for the analyses ``readers`` (by name)."""
        with self._lock:
            self._items[(db, label)] = (mtime_ns, picture, set(readers))
            self._items.move_to_end((db, label))
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def take(self, analysis: str, db: str, file: PhotoFile) -> Image.Image | None:
        """The picture kept for this file, if it is still the same file; the last of its readers
        takes it out."""
        key = (db, file.label)
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != file.mtime_ns or analysis not in found[2]:
                return None
            found[2].discard(analysis)
            if not found[2]:
                del self._items[key]
            return found[1]


class Analyses:
    """Runs the analyses over the open databases on one background thread (see the module)."""

    def __init__(self, analyses: Sequence[Analysis], jobs: JobQueue, gate: QueryGate) -> None:
        self.analyses = sorted(analyses, key=lambda a: (a.priority, a.name))
        self.jobs = jobs
        self.gate = gate
        self.inbox = Inbox()
        self._dbs: dict[str, ImageDatabase] = {}
        self._idle: dict[tuple[str, str], bool] = {}  # (analysis, db): nothing pending last time
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- what the engine and the indexer call ------------------------------------------------------

    def start(self, db: ImageDatabase) -> None:
        """Look for ``db``'s pending photos (opened, or photos were added to it)."""
        if not self.analyses:
            return
        with self._cond:
            self._dbs[db.name] = db
            for a in self.analyses:
                self._idle[(a.name, db.name)] = not a.applies(db)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="isearch-analyses", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def want(self) -> int:
        """The shorter side the indexer should keep a copy of each new photo at, for the analyses
        that read pixels (0: nothing to keep now, or the inbox is full)."""
        sides = [a.side for a in self.analyses if a.side > 0 and a.reads_new]
        return max(sides) if sides and self.inbox.has_room() else 0

    def keep(self, db: str, label: str, mtime_ns: int, picture: Image.Image) -> None:
        """A new photo's picture (at ``want``'s side), for the analyses that will read it."""
        readers = {a.name for a in self.analyses if a.side > 0 and a.reads_new}
        if readers:
            self.inbox.put(db, label, mtime_ns, picture, readers)

    def progress(self) -> dict[str, dict[str, BackfillProgress]]:
        """Per analysis and open database: images ``done`` (read, or failed) of ``total``, and
        ``unreadable`` (failed)."""
        with self._cond:
            dbs = dict(self._dbs)
        out: dict[str, dict[str, BackfillProgress]] = {}
        for a in self.analyses:
            for name, db in dbs.items():
                if not a.applies(db):
                    continue
                try:
                    out.setdefault(a.name, {})[name] = read_progress(a, db)
                except ISearchError:
                    continue  # closed meanwhile
        return out

    def hold(self, paused: bool) -> None:
        """Hold the analyses' worker processes (``True``: a search computes) or let them go on;
        the engine's ``QueryGate`` calls it as searches begin and end."""
        for a in self.analyses:
            if isinstance(a, Holdable):
                try:
                    a.hold(paused)
                except Exception:  # a search must never fail for it: at worst the workers run on
                    log.exception("could not %s the %s workers", "hold" if paused else "release", a.name)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(30)

    # -- the worker --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                work = self._next()
                if work is None:
                    self._cond.wait(IDLE_POLL_S * 5)
                    continue
            analysis, db = work
            try:
                self._step(analysis, db)
            except ISearchError as e:  # the database closed, the queue shut down: look again later
                log.info("%s of %s paused: %s", analysis.name, db.name, e.message)
                with self._cond:
                    self._idle[(analysis.name, db.name)] = True
            except Exception:  # one analysis's bug must not stop the others (the log has it)
                log.exception("%s of %s failed", analysis.name, db.name)
                with self._cond:
                    self._idle[(analysis.name, db.name)] = True

    def _next(self) -> tuple[Analysis, ImageDatabase] | None:
        """The highest-priority analysis with work in some database (caller holds the lock)."""
        for a in self.analyses:
            for name, db in self._dbs.items():
                if not self._idle.get((a.name, name), True) and a.applies(db):
                    return a, db
        return None

    def _wait_turn(self) -> bool:
        """Wait until no search computes and the write queue is empty; False once closed."""
        while not self._closed:
            self.gate.wait_clear()
            if len(self.jobs) == 0 and not self.gate.active:
                return True
            time.sleep(IDLE_POLL_S)
        return False

    def _step(self, analysis: Analysis, db: ImageDatabase) -> None:
        files = db.pending(analysis.name, analysis.version, analysis.chunk)
        if not files:
            with self._cond:
                self._idle[(analysis.name, db.name)] = True
            return
        outcomes: dict[int, Outcome] = {}
        photos: list[Photo] = []
        for file in files:
            if not self._wait_turn():
                return
            picture = None
            if analysis.side > 0 and is_video_name(file.path):
                outcomes[file.id] = Failed(f"a video's frame ({analysis.name} are not read from videos)")
                continue
            if analysis.side > 0:
                picture = self.inbox.take(analysis.name, db.name, file)
                if picture is None and not analysis.decodes_files:
                    try:
                        picture = load_image(file.path, min_side=analysis.side, name=file.path)
                    except BadImage as e:
                        outcomes[file.id] = Failed(e.reason)
                        continue
            photos.append(Photo(file, picture))
        if photos and not self._wait_turn():
            return  # closing: the photos stay pending (not recorded as failed), read at the next start
        if photos:
            try:
                outcomes.update(analysis.read(photos))
            except Exception as e:
                log.exception("%s could not read %d photos", analysis.name, len(photos))
                outcomes.update({p.file.id: Failed(f"{type(e).__name__}: {e}") for p in photos})
        for p in photos:
            outcomes.setdefault(p.file.id, Failed("the analysis gave no result"))
        self.jobs.run(lambda: self._save(analysis, db, outcomes), f"{analysis.name} of {db.name}")

    def _save(self, analysis: Analysis, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        """``analysis.save`` on the write queue, once no search computes (at most the gate's bound
        later): saving faces groups them, CPU work in the daemon's own threads."""
        self.gate.wait_clear()
        analysis.save(db, outcomes)
