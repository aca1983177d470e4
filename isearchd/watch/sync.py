"""Keep one watched folder's database in sync: the folder's own thread and the jobs it submits.

- ``FolderSync`` runs on the folder's thread: schedules the observer (``ObserverLink``),
  reconciles (walk and compare with the catalog), drains the observer's events into the
  ``EventTranslator`` and submits one job at a time. It alone touches the translator and the job;
  a failure is reported in the folder's state and retried after ``retry_s``.
- ``BatchWorker`` runs in the engine's indexing worker: applies one batch (``apply_batch``) and
  records its outcome in the folder's ``FolderStatus``, even when the batch fails half-way.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent

from isearchd.errors import Busy, ISearchError
from isearchd.watch.apply import Applied, apply_batch
from isearchd.watch.debounce import Debouncer
from isearchd.watch.events import Batch, EventTranslator, RootGone
from isearchd.watch.options import MAX_ERRORS_SHOWN, WatchOptions, inotify_watch_limit
from isearchd.watch.pathfilter import PathFilter
from isearchd.watch.reconcile import WalkStopped, diff, walk_folder

if TYPE_CHECKING:
    from isearchd.engine.jobqueue import Job
    from isearchd.watch.host import FolderHost
    from isearchd.watch.observe import ObserverLink
    from isearchd.watch.status import FolderStatus

log = logging.getLogger(__name__)


class BatchWorker:
    """The job a folder submits, run by the indexing worker: apply a batch, record its outcome."""

    def __init__(
        self,
        host: FolderHost,
        status: FolderStatus,
        flt: PathFilter,
        db_name: str,
        stop: threading.Event,
    ) -> None:
        self._host = host
        self._status = status
        self._filter = flt
        self._db_name = db_name
        self._stop = stop

    def apply(self, batch: Batch) -> None:
        """Apply ``batch``; what committed is counted even on error."""
        db = self._host.database(self._db_name, create=True)
        applied = Applied()
        try:
            apply_batch(db, batch, self._filter, self._host.index_paths, self._stop, into=applied)
        finally:
            self._status.record(applied)


class FolderSync:
    """The folder's thread: reconcile, then events into batches, one job at a time."""

    def __init__(
        self,
        host: FolderHost,
        link: ObserverLink,
        status: FolderStatus,
        options: WatchOptions,
        flt: PathFilter,
        db_name: str,
        root: str,
        events: queue.SimpleQueue[FileSystemEvent],
        stop: threading.Event,
    ) -> None:
        self.root = root
        self._host = host
        self._link = link
        self._status = status
        self._options = options
        self._filter = flt
        self._db_name = db_name
        self._events = events
        self._stop = stop
        self._worker = BatchWorker(host, status, flt, db_name, stop)
        self._changes = EventTranslator(self.root, flt, Debouncer(options.settle_s), self._walk_new)
        self._job: Job | None = None
        self._job_size = 0
        self._final_job = False
        self._reconciling = False
        self._rescan_at: float | None = None
        self._scan_started = time.monotonic()

    @property
    def pending(self) -> int:
        """Changes seen and not yet applied (a snapshot of lengths; any thread)."""
        return self._changes.pending + self._job_size

    def run(self) -> None:
        """The thread's body: until ``stop`` is set, whatever fails is retried."""
        while not self._stop.is_set():
            try:
                if not Path(self.root).is_dir():
                    raise RootGone(self.root)
                self._link.schedule()
                self._reconcile()
                self._loop()
            except RootGone:
                self._fail(f"folder not found: {self.root} (its images are kept; retrying)")
                log.warning(
                    "watched folder %s (db %r) is missing; retrying every %.0f s",
                    self.root,
                    self._db_name,
                    self._options.retry_s,
                )
                self._stop.wait(self._options.retry_s)
            except WalkStopped:
                break
            except ISearchError as e:
                self._fail(e.message)
                log.error("watched folder %s (db %r): %s", self.root, self._db_name, e.message)
                self._stop.wait(self._options.retry_s)
            except Exception as e:  # one folder's failure must not end the daemon; the log has it
                self._fail(f"{type(e).__name__}: {e}")
                log.exception("watched folder %s (db %r) failed; retrying", self.root, self._db_name)
                self._stop.wait(self._options.retry_s)
        self._finish_job()

    def _fail(self, reason: str) -> None:
        self._link.unschedule()
        self._finish_job()
        self._status.set_state("error", reason)

    # -- reconcile -------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        self._status.set_state("scanning")
        t0 = time.monotonic()
        walked = walk_folder(self.root, self._filter, self._stop)
        self._status.rescanned(walked.unreadable, walked.bad_files)
        for path, reason in walked.bad_files[:MAX_ERRORS_SHOWN]:
            log.warning("watched folder %s: cannot index %r: %s", self.root, path, reason)
        for folder, reason in walked.unreadable[:MAX_ERRORS_SHOWN]:
            log.warning(
                "watched folder %s: cannot read %s (%s); its images are kept", self.root, folder, reason
            )
        if self._status.mode == "inotify":
            limit = inotify_watch_limit()
            if limit is not None and walked.folders > limit:
                self._link.switch_to_polling(
                    f"{walked.folders} folders exceed fs.inotify.max_user_watches ({limit}); raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288`"
                )
        db = self._host.database(self._db_name, create=True)
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
            self._status.set_reason(reason)
            log.warning("watch %s (db %r): %s", self.root, self._db_name, reason)
        self._changes.reconcile(d.to_index, vanished)
        self._status.set_unchanged(d.unchanged)
        dt = time.monotonic() - t0
        log.info(
            "watch %s (db %r): %d files, %d unchanged, %d to index, %d vanished (walk+compare %.2f s)",
            self.root,
            self._db_name,
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
        state = self._status.in_sync(seconds)
        log.info("watch %s (db %r): in sync (%s) after %.2f s", self.root, self._db_name, state, seconds)

    def _walk_new(self, folder: str) -> list[str]:
        """The files below a folder that appeared; its problems join the folder's."""
        try:
            walked = walk_folder(folder, self._filter, self._stop)
        except WalkStopped:
            return []
        self._status.walked(walked.unreadable, walked.bad_files)
        return list(walked.files)

    # -- event loop and jobs ---------------------------------------------------------------------

    def _loop(self) -> None:
        opts = self._options
        while not self._stop.is_set():
            wait = opts.tick_s
            due = self._changes.next_check_in()
            if due is not None:
                wait = min(wait, max(0.01, due))
            self._drain(wait)
            self._link.check_root()
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
                    self._job = self._host.jobs.submit(
                        partial(self._worker.apply, batch), f"watch {self.root}"
                    )
                elif final:
                    self._reconciled()
            if self._reconciling:
                self._status.set_state("scanning")

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
                self._db_name,
                e.message,
                self._options.retry_s,
            )
            self._rescan_at = time.monotonic() + self._options.retry_s
        except Exception:  # the folder goes on: a rescan after retry_s repairs what the batch missed
            log.exception("watch %s (db %r): a batch failed; rescanning", self.root, self._db_name)
            self._rescan_at = time.monotonic() + self._options.retry_s
        if final:
            self._reconciled()


def _is_empty(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False
