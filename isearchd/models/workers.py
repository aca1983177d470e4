"""Models in worker processes: reads pictures on every core, below the daemon's priority. The
face models (``face_workers``) and the text models (``ocr``) run here.

Why processes: the models' Python calls hold the GIL for their whole length (dlib: detect ~45 ms,
describe ~75 ms per face) or keep a core busy (ONNX Runtime: text detection ~80 ms a photo). In
the daemon's own process they would use one core of two and, for dlib, stop every other Python
thread (a search's included) until the call returns. In worker processes they use every core and
the daemon's threads run on; the workers run at the lowest priority there is (``SCHED_IDLE``: the
kernel gives them a core only while no other thread wants it, so a search takes the CPU from a
worker at once; where the system lacks it, nice ``FALLBACK_NICE``).

Costs of ``SCHED_IDLE``: a search-like load (ONNX-sized matrix products on both cores, every
0.1 s, while two workers read photos; AMD EPYC, 2 cores, a shared machine, 160 searches each)
took 75.8 ms at the median beside ``SCHED_IDLE`` workers, as with no workers (75.8), against
79.9 beside workers at nice 10, the priority before. The other side: on a machine whose cores
other programs keep busy, faces wait for them (the kernel lends an idle-policy thread a core for
a few ms now and then only), which is what a background job should do.

1. ``read(pictures)`` starts the workers on first use (each imports the models' library and
   loads the models once: ~1 s) and hands each picture to a free worker: its pixels (over a pipe:
   ~6 MB for a 1920x1080 picture, ~2 ms), or its file (``PictureFile``), which the worker decodes
   (the photos the indexer left no picture of: decoding, ~20 ms a photo, then runs on every core
   too, not in the daemon);
2. a worker that dies (a crash in native code, killed by the OOM killer) breaks the pool: the
   pictures of that call are read again one at a time in a fresh pool, and a picture that breaks
   it again is given up with its reason (``crashed``); the other pictures are read;
3. ``close()`` stops the workers (their memory goes back to the system) once the pictures they
   hold are read (with other programs keeping every core busy, an idle-policy worker may take
   long: stopping the daemon then waits); the next ``read`` starts them again. A worker whose
   daemon is gone (``kill -9``) ends itself within ``PARENT_POLL_S``;
4. ``hold(True)`` stops the workers where they are (``SIGSTOP``) and ``hold(False)`` lets them go
   on (``SIGCONT``): the daemon holds them while a search computes (``QueryGate``), since even at
   ``SCHED_IDLE`` two workers made image searches ~50 % slower at p99 on 2 cores (the cores are
   shared vCPUs: cache and memory, not only turns). A held worker cannot look for its daemon, so
   on Linux it also asks the kernel to kill it when the daemon's thread that started it ends
   (``PR_SET_PDEATHSIG``): a ``kill -9`` of the daemon while its workers are held leaves none.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from PIL import Image

from isearchd.files.images import to_rgb

log = logging.getLogger(__name__)

__all__ = ["FALLBACK_NICE", "Holdable", "PictureFile", "Workers", "default_workers", "lower_priority"]

# The workers' nice value where ``SCHED_IDLE`` is missing (not Linux, or refused): the fair
# scheduler weighs such a thread at 15/1024 of a normal one, so a search gets ~98 % of its core.
FALLBACK_NICE = 19
# How often a worker looks whether the daemon is still there (a sleeping thread costs nothing).
PARENT_POLL_S = 1.0

M = TypeVar("M")
R = TypeVar("R")

# This worker process's models and the function that reads one picture with them: set by
# ``_start_worker`` in each worker, never in the daemon.
_worker: tuple[Any, Callable[[Any, Any], Any]] | None = None


@dataclass(frozen=True)
class PictureFile:
    """A photo for the reader to decode itself, its shorter side reduced to about ``min_side``."""

    path: str
    min_side: int


Sent = np.ndarray | PictureFile  # what travels to a worker: pixels (RGB rows), or a file


def default_workers() -> int:
    """One worker per core, at most two (each holds its models: ~100 MB for faces)."""
    return max(1, min(2, os.cpu_count() or 1))


def lower_priority() -> str:
    """Put this process at the lowest priority: ``SCHED_IDLE`` where the system has it, else nice
    ``FALLBACK_NICE``. Returns which, for the log."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:
            pass
    os.nice(FALLBACK_NICE - os.nice(0))
    return f"nice {FALLBACK_NICE}"


@runtime_checkable
class Holdable(Protocol):
    """Readers whose work can be held while a search computes (their worker processes)."""

    def hold(self, paused: bool) -> None: ...


