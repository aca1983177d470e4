"""Releasing models after a while without work: an analysis's models (~40-100 MB) are held only
while it reads photos; ``ModelsReader``, what the faces and the words analyses share of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from isearchd.models.workers import Holdable

__all__ = ["IdleRelease", "ReaderLifecycle"]


class IdleRelease:
    """Calls ``release`` once ``idle_s`` seconds have passed since the last ``used()`` (a timer
    thread that runs only while the models are held)."""

    def __init__(
        self, release: Callable[[], None], idle_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._release = release
        self.idle_s = idle_s
        self._clock = clock
        self._last_used = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def used(self) -> None:
        """The models were used now: keep them ``idle_s`` more."""
        with self._lock:
            self._last_used = self._clock()
            if self._timer is None:
                self._start(self.idle_s)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _start(self, after: float) -> None:
        self._timer = threading.Timer(after, self._release_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _release_if_idle(self) -> None:
        with self._lock:
            self._timer = None
            idle = self._clock() - self._last_used
            if idle < self.idle_s:  # used meanwhile: look again later
                self._start(self.idle_s - idle)
                return
        self._release()


class ReaderLifecycle:
    """An analysis whose ``reader`` holds models: they are released after a while without work
    (``_idle``, an ``IdleRelease`` of ``reader.close``), held while a search computes (worker
    processes; an in-process reader has nothing to hold: its calls wait for their turn), and
    closed with the daemon."""

    reader: Any
    _idle: IdleRelease

    def hold(self, paused: bool) -> None:
        if isinstance(self.reader, Holdable):
            self.reader.hold(paused)

    def close(self) -> None:
        self._idle.cancel()
        self.reader.close()
