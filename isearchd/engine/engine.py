"""The daemon's engine: one resident model, the open databases, and every operation clients ask for.

The engine knows nothing about sockets or the command line (the server and CLI are adapters over
it). It is thread-safe: many connections call it at once.

- The model is loaded once by the caller and kept; calls into it are serialised by a lock (torch
  already uses every core for one batch, so concurrent calls would only thrash).
- Databases are opened on first use with the model's key and dimension, so a database built by
  another model raises ``ModelMismatch`` instead of mixing embedding spaces.
- Every write (an ``add`` request, a watched folder's batch) is a job in one bounded queue run by
  one indexing worker (``isearchd.engine.jobqueue``): a second client adding the same folder waits, then
  finds every file already present; a full queue makes producers wait instead of dropping work.
  ``status()['queue']`` counts jobs running or waiting.
- Watched folders are not the engine's business: the daemon composes a ``Watcher``
  (``isearchd.watch``) over the engine, which feeds its job queue through ``index_paths``.
- Text-query embeddings are cached (LRU), so repeating a search costs one index lookup.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from isearchd.engine.analysis import Analyses, Analysis
from isearchd.engine.dups import DupRules, find_groups
from isearchd.engine.faces import FacesAnalysis
from isearchd.engine.gate import QueryGate
from isearchd.engine.indexer import BATCH_SIZE, AddItem, AddReport, Indexer, Progress, ProgressFn
from isearchd.engine.jobqueue import JobQueue
from isearchd.engine.migrate import Handle, plan_migration
from isearchd.engine.passes import LooksPass, MetadataPass
from isearchd.engine.people import People
from isearchd.engine.places import Gazetteer
from isearchd.engine.query import SORTS, SearchQuery, combine, listing
from isearchd.engine.queryvectors import TEXT_CACHE_SIZE, EngineModel, QueryVectors
from isearchd.engine.rawpairs import raws_beside_in, top_folded
from isearchd.engine.videohits import once_per_video as once
from isearchd.engine.words import WordsAnalysis
from isearchd.errors import InvalidRequest, NotFound
from isearchd.files.formats import is_video_name
from isearchd.files.scan import label_for, scan
from isearchd.files.video import VideoLimits
from isearchd.messages import DbInfo, DupGroup, EngineStatus, ImageInfo, Migrated
from isearchd.reports import LABEL_TYPES, MAX_RESULTS
from isearchd.store.metadata import PhotoInfo
from isearchd.store.words_db import words_store

if TYPE_CHECKING:
    from isearchd.store import ImageDatabase, SearchHit, Store, WatchedFolder

log = logging.getLogger(__name__)


def check_query(num: int, similarity: float) -> None:
    if not 1 <= num <= MAX_RESULTS:
        raise InvalidRequest(f"the number of results must be between 1 and {MAX_RESULTS}, not {num}")
    if not 0 <= similarity <= 100:
        raise InvalidRequest(f"the minimum similarity is a percentage between 0 and 100, not {similarity}")


class Engine:
    def __init__(
        self,
        model: EngineModel,
        home: Path,
        *,
        text_cache_size: int = TEXT_CACHE_SIZE,
        batch_size: int = BATCH_SIZE,
        store: Store | None = None,
        open_url: Callable[[str], Store] | None = None,
        analyses: Sequence[Analysis] = (),
        faces: FacesAnalysis | None = None,
        words: WordsAnalysis | None = None,
        video: VideoLimits | None = None,
    ) -> None:
        """``analyses``: what is read from every photo after indexing (``isearchd.engine.analysis``),
        besides the catch-up passes of photo metadata and looks, which always run. ``faces``: the
        faces analysis, when people are on (``isearchd.engine.faces``); ``words``: the words analysis,
        when words are on and rapidocr is installed (``isearchd.engine.words``)."""
        from isearchd.store import EmbeddedStore, open_store

        self.model = model
        self.batch_size = batch_size
        self.video = video or VideoLimits()  # how videos are read ([video] settings)
        self.home = Path(home)
        # where the databases live: the embedded store under ``home`` unless another is given
        self.store: Store = store if store is not None else EmbeddedStore(self.home)
        # another store by URL (``migrate``), with the daemon's [store] settings
        self._open_url = open_url or (lambda url: open_store(url, self.home))
        self.started = time.time()
        self._dbs: dict[str, ImageDatabase] = {}
        self._db_lock = threading.RLock()
        self.jobs = JobQueue()
        # searches computing an embedding hold it; the add's decode threads wait for them
        self.gate = QueryGate()
        self.queries = QueryVectors(model, self.gate, text_cache_size)
        self._closed = False
        self.places = Gazetteer()
        self.words = words
        found = [a for a in (faces, words) if a is not None]
        self.analyses = Analyses(
            [MetadataPass(self.places), LooksPass(), *found, *analyses], self.jobs, self.gate
        )
        self.gate.listen(self.analyses.hold)  # the analyses' workers wait while a search computes
        self.people = People(
            lambda name: self.database(name, create=False), self.jobs, faces, self.analyses.start, self.image
        )

    # -- databases -------------------------------------------------------------------------------

    def database(self, name: str, *, create: bool) -> ImageDatabase:
        """The open database ``name`` (opened with this model; ``ModelMismatch`` if built by another)."""
        from isearchd.store import validate_db_name

        name = validate_db_name(name)
        with self._db_lock:
            db = self._dbs.get(name)
            if db is None:
                db = self.store.open(name, model_key=self.model.key, dim=self.model.dim, create=create)
                self._dbs[name] = db
                log.info("opened database %r (%d images)", name, db.count_files())
                self.analyses.start(db)  # photos some analysis has not read (at its version)
            return db

    def _any_database(self, name: str) -> tuple[ImageDatabase, bool]:
        """Open ``name`` whatever model built it (info, clear). Returns (db, whether to close it after)."""
        from isearchd.store import validate_db_name

        name = validate_db_name(name)
        with self._db_lock:
            db = self._dbs.get(name)
            if db is not None:
                return db, False
            db = self.store.open(name, model_key=None, dim=None, create=False)
            if db.model_key == self.model.key:
                self._dbs[name] = db
                return db, False
            return db, True

    def list_dbs(self) -> list[str]:
        return self.store.names()

    def watched_folders(self, name: str) -> list[WatchedFolder]:
        """The folders database ``name`` watches on this machine, read without opening it."""
        return self.store.watched_folders(name)

    def db_info(self, name: str) -> DbInfo:
        db, close = self._any_database(name)
        try:
            info = db.info()
        finally:
            if close:
                db.close()
        return msgspec.structs.replace(info, loaded=name in self._dbs)

    def image(self, name: str, image_id: int) -> ImageInfo:
        """One image of a database by id: label, path, size, mtime_ns, content hash and what the
        photo says of itself (``NotFound`` for an id the database does not hold)."""
        record = self.database(name, create=False).record_by_id(image_id)
        if record is None:
            raise NotFound(f"database {name!r} has no image with id {image_id}")
        return ImageInfo(
            id=image_id,
            label=record.label,
            path=record.path,
            host=record.host,
            bytes=record.size,
            mtime_ns=record.mtime_ns,
            hash=record.content_hash,
            **msgspec.structs.asdict((record.info or PhotoInfo()).facts()),
        )

    def unchanged(self, name: str, files: Sequence[tuple[str, int, int]]) -> list[str]:
        """Labels of ``(label, size, mtime_ns)`` already stored with that size and mtime.

        Lets a remote client skip uploading files the daemon would skip anyway. A database that
        does not exist (yet) has none; one built by another model is a ``ModelMismatch``, as the
        add that follows would be.
        """
        try:
            db = self.database(name, create=False)
        except NotFound:
            return []
        out = []
        for label, size, mtime_ns in files:
            record = db.get(label)
            if record is not None and record.size == size and record.mtime_ns == mtime_ns:
                out.append(label)
        return out

    def clear_db(self, name: str) -> bool:
        db, close = self._any_database(name)

        def job() -> None:  # a write like any other: through the one queue
            try:
                db.clear()
                db.save_index()
            finally:
                if close:
                    db.close()

        self.jobs.run(job, f"clear {db.name}")
        log.warning("cleared database %r", name)
        return True

    # -- add -------------------------------------------------------------------------------------

    def add_paths(
        self,
        db_name: str,
        paths: Sequence[str],
        *,
        label_type: str = "path",
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> AddReport:
        """Add image files and folders (daemon-side paths, recursively)."""
        if label_type not in LABEL_TYPES:
            raise InvalidRequest(f"label type must be 'path' or 'name', not {label_type!r}")
        # (the protocol checked that every path is an absolute name; callers in this process pass
        # what they scanned)
        found = scan(paths)
        items = [AddItem(label=label_for(f, label_type), path=f) for f in found.files]
        failed = [(e.path, e.reason) for e in found.errors]
        return AddReport(failed=failed).merged(self._run_add(db_name, items, progress, cancel, len(failed)))

    def add_files(
        self,
        db_name: str,
        items: Sequence[AddItem],
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> AddReport:
        """Add files whose bytes a (remote) client sent."""
        return self._run_add(db_name, items, progress, cancel, 0)

    def _run_add(
        self,
        db_name: str,
        items: Sequence[AddItem],
        progress: ProgressFn | None,
        cancel: threading.Event | None,
        failed_before: int,
    ) -> AddReport:
        db = self.database(db_name, create=True)

        def job() -> AddReport:  # in the job queue's one worker: the only writer of any database
            t0 = time.monotonic()

            def shifted(p: Progress) -> None:
                if progress is not None:
                    progress(
                        Progress(
                            p.done + failed_before,
                            p.total + failed_before,
                            p.added,
                            p.skipped,
                            p.failed + failed_before,
                        )
                    )

            report = self._indexer(db).run(items, progress=shifted, cancel=cancel)
            dt = time.monotonic() - t0
            log.info(
                "add to %r: %d added, %d skipped, %d failed in %.1f s",
                db.name,
                report.added,
                report.skipped,
                len(report.failed),
                dt,
            )
            return report

        result: AddReport = self.jobs.run(job, f"add to {db.name}")
        self.analyses.start(db)
        return result

    def _indexer(self, db: ImageDatabase) -> Indexer:
        return Indexer(
            self.model,
            db,
            batch_size=self.batch_size,
            places=self.places,
            gate=self.gate,
            analyses=self.analyses,
            video=self.video,
        )

    def index_paths(
        self, db: ImageDatabase, paths: Sequence[str], cancel: threading.Event | None
    ) -> AddReport:
        """Index daemon-side files labelled by their path (watched folders; runs in the worker)."""
        items = [AddItem(label=p, path=p) for p in paths]
        report = self._indexer(db).run(items, cancel=cancel)
        if report.added:
            self.analyses.start(db)
        return report

    # -- migrate ---------------------------------------------------------------------------------

    def migrate(
        self,
        name: str,
        *,
        to: str | None = None,
        source: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Migrated:
        """Copy database ``name`` from the embedded store under the data home to the store at URL
        ``to``, or from the store at URL ``source`` into the embedded store (``engine.migrate``).
        The source is left intact."""
        from isearchd.store import validate_db_name

        validate_db_name(name)

        def open_handle(
            store: Store, name: str, *, model: str | None, dim: int | None, create: bool
        ) -> Handle:
            if store is self.store:  # one handle per database in a process: the engine's own
                with self._db_lock:
                    if name in self._dbs:
                        return Handle(self._dbs[name], owned=False)
            return Handle(store.open(name, model_key=model, dim=dim, create=create), owned=True)

        plan = plan_migration(self.store, self.home, self._open_url, to, source)
        result: Migrated = self.jobs.run(
            lambda: plan.run(name, open_handle, progress, cancel), f"migrate {name}"
        )
        log.info("migrated %r from %s to %s: %d images", name, result.source, result.to, result.copied)
        return result

    # -- search / compare ------------------------------------------------------------------------

    def search(self, db_name: str, query: SearchQuery) -> list[SearchHit]:
        """A combined, filtered search: the exact top ``num`` of the images that pass the filters,
        by similarity to the weighted sum of the query's parts; then ordered as ``sort`` says."""
        check_query(query.num, query.similarity)
        if query.sort not in SORTS:
            raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}, not {query.sort!r}")
        if not query.terms and not query.filters.people and query.filters.words is None:
            raise InvalidRequest("a search needs a text, an image or an image of the database")
        with self.gate.query():  # the whole search goes first: background work waits, workers are held
            return self._search(db_name, query)

    def _search(self, db_name: str, query: SearchQuery) -> list[SearchHit]:
        db = self.database(db_name, create=False)
        if query.filters.people:
            self.people.check_names(db, query.filters.people)
        raws_beside = raws_beside_in(db)
        if not query.terms:
            return top_folded(lambda k: listing(db, replace(query, num=k)), query.num, raws_beside, once)
        vectors = [self.queries.term_vector(db, t) for t in query.terms]
        vector = combine(vectors, [t.weight for t in query.terms])

        def fetch(k: int) -> list[SearchHit]:
            f = query.filters
            return db.search(vector, k=k, min_similarity=query.similarity, filters=f, details=True)

        # each video once, at its best moment; a RAW+JPEG pair as one result
        hits = top_folded(fetch, query.num, raws_beside, once)
        if query.sort != "similarity":
            dated = [h for h in hits if h.info.taken_local]
            dated.sort(key=lambda h: h.info.taken_local or "", reverse=query.sort == "newest")
            hits = dated + [h for h in hits if not h.info.taken_local]
        return hits

    def words_of(self, db_name: str, ids: Sequence[int]) -> dict[int, str]:
        """The text read in these images ("" when none was found; unread ones are left out)."""
        return words_store(self.database(db_name, create=False)).words_of(ids)

    def compare(
        self, a: str | bytes, b: str | bytes, *, a_name: str | None = None, b_name: str | None = None
    ) -> float:
        """Similarity of two images in percent, 0-100, one decimal (an image with itself: 100.0)."""
        for image, name in ((a, a_name), (b, b_name)):
            shown = name or (image if isinstance(image, str) else None)
            if shown is not None and is_video_name(shown):
                raise InvalidRequest(
                    f"{shown} is a video: cmp compares two photos (search for a video's moments with "
                    "`isearch search`)"
                )
        return self.queries.compare(a, b, a_name=a_name, b_name=b_name)

    def dups(self, db_name: str, rules: DupRules, within: str | None = None) -> list[DupGroup]:
        """Groups of near-duplicates of a database, or of its images below the folder ``within``."""
        return find_groups(self.database(db_name, create=False), rules, within)

    # -- lifecycle -------------------------------------------------------------------------------

    def status(self) -> EngineStatus:
        import psutil

        with self._db_lock:
            loaded = sorted(self._dbs)
        progress = self.analyses.progress()
        return EngineStatus(
            pid=os.getpid(),
            rss_bytes=psutil.Process().memory_info().rss,
            model=self.model.key,
            dim=self.model.dim,
            home=str(self.home),
            databases=loaded,
            uptime_s=round(time.time() - self.started, 1),
            queue=len(self.jobs),
            metadata=progress.pop("metadata", {}),
            looks=progress.pop("looks", {}),
            analyses=progress,
        )

    def save(self) -> None:
        """Write every open database's vector index (the catalog is already committed)."""
        with self._db_lock:
            dbs = list(self._dbs.values())
        for db in dbs:
            try:
                db.save_index()
            except Exception:  # one failing index must not stop the others from saving
                log.exception("could not save the index of %r (it is rebuilt from the catalog)", db.name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.analyses.close()
        if self.people.faces is not None:
            self.people.faces.close()  # the face models' memory
        if self.words is not None:
            self.words.close()  # the text workers
        self.jobs.close(timeout=60)
        self.save()
        with self._db_lock:
            dbs = list(self._dbs.values())
            self._dbs.clear()
        for db in dbs:
            try:
                db.close()
            except Exception:  # keep closing the rest
                log.exception("error closing database %r", db.name)
        self.store.close()
