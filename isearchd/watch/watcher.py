"""Watched folders: keep a database in sync with folders on disk.

One ``FolderWatch`` (``isearchd.watch.folder``) per (database, folder), each with its own thread
(events become operations in ``events``, batches reach the database through ``apply``):

1. schedule the folder on a watchdog observer: inotify (FSEvents on macOS), or a polling observer
   when inotify cannot take it (watch or instance limit reached: ``ENOSPC``/``EMFILE``), when the
   folder is on a network file system (whose changes inotify never hears of), or when polling is
   forced (``ISEARCH_WATCH_POLLING=1``). ``watch --list`` and the log say which.
2. reconcile: walk the folder (``reconcile.walk_folder``: stat only) and compare it with the
   catalog; new and changed files become a backlog, rows of vanished files are removed at the end.
   The observer runs already, so nothing that changes during the walk is missed.
3. live events, drained every ``TICK_S``: file writes wait in a ``Debouncer`` until they settle;
   renames and moves relabel rows (vectors kept, nothing decoded); deletes remove rows; a folder
   moved or deleted is one catalog operation (``Database.move_prefix`` / ``delete_prefix``), never
   one rescan per file; a folder moved in from outside is walked once.

Every change to the database is a job in the engine's single ``JobQueue`` (shared with ``add``).
A folder keeps at most one job queued and batches what arrives meanwhile into its next one, so a
burst of events costs few jobs and back-pressure never drops an event. Reconcile backlogs are fed
in chunks of ``RECONCILE_CHUNK`` files, so an ``add`` or a live event is never stuck behind a whole
huge folder, and searches run throughout (the writer lock is held per batch only).

Deletions are checked against the disk when they are applied (a file deleted and re-created is
not lost), a folder that disappears (unmounted drive) keeps its images and is retried every
``RETRY_S``, and folders that cannot be read are reported and their rows kept.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from isearchd.errors import Busy, InvalidRequest, ISearchError, NotFound
from isearchd.messages import FolderState, Unwatched, WatchFailure, WatchSummary
from isearchd.watch.folder import FolderWatch
from isearchd.watch.host import WatchHost
from isearchd.watch.options import WatchOptions

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

__all__ = ["FolderWatch", "WatchHost", "WatchOptions", "Watcher", "normalise_folder"]

log = logging.getLogger(__name__)


ObserverFactory = Callable[[], "BaseObserver"]


def _inotify_observer() -> BaseObserver:
    from watchdog.observers import Observer

    return Observer()


def normalise_folder(path: str) -> str:
    """``~`` expanded, absolute, ``..`` collapsed; symlinks kept (labels use the path given)."""
    return os.path.normpath(Path(path).expanduser().absolute())


class Watcher:
    """Every watched folder of the daemon, keyed by (database, folder)."""

    def __init__(
        self,
        host: WatchHost,
        options: WatchOptions | None = None,
        *,
        inotify_factory: ObserverFactory | None = None,
        polling_factory: ObserverFactory | None = None,
    ) -> None:
        self.host = host
        self.options = options or WatchOptions()
        self._factories: dict[str, ObserverFactory] = {
            "inotify": inotify_factory or _inotify_observer,
            "polling": polling_factory or self._polling_observer,
        }
        self._observers: dict[str, BaseObserver] = {}
        self._folders: dict[tuple[str, str], FolderWatch] = {}
        self._failed: dict[tuple[str, str], FolderState] = {}
        self._lock = threading.RLock()
        self._closed = False

    def _polling_observer(self) -> BaseObserver:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=self.options.poll_interval_s)

    def shares_watch(self, folder: object, observer: BaseObserver, watch: ObservedWatch) -> bool:
        """Whether another folder (same path, another database) uses the same observer watch."""
        with self._lock:
            others = [f for f in self._folders.values() if f is not folder]
        return any(f.uses_watch(observer, watch) for f in others)

    def observer(self, kind: str) -> BaseObserver:
        """The shared observer of ``kind`` ("inotify" or "polling"), started on first use.

        An inotify observer that cannot even be created (no inotify instance left) raises the
        ``OSError``, and the folder falls back to polling."""
        with self._lock:
            obs = self._observers.get(kind)
            if obs is None:
                obs = self._factories[kind]()
                obs.start()
                self._observers[kind] = obs
            return obs

    # -- starting ----------------------------------------------------------------------------------

    def start_folder(self, db_name: str, root: str, exclude: Sequence[str], source: str) -> FolderWatch:
        key = (db_name, root)
        with self._lock:
            if self._closed:
                raise Busy("the ImgSearch daemon is shutting down")
            old = self._folders.pop(key, None)
            self._failed.pop(key, None)
        if old is not None:
            old.stop()
        fw = FolderWatch(self.host, self, self.options, db_name, root, exclude, source)
        with self._lock:
            self._folders[key] = fw
        fw.start()
        log.info(
            "watching %s -> db %r (%s)%s",
            root,
            db_name,
            source,
            f", excluding {', '.join(exclude)}" if exclude else "",
        )
        return fw

    def start_all(
        self, configured: Sequence[tuple[str, str, Sequence[str]]], registered: Sequence[str]
    ) -> None:
        """At daemon start: folders from the config file ``(db, path, exclude)``, then the folders
        registered in each database of ``registered`` (names)."""
        for db_name, path, exclude in configured:
            self._start_or_record(db_name, normalise_folder(path), exclude, "config")
        for db_name in registered:
            try:
                folders = self.host.watched_folders(db_name)
            except ISearchError as e:
                # its folders cannot even be listed: say so in the log and in `watch --list`
                where = str(Path(self.host.home) / db_name)
                reason = f"the folders this database watches cannot be read, so none is watched: {e.message}"
                log.error("database %r: %s", db_name, reason)
                self._record_failure(db_name, where, (), "catalog", reason)
                continue
            for f in folders:
                if (db_name, f.path) not in self._folders:
                    self._start_or_record(db_name, f.path, list(f.exclude), "catalog")

    def _start_or_record(self, db_name: str, root: str, exclude: Sequence[str], source: str) -> None:
        try:
            self.host.database(db_name, create=True)
        except ISearchError as e:
            log.error("cannot watch %s for db %r: %s", root, db_name, e.message)
            self._record_failure(db_name, root, exclude, source, e.message)
            return
        self.start_folder(db_name, root, exclude, source)

    def _record_failure(
        self, db_name: str, root: str, exclude: Sequence[str], source: str, reason: str
    ) -> None:
        with self._lock:
            self._failed[(db_name, root)] = FolderState(
                path=root, db=db_name, state="error", mode="-", reason=reason, exclude=list(exclude),
                source=source,
            )  # fmt: skip

    # -- user operations ---------------------------------------------------------------------------

    def watch(self, db_name: str, paths: Sequence[str], exclude: Sequence[str]) -> list[FolderState]:
        roots = []
        for p in paths:  # absolute names (the protocol checked them)
            root = normalise_folder(p)
            if not Path(root).exists():
                raise NotFound(f"{p}: no such folder")
            if not Path(root).is_dir():
                raise InvalidRequest(
                    f"{p} is a file; watch takes folders (use `isearch add` for single files)"
                )
            if not os.access(root, os.R_OK | os.X_OK):
                raise InvalidRequest(f"{p}: permission denied (the daemon cannot read this folder)")
            roots.append(root)
        for e in exclude:
            if not isinstance(e, str) or not e.strip():
                raise InvalidRequest("watch: 'exclude' must be a list of non-empty glob strings")
        with self._lock:
            current = [k for k in self._folders if k[0] == db_name]
        for root in roots:
            for _, other in current:
                if other != root and (
                    root.startswith(other.rstrip("/") + "/") or other.startswith(root.rstrip("/") + "/")
                ):
                    inner, outer = (
                        (root, other) if root.startswith(other.rstrip("/") + "/") else (other, root)
                    )
                    raise InvalidRequest(
                        f"{inner} is inside {outer}, which database {db_name!r} already watches or would; "
                        f"watch only the outer folder (`isearch unwatch {other}` first if needed)"
                    )
            cfg = self._folders.get((db_name, root))
            if cfg is not None and cfg.source == "config":
                raise InvalidRequest(
                    f"{root} is watched from the config file; change its [[watch]] table there"
                )
        db = self.host.database(db_name, create=True)
        out = []
        for root in roots:
            db.add_folder(root, exclude)
            fw = self.start_folder(db_name, root, exclude, "catalog")
            out.append(fw.describe(db.count_below(root)))
        return out

    def unwatch(self, db_name: str, path: str, purge: bool = False) -> Unwatched:
        root = normalise_folder(path)
        with self._lock:
            fw = self._folders.get((db_name, root))
            failed = self._failed.get((db_name, root))
        source = fw.source if fw is not None else failed.source if failed is not None else None
        if source == "config":
            raise InvalidRequest(
                f"{root} is watched because the config file lists it; remove its [[watch]] table "
                "there and restart the service"
            )
        db = self.host.database(db_name, create=True)
        registered = db.remove_folder(root)
        if fw is None and failed is None and not registered:
            raise NotFound(f"database {db_name!r} does not watch {root} (see `isearch watch --list`)")
        with self._lock:
            self._folders.pop((db_name, root), None)
            self._failed.pop((db_name, root), None)
        if fw is not None:
            fw.stop()
        removed = 0
        if purge:
            removed = self.host.jobs.run(lambda: db.delete_prefix(root), f"unwatch {root}")
        log.info(
            "stopped watching %s (db %r)%s", root, db_name, f"; removed {removed} images" if purge else ""
        )
        return Unwatched(path=root, db=db_name, removed=removed)

    def folders(self, db_name: str | None = None) -> list[FolderState]:
        with self._lock:
            folders = list(self._folders.values())
            failed = list(self._failed.values())
        out = []
        for fw in folders:
            if db_name is not None and fw.db_name != db_name:
                continue
            try:
                images: int | None = self.host.database(fw.db_name, create=True).count_below(fw.root)
            except ISearchError:
                images = None
            out.append(fw.describe(images))
        out.extend(f for f in failed if db_name is None or f.db == db_name)
        return sorted(out, key=lambda f: (f.db, f.path))

    def failures(self, db_name: str | None = None, path: str | None = None) -> list[WatchFailure]:
        """Files of watched folders that could not be indexed, and why.

        ``path`` limits them to one watched folder, or to the files below a folder inside one."""
        below = None if path is None else normalise_folder(path)
        with self._lock:
            folders = sorted(self._folders.values(), key=lambda f: (f.db_name, f.root))
        out = []
        for fw in folders:
            if db_name is not None and fw.db_name != db_name:
                continue
            for file, reason in fw.failures():
                if below is None or file == below or file.startswith(below.rstrip("/") + "/"):
                    out.append(WatchFailure(db=fw.db_name, folder=fw.root, path=file, reason=reason))
        return out

    def summary(self) -> list[WatchSummary]:
        """Per-folder state for ``status``."""
        with self._lock:
            folders = list(self._folders.values())
        return [
            WatchSummary(path=f.root, db=f.db_name, state=f.state, mode=f.mode, pending=f.pending)
            for f in folders
        ]

    def stop(self) -> None:
        """Stop every folder (a running batch ends at its next boundary) and the observers."""
        with self._lock:
            self._closed = True
            folders = list(self._folders.values())
        for fw in folders:
            fw.request_stop()
        for fw in folders:
            fw.stop()
        with self._lock:
            observers = list(self._observers.values())
            self._observers.clear()
        for obs in observers:
            try:
                obs.stop()
                obs.join(5)
            except RuntimeError:
                pass
