"""One watched folder: its observer, reconcile, event handling and the batches it applies.

See ``isearchd.watch.watcher`` for the whole picture; this module holds the per-folder machinery
(``FolderWatch``, one thread each) and its tuning (``WatchOptions``).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from isearchd.errors import Busy, InvalidRequest, ISearchError
from isearchd.watch.debounce import SETTLE_S, Debouncer
from isearchd.watch.pathfilter import PathFilter
from isearchd.watch.reconcile import WalkStopped, diff, walk_folder

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from isearchd.engine.jobqueue import Job
    from isearchd.watch.watcher import Watcher

log = logging.getLogger(__name__)

# How often a folder's thread drains events and hands settled files on. Bounds the latency it
# adds to a change (the settle interval dominates) and costs nothing when idle.
TICK_S = 0.2
# Polling observer interval: each poll stats every file below the folder (~10 ms per 1,000 files).
POLL_INTERVAL_S = 2.0
# Files per reconcile job. Small enough that an add or a live event waits at most one chunk
# (~10 s with ViT-45LY on 2 cores when everything must be embedded), large enough to batch well.
RECONCILE_CHUNK = 256
# A folder that is missing or unreadable is looked at again this often.
RETRY_S = 5.0
# inotify errors that mean "no more watches/instances": fall back to polling for that folder.
INOTIFY_EXHAUSTED = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
# File systems whose changes made elsewhere inotify never reports: polled.
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "fuse.sshfs",
        "sshfs",
        "fuse.rclone",
        "davfs",
        "fuse.davfs2",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "virtiofs",
    }
)
MAX_ERRORS_SHOWN = 5
# Files that failed to index, remembered per folder for `watch --errors` (path and reason, ~200
# bytes each); beyond this many only the count grows.
MAX_FAILURES_KEPT = 10_000


@dataclass(frozen=True)
class WatchOptions:
    """Tuning of the watcher. ``from_env`` reads ISEARCH_WATCH_POLLING (1: poll every folder),
    ISEARCH_WATCH_SETTLE_S and ISEARCH_WATCH_POLL_S (seconds)."""

    settle_s: float = SETTLE_S
    poll_interval_s: float = POLL_INTERVAL_S
    force_polling: bool = False
    tick_s: float = TICK_S
    reconcile_chunk: int = RECONCILE_CHUNK
    retry_s: float = RETRY_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WatchOptions:
        env = os.environ if environ is None else environ

        def number(var: str, default: float) -> float:
            raw = env.get(var, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise InvalidRequest(f"{var} must be a number of seconds, not {raw!r}") from None
            if not 0 < value <= 3600:
                raise InvalidRequest(f"{var} must be between 0 and 3600 seconds, not {raw!r}")
            return value

        polling = env.get("ISEARCH_WATCH_POLLING", "").strip().lower() in ("1", "true", "yes", "on")
        return cls(
            settle_s=number("ISEARCH_WATCH_SETTLE_S", SETTLE_S),
            poll_interval_s=number("ISEARCH_WATCH_POLL_S", POLL_INTERVAL_S),
            force_polling=polling,
        )


def filesystem_type(path: str) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        parts = left.split()
        if not sep or len(parts) < 5 or not right:
            continue
        mount = parts[4].replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, right.split()[0]
    return best_type


@dataclass
class _Batch:
    """Changes for one job, applied in this order: ``ops`` (moves and deletes, in event order),
    then ``index`` (settled files and a reconcile chunk), then ``vanished`` (rows of files the
    reconcile did not find)."""

    ops: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, src, dst)
    index: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops) + len(self.index) + len(self.vanished)


class _RootGone(Exception):
    pass


class FolderWatch:
    """One watched folder of one database; runs its own thread."""

    def __init__(
        self,
        watcher: Watcher,
        db_name: str,
        root: str,
        exclude: Sequence[str],
        source: str,
    ) -> None:
        self.watcher = watcher
        self.db_name = db_name
        self.root = root
        self.exclude = tuple(exclude)
        self.source = source
        self.filter = PathFilter(root, self.exclude)
        self.options = watcher.options
        self.mode = "inotify"
        self.state = "starting"
        self.reason = ""  # why polling / what the error is
        self.errors: list[tuple[str, str]] = []
        self.counts = {"indexed": 0, "unchanged": 0, "moved": 0, "removed": 0, "failed": 0}
        self.scan_seconds: float | None = None
        self.scans = 0
        # files below the folder that could not be indexed: path -> reason (the worker thread
        # writes, client threads read: guarded by _failures_lock)
        self._failures: dict[str, str] = {}
        self._failures_extra = 0
        self._last_failure: tuple[str, str] | None = None
        self._failures_lock = threading.Lock()
        self._events: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
        self._debouncer = Debouncer(self.options.settle_s)
        self._ops: list[tuple[str, str, str]] = []
        self._backlog: deque[str] = deque()
        self._vanished: list[str] | None = None
        self._job: Job | None = None
        self._job_size = 0
        self._stop = threading.Event()
        self._handler = _Forward(self._events)
        self._reconciling = False
        self._rescan_at: float | None = None
        self._final_job = False
        self._scan_started = time.monotonic()
        self._root_id: tuple[int, int] | None = None
        self._root_checked = 0.0
        self._scheduled: tuple[BaseObserver, ObservedWatch] | None = None
        self._thread = threading.Thread(target=self._run, name=f"isearch-watch-{root}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._unschedule()

    @property
    def pending(self) -> int:
        return len(self._debouncer) + len(self._backlog) + len(self._ops) + self._job_size

    def describe(self, images: int | None) -> dict[str, Any]:
        return {
            "path": self.root,
            "db": self.db_name,
            "state": self.state,
            "mode": self.mode,
            "reason": self.reason,
            "images": images,
            "pending": self.pending,
            "exclude": list(self.exclude),
            "source": self.source,
            "errors": [list(e) for e in self.errors[:MAX_ERRORS_SHOWN]],
            "error_count": len(self.errors),
            "failed_files": self.failure_count(),
            "last_failure": list(self._last_failure) if self._last_failure else None,
            "scan_seconds": self.scan_seconds,
            **self.counts,
        }

    # -- files that failed -----------------------------------------------------------------------

    def failures(self) -> list[tuple[str, str]]:
        """The files below the folder that could not be indexed, with the reason, by path."""
        with self._failures_lock:
            return sorted(self._failures.items())

    def failure_count(self) -> int:
        with self._failures_lock:
            return len(self._failures) + self._failures_extra

    def _note_results(self, tried: Sequence[str], failed: Sequence[tuple[str, str]]) -> None:
        """Forget the failures of ``tried`` files that went through; remember the new ones."""
        with self._failures_lock:
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

    def _forget_failures(self, paths: Sequence[str]) -> None:
        with self._failures_lock:
            for path in paths:
                self._failures.pop(path, None)

    def _set_state(self, state: str, reason: str | None = None) -> None:
        self.state = state
        if reason is not None:
            self.reason = reason

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not Path(self.root).is_dir():
                    raise _RootGone
                self._schedule()
                self._reconcile()
                self._loop()
            except _RootGone:
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
            raise _RootGone

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
                observer = self.watcher.observer("inotify")
                watch = observer.schedule(
                    self._handler, self.root, recursive=True, event_filter=_event_filter()
                )
                self._scheduled = (observer, watch)
                self.mode = "inotify"
                self.reason = ""
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
        observer = self.watcher.observer("polling")
        try:
            watch = observer.schedule(self._handler, self.root, recursive=True, event_filter=_event_filter())
        except OSError as e:
            raise _root_error(self.root, e) from None
        self._scheduled = (observer, watch)
        self.mode = "polling"
        self.reason = reason
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
            if self.watcher.shares_watch(self, observer, watch):
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
        self.errors = list(walked.unreadable)
        with self._failures_lock:
            self._failures.clear()
            self._failures_extra = 0
        self._note_results((), walked.bad_files)
        for path, reason in walked.bad_files[:MAX_ERRORS_SHOWN]:
            log.warning("watched folder %s: cannot index %r: %s", self.root, path, reason)
        for folder, reason in walked.unreadable[:MAX_ERRORS_SHOWN]:
            log.warning(
                "watched folder %s: cannot read %s (%s); its images are kept", self.root, folder, reason
            )
        if self.mode == "inotify":
            limit = _inotify_watch_limit()
            if limit is not None and walked.folders > limit:
                self._switch_to_polling(
                    f"{walked.folders} folders exceed fs.inotify.max_user_watches ({limit}); raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288`"
                )
        db = self.watcher.host.database(self.db_name, create=True)
        records = ((r.label, r.path, r.size, r.mtime_ns) for r in db.records(self.root))
        d = diff(walked, records)
        self._backlog = deque(d.to_index)
        self._vanished = d.vanished
        if d.vanished and not walked.files and _is_empty(self.root):
            # An empty folder that had images is more likely an unmounted drive than a deliberate
            # wipe (deletes made while the daemon runs are applied live, not here): keep them.
            self._vanished = []
            self.reason = (
                f"the folder is empty but {len(d.vanished)} images were indexed below it (unmounted "
                "drive?); they are kept: `isearch unwatch --purge` removes them"
            )
            log.warning("watch %s (db %r): %s", self.root, self.db_name, self.reason)
        self.counts["unchanged"] = d.unchanged
        self.scans += 1
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

    # -- event loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        opts = self.options
        while not self._stop.is_set():
            wait = opts.tick_s
            due = self._debouncer.next_check_in()
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
                batch, final = self._take_batch()
                if len(batch):
                    self._job_size = len(batch)
                    self._final_job = final
                    self._job = self.watcher.host.jobs.submit(
                        partial(self._apply, batch), f"watch {self.root}"
                    )
                elif final:
                    self._reconciled()
            if self._reconciling:
                self._set_state("scanning")

    def _reconciled(self) -> None:
        self._reconciling = False
        self.scan_seconds = round(time.monotonic() - self._scan_started, 3)
        self._set_state("polling" if self.mode == "polling" else "watching")
        log.info(
            "watch %s (db %r): in sync (%s) after %.2f s",
            self.root,
            self.db_name,
            self.state,
            self.scan_seconds,
        )

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

    def _drain(self, wait: float) -> None:
        try:
            event = self._events.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            self._on_event(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _take_batch(self) -> tuple[_Batch, bool]:
        """The next job's changes, and whether it completes the reconcile."""
        batch = _Batch(ops=self._ops)
        self._ops = []
        batch.index = self._debouncer.pop_ready()
        room = max(0, self.options.reconcile_chunk - len(batch.index))
        while self._backlog and room:
            batch.index.append(self._backlog.popleft())
            room -= 1
        final = False
        if self._reconciling and not self._backlog and self._vanished is not None:
            batch.vanished, self._vanished = self._vanished, None
            final = True
        return batch, final

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        dst = os.fsdecode(event.dest_path) if event.dest_path else ""
        flt = self.filter
        if event.is_directory:
            if kind == "deleted" or (kind == "moved" and not (dst and not flt.skip_dir(dst))):
                if src == self.root:
                    raise _RootGone
                if flt.contains(src):
                    self._debouncer.discard_prefix(src)
                    self._ops.append(("rmdir", src, ""))
            elif kind == "moved":
                if event.is_synthetic:
                    return  # covered by the move of its parent
                if flt.contains(src) and not flt.skip_dir(src):
                    self._debouncer.move_prefix(src, dst)
                    self._ops.append(("mvdir", src, dst))
                else:
                    self._touch_tree(dst)  # moved in from outside, or un-hidden
            elif kind == "created" and not event.is_synthetic and not flt.skip_dir(src):
                self._touch_tree(src)
            return
        if kind in ("created", "modified", "closed"):
            if event.is_synthetic and kind == "created":
                return  # the folder it came with is walked instead
            if flt.wants_file(src):
                self._debouncer.touch(src)
        elif kind == "deleted":
            self._debouncer.discard(src)
            if flt.contains(src):
                self._ops.append(("rm", src, ""))
        elif kind == "moved":
            if event.is_synthetic:
                return
            wanted = bool(dst) and flt.wants_file(dst)
            if src in self._debouncer:
                if wanted:
                    self._debouncer.move(src, dst)
                else:
                    self._debouncer.discard(src)
                return
            if wanted and flt.wants_file(src):
                self._ops.append(("mv", src, dst))
            elif wanted:
                self._debouncer.touch(dst)  # a temp or hidden name renamed to its final name
            elif flt.contains(src):
                self._ops.append(("rm", src, ""))

    def _touch_tree(self, folder: str) -> None:
        try:
            walked = walk_folder(folder, self.filter, self._stop)
        except WalkStopped:
            return
        for path in walked.files:
            self._debouncer.touch(path)
        self.errors.extend(walked.unreadable)
        self._note_results((), walked.bad_files)

    # -- applying a batch (runs in the indexing worker) -------------------------------------------

    def _apply(self, batch: _Batch) -> None:
        db = self.watcher.host.database(self.db_name, create=True)
        index: list[str] = []
        ops = batch.ops
        i = 0
        while i < len(ops):
            kind = ops[i][0]
            j = i
            while j < len(ops) and ops[j][0] == kind and kind in ("mv", "rm"):
                j += 1
            group = ops[i : max(j, i + 1)]
            i = max(j, i + 1)
            if kind == "mv":
                moved = db.rename([(s, d, None, None) for _, s, d in group])
                self.counts["moved"] += moved
                index.extend(d for _, _, d in group)  # a stat each: re-embeds only if the content changed
            elif kind == "rm":
                gone = [s for _, s, _ in group if not os.path.lexists(s)]
                self._forget_failures(gone)
                self.counts["removed"] += db.delete_labels(gone)
            elif kind == "rmdir":
                src = group[0][1]
                if not os.path.lexists(src):
                    self.counts["removed"] += db.delete_prefix(src)
                else:
                    gone = [
                        r.label for r in db.records(src) if r.label == r.path and not os.path.lexists(r.path)
                    ]
                    self.counts["removed"] += db.delete_labels(gone)
            elif kind == "mvdir":
                _, src, dst = group[0]
                self.counts["moved"] += db.move_prefix(src, dst)
        index.extend(batch.index)
        paths = [p for p in dict.fromkeys(index) if self.filter.wants_file(p)]
        if paths:
            report = self.watcher.host.index_paths(db, paths, self._stop)
            self.counts["indexed"] += report.added
            self.counts["failed"] += len(report.failed)
            self._note_results(paths, report.failed)
            for path, reason in report.failed[:MAX_ERRORS_SHOWN]:
                log.info("watch %s: not indexed: %r: %s", self.root, path, reason)
        if batch.vanished:
            gone = [p for p in batch.vanished if not os.path.lexists(p)]
            self.counts["removed"] += db.delete_labels(gone)


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


def _inotify_watch_limit() -> int | None:
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


def _root_error(root: str, e: OSError) -> ISearchError:
    if isinstance(e, PermissionError):
        return ISearchError(f"cannot watch {root}: permission denied")
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return ISearchError(f"cannot watch {root}: no such folder")
    return ISearchError(f"cannot watch {root}: {e.strerror or e}")
