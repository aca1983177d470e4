"""What a watched folder needs from the rest of the daemon, as protocols.

``FolderWatch`` (``isearchd.watch.folder``) and its parts depend on these, never on the
``Watcher`` that owns it (``isearchd.watch.watcher``), so the modules import in one direction only:

- ``FolderHost``: the engine's part: the job queue every database write goes through, the open
  databases, and indexing files by path (run in the indexing worker).
- ``WatchHost``: what the ``Watcher`` needs on top (the data folder, to list registered folders).
- ``Observers``: the watchdog observers shared by every folder of the daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from isearchd.engine.jobqueue import JobQueue
    from isearchd.reports import AddReport
    from isearchd.store import ImageDatabase, WatchedFolder


class FolderHost(Protocol):
    """What one watched folder needs from the engine."""

    jobs: JobQueue

    def database(self, name: str, *, create: bool) -> ImageDatabase: ...

    def index_paths(
        self, db: ImageDatabase, paths: Sequence[str], cancel: threading.Event | None
    ) -> AddReport: ...


class WatchHost(FolderHost, Protocol):
    """What the watcher needs from the engine."""

    home: Path

    def watched_folders(self, name: str) -> list[WatchedFolder]:
        """The folders database ``name`` watches on this machine, read without opening it."""
        ...


class Observers(Protocol):
    """The observers shared by the daemon's watched folders."""

    def observer(self, kind: str) -> BaseObserver:
        """The shared observer of ``kind`` ("inotify" or "polling"), started on first use; raises
        ``OSError`` when an inotify observer cannot be created."""
        ...

    def shares_watch(self, folder: object, observer: BaseObserver, watch: ObservedWatch) -> bool:
        """Whether a folder other than ``folder`` (same path, another database) uses ``watch``."""
        ...
