"""Face models in worker processes (``isearchd.models.face_workers``): the same faces as in the
daemon's process, a worker that dies costs only the picture that killed it, an error is that
picture's reason, and ``close()`` ends the processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from isearchd.models.dlib_faces import DlibFaceModels
from isearchd.models.face_workers import CRASHED, FaceWorkers
from isearchd.models.faces import DetectedFace, FacesRead, ModelsReader, PictureFile

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
CRASH_WIDTH = 13  # a picture this wide kills the worker that reads it, as a crash in native code
FAIL_WIDTH = 17  # a picture this wide makes the models raise


class TroubleModels:
    """``FaceModels`` that find one face per picture, except on the pictures that crash or fail."""

    name = "trouble"
    version = 7
    dim = 2
    match_distance = 0.5

    def detect(self, picture: Image.Image) -> list[DetectedFace]:
        if picture.width == CRASH_WIDTH:
            os._exit(3)
        if picture.width == FAIL_WIDTH:
            raise RuntimeError("cannot read this one")
        return [DetectedFace(box=(0, 0, picture.width, picture.height), landmarks=(), score=1.0)]

    def describe(self, picture: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(faces), 1))

    def close(self) -> None:
        pass


def _blank(width: int) -> Image.Image:
    return Image.new("RGB", (width, 20), "grey")


@pytest.fixture
def trouble() -> Iterator[FaceWorkers]:
    workers = FaceWorkers(TroubleModels, 2, background=False)
    yield workers
    workers.close()


def _faces(read: FacesRead | str) -> FacesRead:
    assert isinstance(read, FacesRead), read
    return read


def test_workers_find_what_the_daemons_process_finds(tmp_path: Path) -> None:
    names = sorted(p.name for p in FACES.glob("*.jpg"))[:4]
    pictures: list[Image.Image | PictureFile] = []
    for name in names:
        with Image.open(FACES / name) as im:
            pictures.append(im.convert("RGB"))
    pictures.append(_blank(300))  # no face
    pictures.append(PictureFile(str(FACES / names[0]), 200))  # decoded by the worker, reduced
    here = ModelsReader(DlibFaceModels()).read(pictures)
    workers = FaceWorkers(DlibFaceModels, 2)
    try:
        there = workers.read(pictures)
    finally:
        workers.close()
    assert workers.version == DlibFaceModels.version
    assert [len(_faces(found).faces) for found in there] == [1, 1, 1, 1, 0, 1]
    assert 200 <= min(_faces(there[-1]).size) < min(_faces(there[0]).size)  # JPEG draft: reduced
    for mine, theirs in zip(here, there, strict=True):
        assert _faces(mine).size == _faces(theirs).size
        assert [face for face, _ in _faces(mine).faces] == [face for face, _ in _faces(theirs).faces]
        for (_, a), (_, b) in zip(_faces(mine).faces, _faces(theirs).faces, strict=True):
            np.testing.assert_array_equal(a, b)  # the same code on the same pixels: bit for bit


def test_a_crash_costs_only_the_picture_that_caused_it(trouble: FaceWorkers) -> None:
    found = trouble.read([_blank(40), _blank(CRASH_WIDTH), _blank(50), _blank(60)])
    assert found[1] == CRASHED
    for i, width in ((0, 40), (2, 50), (3, 60)):
        assert _faces(found[i]).faces[0][0].box == (0, 0, width, 20)
    again = trouble.read([_blank(70)])  # a fresh pool reads on
    assert len(_faces(again[0]).faces) == 1


def test_an_error_is_the_pictures_reason_and_the_others_are_read(
    trouble: FaceWorkers, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    found = trouble.read(
        [
            _blank(FAIL_WIDTH),
            _blank(30),
            PictureFile(str(broken), 100),
            PictureFile(str(tmp_path / "gone.jpg"), 100),
        ]
    )
    assert isinstance(found[0], str) and "cannot read this one" in found[0]
    assert len(_faces(found[1]).faces) == 1
    assert isinstance(found[2], str) and found[2] and "\n" not in found[2]
    assert isinstance(found[3], str) and found[3] and "\n" not in found[3]


def test_close_ends_the_workers_and_the_next_read_starts_them(trouble: FaceWorkers) -> None:
    before = set(multiprocessing.active_children())
    assert len(_faces(trouble.read([_blank(30), _blank(31)])[0]).faces) == 1
    workers = set(multiprocessing.active_children()) - before
    assert 1 <= len(workers) <= 2
    trouble.close()
    assert not workers & set(multiprocessing.active_children())
    assert all(not p.is_alive() for p in workers)
    assert len(_faces(trouble.read([_blank(32)])[0]).faces) == 1


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FaceWorkers(TroubleModels, 0)


def test_held_workers_stop_where_they_are_and_go_on_when_released(trouble: FaceWorkers) -> None:
    """A search holds the workers (SIGSTOP) and releases them (SIGCONT); a read waits meanwhile,
    and closing releases them first, so it never waits for a held worker."""
    import psutil

    before = set(multiprocessing.active_children())
    assert len(_faces(trouble.read([_blank(30), _blank(31)])[0]).faces) == 1
    started = [psutil.Process(p.pid) for p in set(multiprocessing.active_children()) - before]
    workers = [p for p in started if "resource_tracker" not in " ".join(p.cmdline())]  # not multiprocessing's
    assert workers

    def all_stopped(stopped: bool) -> bool:  # a signal arrives a moment after it is sent
        deadline = time.monotonic() + 5
        while any((p.status() == psutil.STATUS_STOPPED) != stopped for p in workers):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    trouble.hold(True)
    assert all_stopped(True)
    done: list[Any] = []
    reader = threading.Thread(target=lambda: done.append(trouble.read([_blank(40)])))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not done  # held: the picture waits
    trouble.hold(False)
    reader.join(30)
    assert len(_faces(done[0][0]).faces) == 1
    assert all_stopped(False)
    trouble.hold(True)
    trouble.close()  # releases them, then stops them
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
