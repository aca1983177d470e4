"""The daemon's indexing queue: one worker thread runs every write job (adds, watch updates).

All changes to the images of the databases (``add`` requests, watched-folder events, reconcile
batches, purges, ``clear``) are jobs in one bounded FIFO queue run by a single worker, so writes
never compete for the model or the catalog and their order is the order they were submitted.
(Registering a watched folder writes one row of the ``folders`` table directly, under the
database's own writer lock, so ``isearch watch`` never waits behind a long add.)

The queue is bounded: a producer that finds it full waits (back-pressure), nothing is ever
dropped. Watched folders keep at most one job queued each and batch whatever arrives meanwhile
into their next job, so a burst of file events costs few jobs.

``run`` submits and waits (an ``add`` request's connection thread); ``submit`` returns a ``Job``
to wait on later. ``close`` fails the jobs still waiting with ``Busy`` and lets the running one
finish (adds and watch jobs stop at their next batch boundary when their cancel event is set).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from isearchd.errors import Busy

log = logging.getLogger(__name__)

# Jobs that may wait in the queue. Each add request or watched folder has at most one job in it,
# so this bounds waiting clients, not files; a full queue makes the next producer wait.
MAX_QUEUED_JOBS = 64


class Job:
    """One unit of work; ``wait`` returns its result or raises its exception."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.fn = fn
        self.name = name
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> Any:
        if not self.done.wait(timeout):
            raise TimeoutError(f"job {self.name} still running")
        if self.error is not None:
            raise self.error
        return self.result


_STOP = object()


class JobQueue:
    def __init__(self, maxsize: int = MAX_QUEUED_JOBS) -> None:
        self._queue: queue.Queue[Job | object] = queue.Queue(maxsize)
        self._closed = threading.Event()
        self._running: Job | None = None
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._loop, name="isearch-indexer", daemon=True)
        self._worker.start()

    def __len__(self) -> int:
        """Jobs waiting plus the one running."""
        with self._lock:
            running = self._running is not None
        return self._queue.qsize() + int(running)

    def submit(self, fn: Callable[[], Any], name: str = "job") -> Job:
        """Queue ``fn``; waits while the queue is full. ``Busy`` once the queue is closed."""
        job = Job(fn, name)
        while True:
            if self._closed.is_set():
                raise Busy("the ImgSearch daemon is shutting down; try again once it is restarted")
            try:
                self._queue.put(job, timeout=0.2)
                return job
            except queue.Full:
                continue

    def run(self, fn: Callable[[], Any], name: str = "job") -> Any:
        """Queue ``fn`` and wait for its result (its exception is raised here)."""
        return self.submit(fn, name).wait()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, Job)
            if self._closed.is_set():
                item.error = Busy("the ImgSearch daemon is shutting down; try again once it is restarted")
                item.done.set()
                continue
            with self._lock:
                self._running = item
            try:
                item.result = item.fn()
            except BaseException as e:  # handed to whoever waits on the job
                item.error = e
            finally:
                with self._lock:
                    self._running = None
                item.done.set()

    def close(self, timeout: float | None = None) -> None:
        """Fail waiting jobs with ``Busy``, let the running one end, stop the worker."""
        if self._closed.is_set():
            return
        self._closed.set()
        while True:
            try:
                self._queue.put(_STOP, timeout=0.2)
                break
            except queue.Full:
                if not self._worker.is_alive():
                    break
        self._worker.join(timeout)
        while True:  # anything left (the worker stopped early): fail it too
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                item.error = Busy("the ImgSearch daemon is shutting down; try again once it is restarted")
                item.done.set()
