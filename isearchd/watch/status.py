"""What one watched folder reports: its state, counts, unreadable folders and failed files.

``FolderStatus`` is the one object a folder's threads share, so it alone holds a lock: the
folder's thread writes the state, mode and reason and what a walk found; the indexing worker
adds each batch's outcome; any thread (``watch --list``, ``status``, ``watch --failed``) reads
it. Every method takes the lock for its whole update, so a reader never sees half a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from isearchd.messages import FolderState
from isearchd.watch.apply import Applied
from isearchd.watch.options import MAX_ERRORS_SHOWN, MAX_FAILURES_KEPT


class FolderStatus:
    """The shared, lock-guarded state of one watched folder.

    ``state``, ``mode`` and ``reason`` are written under the lock and may be read from any thread
    without it (one attribute read each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mode = "inotify"
        self.state = "starting"
        self.reason = ""  # why polling / what the error is
        self._errors: list[tuple[str, str]] = []  # (folder, reason): folders that cannot be read
        self._counts = {"indexed": 0, "unchanged": 0, "moved": 0, "removed": 0, "failed": 0}
        self._scan_seconds: float | None = None
        self._failures: dict[str, str] = {}  # files that could not be indexed: path -> reason
        self._failures_extra = 0
        self._last_failure: tuple[str, str] | None = None

    # -- the folder's thread ---------------------------------------------------------------------

    def set_state(self, state: str, reason: str | None = None) -> None:
        with self._lock:
            self.state = state
            if reason is not None:
                self.reason = reason

    def set_reason(self, reason: str) -> None:
        with self._lock:
            self.reason = reason

    def set_mode(self, mode: str, reason: str) -> None:
        with self._lock:
            self.mode = mode
            self.reason = reason

    def rescanned(self, unreadable: Sequence[tuple[str, str]], bad_files: Sequence[tuple[str, str]]) -> None:
        """A walk of the whole folder: its problems replace the earlier ones."""
        with self._lock:
            self._errors = list(unreadable)
            self._failures.clear()
            self._failures_extra = 0
            self._note_results_locked((), bad_files)

    def walked(self, unreadable: Sequence[tuple[str, str]], bad_files: Sequence[tuple[str, str]]) -> None:
        """A walk of a folder that appeared below it: its problems join the folder's."""
        with self._lock:
            self._errors.extend(unreadable)
            self._note_results_locked((), bad_files)

    def set_unchanged(self, unchanged: int) -> None:
        with self._lock:
            self._counts["unchanged"] = unchanged

    def in_sync(self, seconds: float) -> str:
        """The reconcile is complete after ``seconds``; returns the new state."""
        with self._lock:
            self._scan_seconds = seconds
            self.state = "polling" if self.mode == "polling" else "watching"
            return self.state

    # -- the indexing worker ---------------------------------------------------------------------

    def record(self, applied: Applied) -> None:
        """A batch's outcome."""
        with self._lock:
            self._counts["moved"] += applied.moved
            self._counts["removed"] += applied.removed
            self._counts["indexed"] += applied.indexed
            self._counts["failed"] += len(applied.failed)
            for path in applied.gone:
                self._failures.pop(path, None)
            for folder in applied.gone_folders:
                below = folder.rstrip("/") + "/"
                for path in [p for p in self._failures if p.startswith(below)]:
                    del self._failures[path]
            if applied.tried:
                self._note_results_locked(applied.tried, applied.failed)

    def _note_results_locked(self, tried: Sequence[str], failed: Sequence[tuple[str, str]]) -> None:
        """Forget the failures of ``tried`` files that went through; remember the new ones."""
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

    # -- any thread ------------------------------------------------------------------------------

    def describe(
        self,
        *,
        path: str,
        db: str,
        exclude: Sequence[str],
        source: str,
        images: int | None,
        pending: int,
    ) -> FolderState:
        with self._lock:
            return FolderState(
                path=path,
                db=db,
                state=self.state,
                mode=self.mode,
                reason=self.reason,
                images=images,
                pending=pending,
                exclude=list(exclude),
                source=source,
                errors=self._errors[:MAX_ERRORS_SHOWN],
                error_count=len(self._errors),
                failed_files=len(self._failures) + self._failures_extra,
                last_failure=self._last_failure,
                scan_seconds=self._scan_seconds,
                **self._counts,
            )

    def failures(self) -> list[tuple[str, str]]:
        """The files below the folder that could not be indexed, with the reason, by path."""
        with self._lock:
            return sorted(self._failures.items())

    def failure_count(self) -> int:
        with self._lock:
            return len(self._failures) + self._failures_extra