def _die_with_parent() -> None:
    """Linux: be killed when the daemon's thread that started this process ends (a held worker,
    stopped by ``SIGSTOP``, cannot notice its daemon is gone; ``SIGKILL`` ends it anyway)."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


# prctl(2)'s option number (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def _start_worker(
    make_models: Callable[[], Any], read_one: Callable[[Any, Any], Any], background: bool, daemon: int
) -> None:
    global _worker
    if background:  # the daemon's workers (tests and benchmarks may start them from short threads)
        _die_with_parent()
    watch = threading.Thread(target=_exit_with, args=(daemon,), name="daemon-watch", daemon=True)
    watch.start()
    if background:
        lower_priority()
    _worker = (make_models(), read_one)


def _exit_with(daemon: int) -> None:
    """End this worker once the daemon (its parent, ``daemon``) is gone. A worker waits on a queue
    whose other end it holds itself (so no end-of-file comes): after a ``kill -9`` of the daemon it
    would wait forever, holding its memory. An orphan is adopted by another process, so its parent
    id changes (the daemon's id, not this process's first parent id: the daemon may die before
    this worker has started)."""
    while os.getppid() == daemon:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _read_in_worker(picture: Sent) -> Any:
    """One picture read by this worker's models: ``read_one(models, picture)``, which returns the
    result or why not (an exception would have to survive pickling on its way)."""
    if _worker is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("the worker has no models")
    models, read_one = _worker
    return read_one(models, picture if isinstance(picture, PictureFile) else Image.fromarray(picture))


class Workers(Generic[M, R]):
    """``workers`` processes, each with the models ``make_models()`` returns, reading pictures with
    ``read_one(models, picture)`` (``picture``: a Pillow image or a ``PictureFile``; it returns a
    result ``R`` or a one-line reason, and catches what one picture may raise). Both must pickle:
    a class or module-level functions. ``background``: at the lowest priority (``lower_priority``;
    off in tests and benchmarks that time the models). ``crashed``: the reason given for a
    picture whose worker died reading it; ``what``: the models' name in the log."""

    def __init__(
        self,
        make_models: Callable[[], M],
        read_one: Callable[[M, Image.Image | PictureFile], R | str],
        workers: int,
        *,
        background: bool = True,
        crashed: str,
        what: str,
    ) -> None:
        if workers < 1:
            raise ValueError(f"at least one {what} worker")
        self._make_models = make_models
        self._read_one = read_one
        self.workers = workers
        self._background = background
        self._crashed = crashed
        self._what = what
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._hold_lock = threading.Lock()  # never the read lock: a read lasts, a hold must not wait
        self._held = False

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[R | str]:
        """For each picture, in order: what the models read, or why it could not be read."""
        sent: list[Sent] = [
            p if isinstance(p, PictureFile) else np.ascontiguousarray(np.asarray(to_rgb(p))) for p in pictures
        ]
        with self._lock:
            try:
                return self._read_all(sent)
            except BrokenProcessPool:
                log.warning("a %s worker died: reading the %d pictures one at a time", self._what, len(sent))
                return [self._read_alone(p) for p in sent]

    def _read_all(self, sent: list[Sent]) -> list[R | str]:
        pool = self._started()
        futures = [pool.submit(_read_in_worker, p) for p in sent]
        return [self._result(f) for f in futures]

    def _read_alone(self, picture: Sent) -> R | str:
        try:
            return self._result(self._started().submit(_read_in_worker, picture))
        except BrokenProcessPool:
            self._stop()
            return self._crashed

    def _result(self, future: Future[R | str]) -> R | str:
        """The result or the reason; a broken pool is stopped and raised."""
        try:
            return future.result()
        except BrokenProcessPool:
            self._stop()
            raise

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork of the daemon would copy its threads' locks in whatever state they hold
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._make_models, self._read_one, self._background, os.getpid()),
            )
            log.info("started %d %s worker(s)", self.workers, self._what)
        return self._pool

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def hold(self, paused: bool) -> None:
        """Stop the workers where they are (``True``) or let them go on (``False``)."""
        stop, go = getattr(signal, "SIGSTOP", None), getattr(signal, "SIGCONT", None)
        if stop is None or go is None:
            return  # Windows: nothing to hold with
        with self._hold_lock:
            if paused == self._held:
                return
            self._held = paused
            pool = self._pool
            # the executor's own table of its processes (no public one): pid -> Process; its
            # manager thread may change it meanwhile (then the pids are read again)
            pids: list[int] = []
            for _ in range(3):
                try:
                    pids = list(getattr(pool, "_processes", None) or {})
                    break
                except RuntimeError:
                    continue
            for pid in pids:
                with contextlib.suppress(OSError):  # gone meanwhile
                    os.kill(pid, stop if paused else go)

    def close(self) -> None:
        self.hold(False)  # a held worker would never finish its pictures
        with self._lock:
            self.hold(False)  # a search may have held them while this waited for the read
            if self._pool is not None:
                self._stop()
                log.info("%s workers stopped", self._what)
