"""Face models in worker processes: a ``FaceReader`` that reads pictures on every core, below the
daemon's priority (the pool is ``isearchd.models.workers``: why processes, what a crash costs,
how the workers end with the daemon).

dlib's Python calls hold the GIL for their whole length (detect ~45 ms, describe ~75 ms per face;
``dlib_faces``): in the daemon's own process they would stop every other Python thread, a
search's included, until the call returns.

Memory: each worker holds Python, numpy, Pillow, dlib and the models: ~100 MB
(``benchmarks/bench_faces_library.py``), for as long as faces are being read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from isearchd.models.faces import PICTURE_ERRORS, FaceModels, FacesRead, PictureFile, failure, read_faces
from isearchd.models.workers import Workers, default_workers

__all__ = ["CRASHED", "FaceWorkers", "default_workers"]

CRASHED = "the face models crashed on this picture (the worker process died)"


def _read_one(models: FaceModels, picture: Image.Image | PictureFile) -> FacesRead | str:
    """The faces of one picture (decoded, or a file to decode here), or why not."""
    try:
        return read_faces(models, picture)
    except PICTURE_ERRORS as e:
        return failure(e)


class FaceWorkers:
    """A ``FaceReader`` over ``workers`` processes, each with the models ``make_models()`` returns
    (a picklable callable: a class or a module-level function). ``make_models()`` is also called
    here, once, for the models' version (it must not load them)."""

    def __init__(
        self, make_models: Callable[[], FaceModels], workers: int, *, background: bool = True
    ) -> None:
        self._pool: Workers[FaceModels, FacesRead] = Workers(
            make_models, _read_one, workers, background=background, crashed=CRASHED, what="face"
        )
        self.workers = workers
        self.version = make_models().version

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[FacesRead | str]:
        return self._pool.read(pictures)

    def hold(self, paused: bool) -> None:
        """Stop the workers while a search computes (``Workers.hold``)."""
        self._pool.hold(paused)

    def close(self) -> None:
        self._pool.close()
