"""``QueryGate``: while a search computes its embedding, indexing starts no new file.

A search's own work (decoding the query image, running a tower) needs the cores for a few tens
of milliseconds; an add in progress keeps both cores busy with its decode threads. Sharing them
doubles the search's time, so the add's decode threads wait at the gate before each new file while
any search holds it (``query()``). The wait is bounded (``MAX_WAIT_S``): searches arriving back to
back slow an add down, they never stop it. A file already being decoded is finished.

The model's ``PriorityLock`` does the same for the towers themselves (a waiting search goes
before the next indexing slice); this gate covers the CPU work around them. Work in other
processes (the faces' and words' workers) cannot wait at a gate: ``listen`` tells them when the
first search begins and the last one ends, and they are held meanwhile (``Workers.hold``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["MAX_WAIT_S", "QueryGate"]

# The longest a decode thread waits at the gate for one file. An image search takes ~40 ms on
# 2 cores; a quarter of a second covers a short burst of them.
MAX_WAIT_S = 0.25


class QueryGate:
    """Counts searches in progress; background work waits (bounded) until there are none."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._max_wait_s = max_wait_s
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, busy: Callable[[bool], None]) -> None:
        """Call ``busy(True)`` when the first search begins, ``busy(False)`` when the last ends
        (under the gate's lock, so the calls never cross: keep ``busy`` short)."""
        with self._cond:
            self._listeners.append(busy)

    def _tell(self, busy: bool) -> None:
        for listener in self._listeners:
            listener(busy)

    @property
    def active(self) -> int:
        """Searches holding the gate now."""
        return self._active

    @contextmanager
    def query(self) -> Iterator[None]:
        """Hold the gate while a search computes."""
        with self._cond:
            self._active += 1
            if self._active == 1:
                self._tell(True)
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._tell(False)
                    self._cond.notify_all()

    def wait_clear(self) -> bool:
        """Wait until no search holds the gate, at most ``max_wait_s``; False when it timed out."""
        if not self._active:  # the common case, without the lock: a stale read only waits less
            return True
        deadline = time.monotonic() + self._max_wait_s
        with self._cond:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True
