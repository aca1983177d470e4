"""``PriorityLock``: one model, two kinds of callers; a waiting query goes before indexing.

A model runs one inference at a time (each inference already uses every core), and two kinds of
callers want it: searches (``foreground``: one image or text, a person waiting) and indexing
(``background``: a batch of images, nobody waiting on any one of them). The indexer takes the
lock once per small chunk of its batch, so a search that arrives while a batch runs waits for
the current chunk only, never for the rest of the batch.

Without a limit, searches arriving back to back could keep an add waiting forever. So while a
background caller waits, at most ``FOREGROUND_TURNS`` foreground callers in a row go before it;
then it gets one turn. Foreground callers among themselves, and background callers among
themselves, are served in no particular order (as ``threading.Lock``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FOREGROUND_TURNS", "PriorityLock"]

# Foreground holders that may go before a waiting background caller, in a row. An image query
# holds the lock ~20-30 ms on 2 cores and an indexing chunk ~60 ms, so with searches arriving
# without pause the indexer still gets about a quarter of the model; with searches a person
# makes, far more.
FOREGROUND_TURNS = 8


class PriorityLock:
    """A non-reentrant lock whose ``foreground`` callers go before its ``background`` ones."""

    def __init__(self, foreground_turns: int = FOREGROUND_TURNS) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held = False
        self._foreground_waiting = 0
        self._background_waiting = 0
        self._turns_taken = 0  # foreground holders in a row while a background caller waited
        self._foreground_turns = max(1, foreground_turns)

    def _background_due(self) -> bool:
        return self._background_waiting > 0 and self._turns_taken >= self._foreground_turns

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Hold the lock, ahead of any waiting background caller (unless it is its turn)."""
        with self._cond:
            self._foreground_waiting += 1
            try:
                while self._held or self._background_due():
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: a background caller may go now
                self._foreground_waiting -= 1
                self._cond.notify_all()
                raise
            self._foreground_waiting -= 1
            self._held = True
            if self._background_waiting:
                self._turns_taken += 1
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def background(self) -> Iterator[None]:
        """Hold the lock once no foreground caller waits (or foreground callers had their turns)."""
        with self._cond:
            self._background_waiting += 1
            try:
                while self._held or (
                    self._foreground_waiting > 0 and self._turns_taken < self._foreground_turns
                ):
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: foreground callers need no turn count
                self._background_waiting -= 1
                self._cond.notify_all()
                raise
            self._background_waiting -= 1
            self._held = True
            self._turns_taken = 0
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()
