"""Face models in worker processes: a ``FaceReader`` that reads pictures on every core, below the
daemon's priority.

Why processes: dlib's Python calls hold the GIL for their whole length (detect ~45 ms, describe
~75 ms per face; ``dlib_faces``). In the daemon's own process they would use one core of two and,
worse, stop every other Python thread (a search's included) until the call returns. In worker
processes they use every core and the daemon's threads run on; the workers lower their priority
(``WORKER_NICE``), so when a search computes, the kernel gives its threads the CPU first.

1. ``read(pictures)`` starts the workers on first use (each imports dlib and loads the models
   once: ~1 s) and hands each picture to a free worker: its pixels (over a pipe: ~6 MB for a
   1920x1080 picture, ~2 ms), or its file, which the worker decodes (the photos the indexer left no
   picture of: decoding, ~20 ms a photo, then runs on every core too, not in the daemon);
2. a worker that dies (a crash in native code, killed by the OOM killer) breaks the pool: the
   pictures of that call are read again one at a time in a fresh pool, and a picture that breaks
   it again is given up with its reason; the other pictures are read;
3. ``close()`` stops the workers (their memory goes back to the system); the next ``read`` starts
   them again. A worker whose daemon is gone (``kill -9``) ends itself within ``PARENT_POLL_S``.

Memory: each worker holds Python, numpy, Pillow, dlib and the models: ~100 MB
(``benchmarks/bench_faces_library.py``), for as long as faces are being read.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image

from isearchd.files.images import to_rgb
from isearchd.models.faces import PICTURE_ERRORS, FaceModels, FacesRead, PictureFile, failure, read_faces

log = logging.getLogger(__name__)

__all__ = ["WORKER_NICE", "FaceWorkers", "default_workers"]

# Added to the workers' nice value: the kernel's fair scheduler then weighs a worker's thread at
# 110/1024 of a normal one (nice 10), so a search computing on the same cores gets ~90 % of them.
WORKER_NICE = 10
# How often a worker looks whether the daemon is still there (a sleeping thread costs nothing).
PARENT_POLL_S = 1.0
CRASHED = "the face models crashed on this picture (the worker process died)"

# The models of this worker process: set by ``_start_worker`` in each worker, never in the daemon.
_worker_models: FaceModels | None = None


def default_workers() -> int:
    """One worker per core, at most two (each holds ~100 MB)."""
    return max(1, min(2, os.cpu_count() or 1))


def _start_worker(make_models: Callable[[], FaceModels], nice: int, daemon: int) -> None:
    global _worker_models
    watch = threading.Thread(target=_exit_with, args=(daemon,), name="daemon-watch", daemon=True)
    watch.start()
    if nice:
        os.nice(nice)
    _worker_models = make_models()


def _exit_with(daemon: int) -> None:
    """End this worker once the daemon (its parent, ``daemon``) is gone. A worker waits on a queue
    whose other end it holds itself (so no end-of-file comes): after a ``kill -9`` of the daemon it
    would wait forever, holding its ~100 MB. An orphan is adopted by another process, so its parent
    id changes (the daemon's id, not this process's first parent id: the daemon may die before
    this worker has started)."""
    while os.getppid() == daemon:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _read_in_worker(picture: np.ndarray | PictureFile) -> FacesRead | str:
    """The faces of one picture (its pixels, or a file to decode here), or why not: errors come
    back as their reason (an exception would have to survive pickling on its way)."""
    if _worker_models is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("the worker has no face models")
    try:
        return read_faces(
            _worker_models, picture if isinstance(picture, PictureFile) else Image.fromarray(picture)
        )
    except PICTURE_ERRORS as e:
        return failure(e)


class FaceWorkers:
    """A ``FaceReader`` over ``workers`` processes, each with the models ``make_models()`` returns
    (a picklable callable: a class or a module-level function). ``make_models()`` is also called
    here, once, for the models' version (it must not load them)."""

    def __init__(
        self, make_models: Callable[[], FaceModels], workers: int, *, nice: int = WORKER_NICE
    ) -> None:
        if workers < 1:
            raise ValueError("at least one face worker")
        self._make_models = make_models
        self.workers = workers
        self._nice = nice
        self.version = make_models().version
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[FacesRead | str]:
        sent = [
            p if isinstance(p, PictureFile) else np.ascontiguousarray(np.asarray(to_rgb(p))) for p in pictures
        ]
        with self._lock:
            try:
                return self._read_all(sent)
            except BrokenProcessPool:
                log.warning("a face worker died: reading the %d pictures one at a time", len(sent))
                return [self._read_alone(p) for p in sent]

    def _read_all(self, sent: list[np.ndarray | PictureFile]) -> list[FacesRead | str]:
        pool = self._started()
        futures = [pool.submit(_read_in_worker, p) for p in sent]
        return [self._result(f) for f in futures]

    def _read_alone(self, picture: np.ndarray | PictureFile) -> FacesRead | str:
        try:
            return self._result(self._started().submit(_read_in_worker, picture))
        except BrokenProcessPool:
            self._stop()
            return CRASHED

    def _result(self, future: Future[FacesRead | str]) -> FacesRead | str:
        """The faces or the reason; a broken pool is stopped and raised."""
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
                initargs=(self._make_models, self._nice, os.getpid()),
            )
            log.info("started %d face worker(s)", self.workers)
        return self._pool

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._stop()
                log.info("face workers stopped")
