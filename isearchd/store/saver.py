"""When a database's vector index is written to disk: ``SavePolicy`` and the background saver.

The catalog is committed before an add returns; the vector index is updated in memory at once and
written later, by a background thread, after ``SavePolicy.max_changes`` changes or ``max_seconds``
after the first unsaved change, spaced so that saving takes at most a tenth of the time
(``spacing``), and at close: never after every batch (at 100k images the file is ~250 MB). A
crash loses at most those unsaved index changes, which the next open replays from the catalog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from isearchd.errors import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavePolicy:
    """When the vector index is written to disk.

    A save rewrites the whole file (~2.5 kB per image at dim 512), and what is not saved is
    replayed from the catalog on the next open (~3,000 rows/s on 2 cores), so the defaults bound
    the replay after a crash to a few seconds without rewriting the file for every batch.
    """

    max_changes: int = 10_000
    max_seconds: float = 60.0
    background: bool = True
    # A save rewrites the whole file, so its cost grows with the library (~5 s for 1M images);
    # adds wait while it runs. Whatever the two limits above say, a save is due no sooner than
    # this many times the last save's duration after it: saving takes at most a tenth of the
    # time at any size (replay after a crash grows with it, by the images added meanwhile).
    spacing: float = 9.0


class IndexSaver:
    """Counts a database's unsaved index changes and saves them when due, on its own thread.

    ``save_now`` is the database's save: it takes the database's write lock and writes the file
    within ``saving(pending)``, which times it.
    """

    def __init__(self, name: str, policy: SavePolicy, save_now: Callable[[], None]) -> None:
        self.policy = policy
        self._save_now = save_now
        self._cond = threading.Condition()
        self._unsaved = 0
        self._dirty_since: float | None = None
        self._next_save_at = 0.0  # monotonic: no background save before (``SavePolicy.spacing``)
        self._stopping = False
        self._thread: threading.Thread | None = None
        if policy.background:
            self._thread = threading.Thread(target=self._loop, name=f"isearch-save-{name}", daemon=True)
            self._thread.start()

    @property
    def unsaved(self) -> int:
        with self._cond:
            return self._unsaved

    def note(self, n: int) -> None:
        """``n`` more changes are in memory only."""
        with self._cond:
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
            self._unsaved += n
            if self._unsaved >= self.policy.max_changes:
                self._cond.notify_all()

    @contextmanager
    def saving(self, pending: int) -> Iterator[None]:
        """Around a save that writes the ``pending`` changes counted when it began: once it has
        written them, they are saved and the next save is spaced by how long this one took."""
        started = time.monotonic()
        yield
        with self._cond:
            ended = time.monotonic()
            self._next_save_at = ended + self.policy.spacing * (ended - started)
            self._unsaved -= pending
            self._dirty_since = ended if self._unsaved else None

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def due(self) -> bool:
        if not self._unsaved or self._dirty_since is None:
            return False
        now = time.monotonic()
        if now < self._next_save_at:
            return False
        age = now - self._dirty_since
        return self._unsaved >= self.policy.max_changes or age >= self.policy.max_seconds

    def _wait(self) -> float:
        """Seconds until the next background save could be due (>= 0.05)."""
        assert self._dirty_since is not None
        now = time.monotonic()
        left = self.policy.max_seconds - (now - self._dirty_since)
        if self._unsaved >= self.policy.max_changes:
            left = 0.0
        return max(0.05, left, self._next_save_at - now)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self.due():
                    if self._dirty_since is None:
                        self._cond.wait()
                    else:
                        self._cond.wait(self._wait())
                if self._stopping:
                    return
            try:
                self._save_now()
            except StoreError as exc:
                log.error("%s", exc)
                with self._cond:  # retry after max_seconds, not in a tight loop
                    self._dirty_since = time.monotonic()
                    self._unsaved = min(self._unsaved, max(0, self.policy.max_changes - 1))
                    self._cond.wait(self.policy.max_seconds)
