"""Where one watched folder's events come from: its handler on a shared watchdog observer.

- ``EventIntake``: the handler, run by the observer's thread. It only puts each event on the
  folder's queue: the observer serves every folder of the daemon and must never block.
- ``ObserverLink``: run by the folder's thread. Schedules the intake on the inotify observer or,
  when inotify cannot take the folder (``isearchd.watch.options`` says when), on the polling
  one; switches to polling later; unschedules; and notices when the folder itself moved, was
  deleted or unmounted (inotify says nothing of the first).
"""

from __future__ import annotations

import logging
import queue
import stat
import time
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

from isearchd.errors import ISearchError
from isearchd.watch.events import RootGone
from isearchd.watch.options import INOTIFY_EXHAUSTED, NETWORK_FS, WatchOptions, filesystem_type

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from isearchd.watch.host import Observers
    from isearchd.watch.status import FolderStatus

log = logging.getLogger(__name__)


class EventIntake(FileSystemEventHandler):
    """Hands observer events to a folder's thread (the observer thread must never block)."""

    def __init__(self, events: queue.SimpleQueue[FileSystemEvent]) -> None:
        self.events = events

    def dispatch(self, event: FileSystemEvent) -> None:
        self.events.put(event)


class ObserverLink:
    """One folder's intake scheduled on a shared observer; the folder's thread alone drives it.

    ``mode`` and its reason go to ``status``. ``owner`` is the folder as the ``Observers`` know
    it (``shares_watch`` asks whether a folder other than it uses a watch)."""

    def __init__(
        self,
        owner: object,
        observers: Observers,
        intake: EventIntake,
        status: FolderStatus,
        options: WatchOptions,
        db_name: str,
        root: str,
    ) -> None:
        self._owner = owner
        self._observers = observers
        self._intake = intake
        self._status = status
        self._options = options
        self._db_name = db_name
        self._root = root
        self._root_id: tuple[int, int] | None = None
        self._root_checked = 0.0
        self._scheduled: tuple[BaseObserver, ObservedWatch] | None = None

    def uses_watch(self, observer: BaseObserver, watch: ObservedWatch) -> bool:
        """Whether the intake is scheduled on ``observer`` for ``watch`` (any thread: one read)."""
        scheduled = self._scheduled
        return scheduled is not None and scheduled[0] is observer and scheduled[1] == watch

    def _root_identity(self) -> tuple[int, int] | None:
        try:
            st = Path(self._root).stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None

    def check_root(self) -> None:
        """Raises ``RootGone`` when the folder itself moved, was deleted or unmounted (looked at
        once every ``retry_s``)."""
        now = time.monotonic()
        if now - self._root_checked < self._options.retry_s:
            return
        self._root_checked = now
        if self._root_identity() != self._root_id:
            raise RootGone(self._root)

    def schedule(self) -> None:
        """On inotify when it can take the folder, else on the polling observer (no-op when
        scheduled already)."""
        if self._scheduled is not None:
            return
        self._root_id = self._root_identity()
        self._root_checked = time.monotonic()
        fstype = filesystem_type(self._root)
        reason = ""
        if self._options.force_polling:
            reason = "polling forced (ISEARCH_WATCH_POLLING)"
        elif fstype in NETWORK_FS:
            reason = f"network file system ({fstype}): inotify does not report changes made elsewhere"
        if not reason:
            try:
                observer = self._observers.observer("inotify")
                watch = observer.schedule(
                    self._intake, self._root, recursive=True, event_filter=_event_filter()
                )
                self._scheduled = (observer, watch)
                self._status.set_mode("inotify", "")
                return
            except OSError as e:
                if e.errno not in INOTIFY_EXHAUSTED:
                    raise _root_error(self._root, e) from None
                reason = (
                    f"inotify limit reached ({e.strerror or e}); raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288` (and max_user_instances)"
                )
        self._schedule_polling(reason)

    def _schedule_polling(self, reason: str) -> None:
        observer = self._observers.observer("polling")
        try:
            watch = observer.schedule(self._intake, self._root, recursive=True, event_filter=_event_filter())
        except OSError as e:
            raise _root_error(self._root, e) from None
        self._scheduled = (observer, watch)
        self._status.set_mode("polling", reason)
        log.warning(
            "watching %s (db %r) by polling every %.1f s: %s",
            self._root,
            self._db_name,
            self._options.poll_interval_s,
            reason,
        )

    def switch_to_polling(self, reason: str) -> None:
        if self._status.mode == "polling":
            return
        self.unschedule()
        self._schedule_polling(reason)

    def unschedule(self) -> None:
        """Also called once the folder's thread has ended (``FolderWatch.stop``)."""
        if self._scheduled is None:
            return
        observer, watch = self._scheduled
        self._scheduled = None
        try:
            if self._observers.shares_watch(self._owner, observer, watch):
                # the same folder watched for another database: only this handler goes
                observer.remove_handler_for_watch(self._intake, watch)
            else:
                observer.unschedule(watch)
        except (KeyError, OSError, RuntimeError):
            log.debug("unscheduling %s", self._root, exc_info=True)


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


def _root_error(root: str, e: OSError) -> ISearchError:
    if isinstance(e, PermissionError):
        return ISearchError(f"cannot watch {root}: permission denied")
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return ISearchError(f"cannot watch {root}: no such folder")
    return ISearchError(f"cannot watch {root}: {e.strerror or e}")
