"""Debounce file events: a file is handed on once its size and mtime stopped changing.

A camera import, ``rsync`` or a slow network copy writes a file over seconds and the watcher sees
many events for it. ``Debouncer.touch`` records an event; ``pop_ready`` returns a path once
``settle_s`` seconds have passed since its last event *and* a fresh ``stat`` shows the same
(size, mtime_ns) as the one taken at that event. A file still growing is checked again
``settle_s`` later, so it is indexed exactly once, after it is complete. A file gone by then is
dropped (its delete event does the rest).

Pure bookkeeping with an injected clock and stat function, so it is unit-tested without sleeping.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# How long a file must stay unchanged before it is indexed. Shorter makes new photos searchable
# sooner; longer avoids embedding a file that a slow writer only paused on. One second covers
# camera imports and browser downloads (which also use temp names) on local disks.
SETTLE_S = 1.0

Signature = tuple[int, int]  # (size, mtime_ns)
StatFn = Callable[[str], Signature | None]


def stat_signature(path: str) -> Signature | None:
    """(size, mtime_ns) of a regular file (symlinks followed), None when missing or not a file."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class _Pending:
    signature: Signature | None
    since: float


class Debouncer:
    """Paths waiting for their writes to settle. Not thread-safe: one owner thread."""

    def __init__(
        self,
        settle_s: float = SETTLE_S,
        *,
        stat: StatFn = stat_signature,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_s = settle_s
        self._stat = stat
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def touch(self, path: str) -> None:
        """A write (or creation) was seen: wait until it settles."""
        self._pending[path] = _Pending(self._stat(path), self._clock())

    def discard(self, path: str) -> bool:
        return self._pending.pop(path, None) is not None

    def discard_prefix(self, folder: str) -> int:
        prefix = folder.rstrip("/") + "/"
        gone = [p for p in self._pending if p.startswith(prefix)]
        for p in gone:
            del self._pending[p]
        return len(gone)

    def move(self, src: str, dst: str) -> bool:
        """A pending file was renamed: it is pending under its new name (the wait restarts)."""
        if self._pending.pop(src, None) is None:
            return False
        self.touch(dst)
        return True

    def move_prefix(self, src: str, dst: str) -> int:
        prefix = src.rstrip("/") + "/"
        moved = [p for p in self._pending if p.startswith(prefix)]
        for p in moved:
            del self._pending[p]
            self.touch(dst.rstrip("/") + "/" + p[len(prefix) :])
        return len(moved)

    def next_check_in(self) -> float | None:
        """Seconds until the earliest pending path is due for a check (None: nothing pending)."""
        if not self._pending:
            return None
        earliest = min(p.since for p in self._pending.values())
        return max(0.0, earliest + self.settle_s - self._clock())

    def pop_ready(self) -> list[str]:
        """Paths whose size and mtime held still for ``settle_s``; they leave the debouncer."""
        now = self._clock()
        ready: list[str] = []
        for path, p in list(self._pending.items()):
            if now - p.since < self.settle_s:
                continue
            sig = self._stat(path)
            if sig is None:
                del self._pending[path]  # gone (or not a regular file): nothing to index
            elif sig == p.signature:
                del self._pending[path]
                ready.append(path)
            else:
                self._pending[path] = _Pending(sig, now)  # still changing: wait another interval
        ready.sort()
        return ready
