"""One watched folder: the parts that keep it in sync, composed, and its thread's lifecycle.

See ``isearchd.watch.watcher`` for the whole picture. ``FolderWatch`` is what the ``Watcher``
holds; it builds the parts, each of which runs on one thread:

- ``observe.EventIntake``, the observer's thread: only puts events on the folder's queue;
- ``sync.FolderSync``, the folder's own thread: schedules the intake (``observe.ObserverLink``),
  reconciles, drains events into the translator (``events``) and submits one job at a time;
- ``sync.BatchWorker``, the indexing worker: applies a batch (``apply``) and records its outcome;
- ``status.FolderStatus``: state, counts, unreadable folders and failed files, shared by all of
  the above and read by client threads (``describe``, ``failures``), the only part with a lock.

``FolderWatch`` itself is called by the ``Watcher`` (client threads): start, stop, describe. It
depends on protocols (``host``), never on the ``Watcher`` that owns it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent

from isearchd.messages import FolderState
from isearchd.watch.observe import EventIntake, ObserverLink
from isearchd.watch.options import WatchOptions
from isearchd.watch.pathfilter import PathFilter
from isearchd.watch.status import FolderStatus
from isearchd.watch.sync import FolderSync

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from isearchd.watch.host import FolderHost, Observers


class FolderWatch:
    """One watched folder of one database; runs its own thread.

    ``state``, ``mode`` and ``reason`` are written by the folder's thread (under the status's
    lock) and may be read from any thread."""

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
        self._status = FolderStatus()
        self._stop = threading.Event()
        events: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
        self._link = ObserverLink(self, observers, EventIntake(events), self._status, options, db_name, root)
        self._sync = FolderSync(
            host, self._link, self._status, options, self.filter, db_name, root, events, self._stop
        )
        self._thread = threading.Thread(target=self._sync.run, name=f"isearch-watch-{root}", daemon=True)

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
        self._link.unschedule()

    def uses_watch(self, observer: BaseObserver, watch: ObservedWatch) -> bool:
        """Whether this folder's handler is scheduled on ``observer`` for ``watch``."""
        return self._link.uses_watch(observer, watch)

    # -- what it reports (any thread) ------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._status.state

    @property
    def mode(self) -> str:
        return self._status.mode

    @property
    def reason(self) -> str:
        return self._status.reason

    @property
    def pending(self) -> int:
        """Changes seen and not yet applied (a snapshot of lengths; any thread)."""
        return self._sync.pending

    def describe(self, images: int | None) -> FolderState:
        return self._status.describe(
            path=self.root,
            db=self.db_name,
            exclude=self.exclude,
            source=self.source,
            images=images,
            pending=self.pending,
        )

    def failures(self) -> list[tuple[str, str]]:
        """The files below the folder that could not be indexed, with the reason, by path."""
        return self._status.failures()

    def failure_count(self) -> int:
        return self._status.failure_count()
