"""The add pipeline against a real store and a fake embedder (no torch)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isearchd.engine.indexer import AddItem, Indexer, content_hash
from isearchd.errors import Busy
from isearchd.reports import Progress
from isearchd.store import Database

DIM = 8


class FakeModel:
    """Embeds an image as its normalised mean colour (plus a constant), counting calls."""

    image_size = 32

    def __init__(self) -> None:
        self.images_embedded = 0
        self.batches: list[int] = []

    def fit_image(self, image: Image.Image) -> Image.Image:
        return image  # embeds any size alike: nothing to fit

    def embed_images(self, images: list[Image.Image], *, background: bool = False) -> np.ndarray:
        assert background, "the indexer embeds as background work"
        self.batches.append(len(images))
        self.images_embedded += len(images)
        out = np.zeros((len(images), DIM), dtype=np.float32)
        for i, img in enumerate(images):
            out[i, :3] = np.asarray(img.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) / 255
            out[i, 3] = 0.1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _image(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (40, 30), colour).save(path)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database.open(tmp_path / "home", "t", model_key="fake", dim=DIM)
    yield d  # type: ignore[misc]
    d.close()


def items_for(paths: list[Path]) -> list[AddItem]:
    return [AddItem(label=str(p), path=str(p)) for p in paths]


def test_adds_skips_reuses_and_reports(tmp_path: Path, db: Database) -> None:
    paths = [_image(tmp_path / f"{i}.png", (i * 3, 100, 200 - i)) for i in range(50)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    model = FakeModel()
    events: list[Progress] = []
    report = Indexer(model, db, batch_size=16).run(items_for([*paths[:20], bad, *paths[20:]]), events.append)
    assert (report.added, report.skipped) == (50, 0)
    assert report.failed == [(str(bad), report.failed[0][1])] and report.failed[0][1]
    assert db.count() == 50
    assert max(model.batches) <= 16 and model.images_embedded == 50
    assert events[-1] == Progress(done=51, total=51, added=50, skipped=0, failed=1)
    assert [e.done for e in events] == sorted(e.done for e in events)

    # second run: every file skipped without decoding
    model2 = FakeModel()
    report = Indexer(model2, db).run(items_for(paths))
    assert (report.added, report.skipped, model2.images_embedded) == (0, 50, 0)

    # same bytes under another label: the stored vector is reused, nothing embedded
    copy = tmp_path / "copy.png"
    copy.write_bytes(paths[0].read_bytes())
    report = Indexer(model2, db).run(items_for([copy]))
    assert (report.added, model2.images_embedded) == (1, 0)
    stored = db.get(str(copy))
    assert stored is not None and stored.content_hash == content_hash(paths[0].read_bytes())

    # a touched file (same content, new mtime) is refreshed, counted as skipped, not re-embedded
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    report = Indexer(model2, db).run(items_for([paths[1]]))
    assert (report.added, report.skipped, model2.images_embedded) == (0, 1, 0)
    assert db.get(str(paths[1])).mtime_ns == st.st_mtime_ns + 10**9  # type: ignore[union-attr]

    # a changed file is re-embedded and replaces its row
    _image(paths[2], (1, 2, 3))
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    report = Indexer(model2, db).run(items_for([paths[2]]))
    assert (report.added, model2.images_embedded) == (1, 1)
    assert db.count() == 51


def test_bytes_items_and_duplicate_labels_in_one_run(tmp_path: Path, db: Database) -> None:
    p = _image(tmp_path / "a.png", (10, 20, 30))
    data = p.read_bytes()
    items = [
        AddItem(label="a.png", path="/client/a.png", data=data, size=len(data), mtime_ns=5),
        AddItem(label="a.png", path="/client/other/a.png", data=data, size=len(data), mtime_ns=5),
    ]
    report = Indexer(FakeModel(), db).run(items)
    assert (report.added, report.skipped) == (1, 1)
    rec = db.get("a.png")
    assert rec is not None and rec.path == "/client/a.png" and rec.mtime_ns == 5
    assert Indexer(FakeModel(), db).run(items[:1]).skipped == 1


def test_cancel_stops_at_a_batch_boundary_and_keeps_committed_work(tmp_path: Path, db: Database) -> None:
    paths = [_image(tmp_path / f"{i}.png", (i, 50, 50)) for i in range(100)]
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        cancel.set()  # stop after the first committed batch

    with pytest.raises(Busy, match="committed"):
        Indexer(FakeModel(), db, batch_size=10).run(items_for(paths), progress, cancel)
    assert db.count() == seen[-1].added == 10


def test_a_model_error_on_one_image_fails_only_that_image(tmp_path: Path, db: Database) -> None:
    class Picky(FakeModel):
        def embed_images(self, images: list[Image.Image], *, background: bool = False) -> np.ndarray:
            if any(img.getpixel((0, 0)) == (0, 0, 0) for img in images):
                raise RuntimeError("cannot handle black")
            return super().embed_images(images, background=background)

    paths = [_image(tmp_path / f"{i}.png", (i, i, i)) for i in range(5)]  # 0.png is black
    report = Indexer(Picky(), db).run(items_for(paths))
    assert report.added == 4
    assert [p for p, _ in report.failed] == [str(paths[0])] and "cannot handle black" in report.failed[0][1]
