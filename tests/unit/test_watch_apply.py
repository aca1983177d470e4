"""Applying a watched folder's batch to a real database, with a fake indexer that records its calls.

No thread, no observer: ``apply_batch`` is what the indexing worker runs for one job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from isearchd.reports import AddReport
from isearchd.store import Database, ImageRecord
from isearchd.watch.apply import Applied, apply_batch
from isearchd.watch.events import Batch, Op
from isearchd.watch.pathfilter import PathFilter


class FakeIndexer:
    """The host's ``index_paths``: rows for new files (a file with a row is skipped, as if
    unchanged); files named ``bad*`` fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.cancels: list[threading.Event | None] = []

    def __call__(self, db: Database, paths: Sequence[str], cancel: threading.Event | None) -> AddReport:
        self.calls.append(list(paths))
        self.cancels.append(cancel)
        failed = [(p, "cannot decode") for p in paths if Path(p).name.startswith("bad")]
        good = [p for p in paths if (p, "cannot decode") not in failed]
        new = [p for p in good if db.get(p) is None]
        db.add([_record(p) for p in new])
        return AddReport(added=len(new), skipped=len(good) - len(new), failed=failed)


def _record(path: str, label: str | None = None) -> ImageRecord:
    seed = sum(path.encode())
    vec = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return ImageRecord(label or path, path, 1, 1, f"h{seed}", vec)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.open(tmp_path / "home", "db", model_key="fake", dim=8)
    yield d
    d.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    w = tmp_path / "w"
    w.mkdir()
    return w


def _files(root: Path, *names: str) -> list[str]:
    out = []
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(name.encode())
        out.append(str(p))
    return out


def _labels(db: Database) -> list[str]:
    return sorted(r.label for r in db.records())


def test_moves_relabel_rows_and_reindex_the_new_names(db: Database, root: Path) -> None:
    old_a, old_b = str(root / "a.jpg"), str(root / "b.jpg")
    db.add([_record(old_a), _record(old_b)])
    vector = db.get(old_a).vector  # type: ignore[union-attr]
    new_a, new_b = _files(root, "x/a.jpg", "b2.jpg")  # renamed on disk
    index = FakeIndexer()
    done = apply_batch(
        db, Batch(ops=[Op("mv", old_a, new_a), Op("mv", old_b, new_b)]), PathFilter(str(root)), index
    )
    assert (done.moved, done.removed, done.indexed) == (2, 0, 0)
    assert _labels(db) == sorted([new_a, new_b])
    assert np.array_equal(db.get(new_a).vector, vector)  # type: ignore[union-attr]
    assert index.calls == [[new_a, new_b]]  # a stat each: re-embedded only if the content changed


def test_deletes_are_checked_against_the_disk(db: Database, root: Path) -> None:
    gone, back = str(root / "gone.jpg"), str(root / "back.jpg")
    db.add([_record(gone), _record(back)])
    _files(root, "back.jpg")  # deleted, then re-created before the batch ran
    index = FakeIndexer()
    done = apply_batch(db, Batch(ops=[Op("rm", gone), Op("rm", back)]), PathFilter(str(root)), index)
    assert done == Applied(removed=1, gone=[gone])
    assert _labels(db) == [back] and index.calls == []


def test_folder_moves_and_deletes(db: Database, root: Path) -> None:
    moved = [str(root / "d" / "a.jpg"), str(root / "d" / "s" / "b.jpg")]
    deleted = [str(root / "old" / "c.jpg")]
    came_back = [str(root / "again" / "kept.jpg"), str(root / "again" / "lost.jpg")]
    db.add([_record(p) for p in moved + deleted + came_back])
    db.add([_record(str(root / "d" / "n.jpg"), label="n.jpg")])  # a name label moves too, keeps its label
    _files(root, "again/kept.jpg")  # the folder was deleted and re-created with one of its files
    batch = Batch(ops=[Op("mvdir", str(root / "d"), str(root / "e")), Op("rmdir", str(root / "old"))])
    batch.ops.append(Op("rmdir", str(root / "again")))
    done = apply_batch(db, batch, PathFilter(str(root)), FakeIndexer())
    assert (done.moved, done.removed) == (3, 2)
    assert _labels(db) == sorted(
        [str(root / "e" / "a.jpg"), str(root / "e" / "s" / "b.jpg"), came_back[0], "n.jpg"]
    )
    assert db.get("n.jpg").path == str(root / "e" / "n.jpg")  # type: ignore[union-attr]


def test_order_ops_then_index_then_vanished(db: Database, root: Path) -> None:
    old, vanished_gone, vanished_back = str(root / "old.jpg"), str(root / "v1.jpg"), str(root / "v2.jpg")
    db.add([_record(old), _record(vanished_gone), _record(vanished_back)])
    renamed, settled, backlog, _ = _files(root, "new.jpg", "settled.jpg", "backlog.jpg", "v2.jpg")
    batch = Batch(
        ops=[Op("mv", old, renamed), Op("rm", str(root / "deleted.jpg"))],
        index=[settled, renamed, str(root / "late.jpg.part"), backlog],  # a duplicate and an unwanted name
        vanished=[vanished_gone, vanished_back],
    )
    index = FakeIndexer()
    cancel = threading.Event()
    done = apply_batch(db, batch, PathFilter(str(root)), index, cancel)
    assert index.calls == [[renamed, settled, backlog]] and index.cancels == [cancel]
    assert done == Applied(
        moved=1,
        removed=1,
        indexed=2,
        tried=[renamed, settled, backlog],
        gone=[old, str(root / "deleted.jpg"), vanished_gone],  # renamed away, deleted, vanished
    )
    assert _labels(db) == sorted([renamed, settled, backlog, vanished_back])


def test_failures_are_returned(db: Database, root: Path) -> None:
    good, bad = _files(root, "good.jpg", "bad.jpg")
    done = apply_batch(db, Batch(index=[good, bad]), PathFilter(str(root)), FakeIndexer())
    assert done.indexed == 1 and done.tried == [good, bad] and done.failed == [(bad, "cannot decode")]
    assert _labels(db) == [good]


def test_an_empty_index_list_does_not_call_the_indexer(db: Database, root: Path) -> None:
    index = FakeIndexer()
    assert apply_batch(db, Batch(vanished=[str(root / "gone.jpg")]), PathFilter(str(root)), index) == Applied(
        gone=[str(root / "gone.jpg")]
    )
    assert index.calls == []


def test_what_committed_before_an_error_is_still_counted(db: Database, root: Path) -> None:
    old = str(root / "old.jpg")
    db.add([_record(old)])
    (new,) = _files(root, "new.jpg")

    def broken(db: Database, paths: Sequence[str], cancel: threading.Event | None) -> AddReport:
        raise OSError("disk full")

    done = Applied()
    with pytest.raises(OSError, match="disk full"):
        apply_batch(db, Batch(ops=[Op("mv", old, new)]), PathFilter(str(root)), broken, into=done)
    assert done == Applied(moved=1, gone=[old])
    assert _labels(db) == [new]


def test_moved_and_deleted_names_are_reported_gone(db: Database, root: Path) -> None:
    """So `watch --errors` forgets a failed file once it is renamed away or its folder is gone."""
    batch = Batch(ops=[Op("mv", str(root / "a.jpg"), str(root / "b.jpg")), Op("rmdir", str(root / "gone"))])
    done = apply_batch(db, batch, PathFilter(str(root)), FakeIndexer())
    assert done.gone == [str(root / "a.jpg")]
    assert done.gone_folders == [str(root / "gone")]
