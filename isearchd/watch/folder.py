"""One watched folder: its thread, observer, reconcile and job lifecycle.

See ``isearchd.watch.watcher`` for the whole picture. ``FolderWatch`` is the thread shell around
two pure parts: ``events.EventTranslator`` turns observer events and reconcile results into
batches of operations, and ``apply.apply_batch`` applies a batch to the database in the indexing
worker. It depends on protocols (``host``), never on the ``Watcher`` that owns it.

Threads:

- the folder's own: schedules the observer, reconciles, drains events into the translator and
  submits one job at a time; it alone touches the translator and the job;
- the observer's: only puts events on a queue (``_Forward``), never blocks;
- the indexing worker: runs the job (``_apply``) and records its outcome.

Counts, errors, failed files and state are shared with the worker and with client threads
(``describe``, ``failures``): they are guarded by ``_lock``.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from isearchd.errors import Busy, ISearchError
from isearchd.messages import FolderState
from isearchd.watch.apply import Applied, apply_batch
from isearchd.watch.debounce import Debouncer
from isearchd.watch.events import Batch, EventTranslator, RootGone
from isearchd.watch.options import (
    INOTIFY_EXHAUSTED,
    MAX_ERRORS_SHOWN,
    MAX_FAILURES_KEPT,
    NETWORK_FS,
    WatchOptions,
    filesystem_type,
    inotify_watch_limit,
)
from isearchd.watch.pathfilter import PathFilter
from isearchd.watch.reconcile import WalkStopped, diff, walk_folder

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from isearchd.engine.jobqueue import Job
    from isearchd.watch.host import FolderHost, Observers

log = logging.getLogger(__name__)


class FolderWatch:
    """One watched folder of one database; runs its own thread.

    ``state``, ``mode`` and ``reason`` are written by the folder's thread (under ``_lock``) and
    may be read from any thread."""

    def __init__(
        self,
        host: FolderHost,
        observers: Observers,
        options: WatchOptions,
        db_name: str,
        root: str,
        exclude: Sequence[str],
        source: str,
    ) -> None:
        self.db_name = db_name
        self.root = root
        self.exclude = tuple(exclude)
        self.source = source
        self.filter = PathFilter(root, self.exclude)
        self.options = options
        self._host = host
        self._observers = observers
        self._lock = threading.Lock()
        # -- shared (guarded by _lock) --
        self.mode = "inotify"
        self.state = "starting"
        self.reason = ""  # why polling / what the error is
        self._errors: list[tuple[str, str]] = []  # (folder, reason): folders that cannot be read
        self._counts = {"indexed": 0, "unchanged": 0, "moved": 0, "removed": 0, "failed": 0}
        self._scan_seconds: float | None = None
        self._failures: dict[str, str] = {}  # files that could not be indexed: path -> reason
        self._failures_extra = 0
        self._last_failure: tuple[str, str] | None = None
        # -- the folder's thread only --
        self._events: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
        self._handler = _Forward(self._events)
        self._changes = EventTranslator(root, self.filter, Debouncer(options.settle_s), self._walk_new)
        self._job: Job | None = None
        self._job_size = 0
        self._final_job = False
        self._reconciling = False
        self._rescan_at: float | None = None
        self._scan_started = time.monotonic()
        self._root_id: tuple[int, int] | None = None
        self._root_checked = 0.0
        self._scheduled: tuple[BaseObserver, ObservedWatch] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"isearch-watch-{root}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread (and a running batch, at its next boundary) to stop; returns at once."""
        self._stop.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._unschedule()

    def uses_watch(self, observer: BaseObserver, watch: ObservedWatch) -> bool:
        """Whether this folder's handler is scheduled on ``observer`` for ``watch``."""
        scheduled = self._scheduled
        return scheduled is not None and scheduled[0] is observer and scheduled[1] == watch

    @property
    def pending(self) -> int:
        """Changes seen and not yet applied (a snapshot of lengths; any thread)."""
        return self._changes.pending + self._job_size

    def describe(self, images: int | None) -> FolderState:
        pending = self.pending
        with self._lock:
            return FolderState(
                path=self.root,
                db=self.db_name,
                state=self.state,
                mode=self.mode,
                reason=self.reason,
                images=images,
                pending=pending,
                exclude=list(self.exclude),
                source=self.source,
                errors=self._errors[:MAX_ERRORS_SHOWN],
                error_count=len(self._errors),
                failed_files=len(self._failures) + self._failures_extra,
                last_failure=self._last_failure,
                scan_seconds=self._scan_seconds,
                **self._counts,
            )

    def _set_state(self, state: str, reason: str | None = None) -> None:
        with self._lock:
            self.state = state
            if reason is not None:
                self.reason = reason

    def _set_reason(self, reason: str) -> None:
        with self._lock:
            self.reason = reason

    def _set_mode(self, mode: str, reason: str) -> None:
        with self._lock:
            self.mode = mode
            self.reason = reason

    # -- files that failed -----------------------------------------------------------------------

    def failures(self) -> list[tuple[str, str]]:
        """The files below the folder that could not be indexed, with the reason, by path."""
        with self._lock:
            return sorted(self._failures.items())

    def failure_count(self) -> int:
        with self._lock:
            return len(self._failures) + self._failures_extra

    def _note_results(self, tried: Sequence[str], failed: Sequence[tuple[str, str]]) -> None:
        """Forget the failures of ``tried`` files that went through; remember the new ones."""
        with self._lock:
            self._note_results_locked(tried, failed)

    def _note_results_locked(self, tried: Sequence[str], failed: Sequence[tuple[str, str]]) -> None:
        for path in tried:
            self._failures.pop(path, None)
        for path, reason in failed:
            if path in self._failures or len(self._failures) < MAX_FAILURES_KEPT:
                self._failures[path] = reason
            else:
                self._failures_extra += 1
        if failed:
            self._last_failure = failed[-1]
        elif not self._failures:
            self._last_failure = None

    def _record(self, applied: Applied) -> None:
        """A batch's outcome (indexing worker)."""
        with self._lock:
            self._counts["moved"] += applied.moved
            self._counts["removed"] += applied.removed
            self._counts["indexed"] += applied.indexed
            self._counts["failed"] += len(applied.failed)
            for path in applied.gone:
                self._failures.pop(path, None)
            for folder in applied.gone_folders:
                below = folder.rstrip("/") + "/"
                for path in [p for p in self._failures if p.startswith(below)]:
                    del self._failures[path]
            if applied.tried:
                self._note_results_locked(applied.tried, applied.failed)

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not Path(self.root).is_dir():
                    raise RootGone(self.root)
                self._schedule()
                self._reconcile()
                self._loop()
            except RootGone:
                self._unschedule()
                self._finish_job()
                self._set_state("error", f"folder not found: {self.root} (its images are kept; retrying)")
                log.warning(
                    "watched folder %s (db %r) is missing; retrying every %.0f s",
                    self.root,
                    self.db_name,
                    self.options.retry_s,
                )
                self._stop.wait(self.options.retry_s)
            except WalkStopped:
                break
            except ISearchError as e:
                self._unschedule()
                self._finish_job()
                self._set_state("error", e.message)
                log.error("watched folder %s (db %r): %s", self.root, self.db_name, e.message)
                self._stop.wait(self.options.retry_s)
            except Exception as e:  # one folder's failure must not end the daemon; the log has it
                self._unschedule()
                self._finish_job()
                self._set_state("error", f"{type(e).__name__}: {e}")
                log.exception("watched folder %s (db %r) failed; retrying", self.root, self.db_name)
                self._stop.wait(self.options.retry_s)
        self._finish_job()

    # -- observers -------------------------------------------------------------------------------

    def _root_identity(self) -> tuple[int, int] | None:
        try:
            st = Path(self.root).stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None

    def _check_root(self) -> None:
        """The folder itself moved, was deleted or unmounted (inotify says nothing of the first)."""
        now = time.monotonic()
        if now - self._root_checked < self.options.retry_s:
            return
        self._root_checked = now
        if self._root_identity() != self._root_id:
            raise RootGone(self.root)

    def _schedule(self) -> None:
        if self._scheduled is not None:
            return
        self._root_id = self._root_identity()
        self._root_checked = time.monotonic()
        fstype = filesystem_type(self.root)
        reason = ""
        if self.options.force_polling:
            reason = "polling forced (ISEARCH_WATCH_POLLING)"
        elif fstype in NETWORK_FS:
            reason = f"network file system ({fstype}): inotify does not report changes made elsewhere"
        if not reason:
            try:
                observer = self._observers.observer("inotify")
                watch = observer.schedule(
                    self._handler, self.root, recursive=True, event_filter=_event_filter()
                )
                self._scheduled = (observer, watch)
                self._set_mode("inotify", "")
                return
            except OSError as e:
                if e.errno not in INOTIFY_EXHAUSTED:
                    raise _root_error(self.root, e) from None
                reason = (
                    f"inotify limit reached ({e.strerror or e}); raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288` (and max_user_instances)"
                )
        self._schedule_polling(reason)

    def _schedule_polling(self, reason: str) -> None:
        observer = self._observers.observer("polling")
        try:
            watch = observer.schedule(self._handler, self.root, recursive=True, event_filter=_event_filter())
        except OSError as e:
            raise _root_error(self.root, e) from None
        self._scheduled = (observer, watch)
        self._set_mode("polling", reason)
        log.warning(
            "watching %s (db %r) by polling every %.1f s: %s",
            self.root,
            self.db_name,
            self.options.poll_interval_s,
            reason,
        )

    def _switch_to_polling(self, reason: str) -> None:
        if self.mode == "polling":
            return
        self._unschedule()
        self._schedule_polling(reason)

    def _unschedule(self) -> None:
        if self._scheduled is None:
            return
        observer, watch = self._scheduled
        self._scheduled = None
        try:
            if self._observers.shares_watch(self, observer, watch):
                # the same folder watched for another database: only this handler goes
                observer.remove_handler_for_watch(self._handler, watch)
            else:
                observer.unschedule(watch)
        except (KeyError, OSError, RuntimeError):
            log.debug("unscheduling %s", self.root, exc_info=True)

    # -- reconcile -------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        self._set_state("scanning")
        t0 = time.monotonic()
        walked = walk_folder(self.root, self.filter, self._stop)
        with self._lock:
            self._errors = list(walked.unreadable)
            self._failures.clear()
            self._failures_extra = 0
            self._note_results_locked((), walked.bad_files)
        for path, reason in walked.bad_files[:MAX_ERRORS_SHOWN]:
            log.warning("watched folder %s: cannot index %r: %s", self.root, path, reason)
        for folder, reason in walked.unreadable[:MAX_ERRORS_SHOWN]:
            log.warning(
                "watched folder %s: cannot read %s (%s); its images are kept", self.root, folder, reason
            )
        if self.mode == "inotify":
            limit = inotify_watch_limit()
            if limit is not None and walked.folders > limit:
                self._switch_to_polling(
                    f"{walked.folders} folders exceed fs.inotify.max_user_watches ({limit}); raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288`"
                )
        db = self._host.database(self.db_name, create=True)
        records = ((r.label, r.path, r.size, r.mtime_ns) for r in db.records(self.root))
        d = diff(walked, records)
        vanished = d.vanished
        if d.vanished and not walked.files and _is_empty(self.root):
            # An empty folder that had images is more likely an unmounted drive than a deliberate
            # wipe (deletes made while the daemon runs are applied live, not here): keep them.
            vanished = []
            reason = (
                f"the folder is empty but {len(d.vanished)} images were indexed below it (unmounted "
                "drive?); they are kept: `isearch unwatch --purge` removes them"
            )
            self._set_reason(reason)
            log.warning("watch %s (db %r): %s", self.root, self.db_name, reason)
        self._changes.reconcile(d.to_index, vanished)
        with self._lock:
            self._counts["unchanged"] = d.unchanged
        dt = time.monotonic() - t0
        log.info(
            "watch %s (db %r): %d files, %d unchanged, %d to index, %d vanished (walk+compare %.2f s)",
            self.root,
            self.db_name,
            len(walked.files),
            d.unchanged,
            len(d.to_index),
            len(d.vanished),
            dt,
        )
        self._scan_started = t0
        self._reconciling = True

    def _reconciled(self) -> None:
        self._reconciling = False
        seconds = round(time.monotonic() - self._scan_started, 3)
        with self._lock:
            self._scan_seconds = seconds
            self.state = "polling" if self.mode == "polling" else "watching"
        log.info("watch %s (db %r): in sync (%s) after %.2f s", self.root, self.db_name, self.state, seconds)

    def _walk_new(self, folder: str) -> list[str]:
        """The files below a folder that appeared; its problems join the folder's."""
        try:
            walked = walk_folder(folder, self.filter, self._stop)
        except WalkStopped:
            return []
        with self._lock:
            self._errors.extend(walked.unreadable)
            self._note_results_locked((), walked.bad_files)
        return list(walked.files)

    # -- event loop and jobs ---------------------------------------------------------------------

    def _loop(self) -> None:
        opts = self.options
        while not self._stop.is_set():
            wait = opts.tick_s
            due = self._changes.next_check_in()
            if due is not None:
                wait = min(wait, max(0.01, due))
            self._drain(wait)
            self._check_root()
            if self._job is not None and self._job.done.is_set():
                self._finish_job()
            if self._job is None and self._rescan_at is not None and time.monotonic() >= self._rescan_at:
                self._rescan_at = None
                self._reconcile()
            if self._job is None:
                batch, final = self._changes.take_batch(opts.reconcile_chunk)
                if len(batch):
                    self._job_size = len(batch)
                    self._final_job = final
                    self._job = self._host.jobs.submit(partial(self._apply, batch), f"watch {self.root}")
                elif final:
                    self._reconciled()
            if self._reconciling:
                self._set_state("scanning")

    def _drain(self, wait: float) -> None:
        try:
            event = self._events.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            self._changes.feed(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _finish_job(self) -> None:
        job, self._job = self._job, None
        final, self._final_job = self._final_job, False
        self._job_size = 0
        if job is None:
            return
        try:
            job.wait()
        except Busy:
            return  # shutting down
        except ISearchError as e:
            log.error(
                "watch %s (db %r): %s; rescanning in %.0f s",
                self.root,
                self.db_name,
                e.message,
                self.options.retry_s,
            )
            self._rescan_at = time.monotonic() + self.options.retry_s
        except Exception:  # the folder goes on: a rescan after retry_s repairs what the batch missed
            log.exception("watch %s (db %r): a batch failed; rescanning", self.root, self.db_name)
            self._rescan_at = time.monotonic() + self.options.retry_s
        if final:
            self._reconciled()

    def _apply(self, batch: Batch) -> None:
        """The job (indexing worker): apply ``batch``; what committed is counted even on error."""
        db = self._host.database(self.db_name, create=True)
        applied = Applied()
        try:
            apply_batch(db, batch, self.filter, self._host.index_paths, self._stop, into=applied)
        finally:
            self._record(applied)


class _Forward(FileSystemEventHandler):
    """Hands observer events to a folder's thread (the observer thread must never block)."""

    def __init__(self, events: queue.SimpleQueue[FileSystemEvent]) -> None:
        self.events = events

    def dispatch(self, event: FileSystemEvent) -> None:
        self.events.put(event)


def _event_filter() -> list[type[FileSystemEvent]]:
    return [
        FileCreatedEvent,
        DirCreatedEvent,
        FileModifiedEvent,
        FileClosedEvent,
        FileMovedEvent,
        DirMovedEvent,
        FileDeletedEvent,
        DirDeletedEvent,
    ]


def _is_empty(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False


def _root_error(root: str, e: OSError) -> ISearchError:
    if isinstance(e, PermissionError):
        return ISearchError(f"cannot watch {root}: permission denied")
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return ISearchError(f"cannot watch {root}: no such folder")
    return ISearchError(f"cannot watch {root}: {e.strerror or e}")
