"""Database behaviour: names, models, upserts, duplicates, deletes, search, lifecycle, recovery."""

from __future__ import annotations

import errno
import logging
import re
import shutil
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from store_backends import DIM, records, unit

from isearchd.errors import InvalidRequest, ModelMismatch, NotFound, StoreError
from isearchd.store import Database, ImageRecord, SavePolicy, list_databases, validate_db_name
from isearchd.store import indexfile as indexfile_mod
from isearchd.store import saver as saver_mod
from isearchd.store import vectors as vectors_mod

QUIET = SavePolicy(background=False)


def open_db(home: Path, name: str = "t", model: str = "ViT-8Y", dim: int = DIM) -> Database:
    return Database.open(home, name, model_key=model, dim=dim, save_policy=QUIET)


def assert_consistent(db: Database) -> None:
    labels = [r.label for r in db.records()]
    assert len(labels) == len(set(labels)) == db.count()
    assert len(db.index_ids()) == db.count()


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "my_gallery", "test-db.2", "图片", "A" * 64])
def test_valid_names(name: str) -> None:
    assert validate_db_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "a\\b", "../x", ".hidden", "a..b", "a\x00b", "a\nb", "A" * 65, " a", "a:b"]
)
def test_invalid_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        validate_db_name(name)
    with pytest.raises(InvalidRequest):
        Database.open(tmp_path, name, model_key="m", dim=DIM)
    assert list(tmp_path.iterdir()) == []


# -- creation, models ----------------------------------------------------------------------------


def test_open_missing_without_create_or_model(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        Database.open(tmp_path, "nope", model_key="m", dim=DIM, create=False)
    with pytest.raises(NotFound):
        Database.open(tmp_path, "nope")
    assert not (tmp_path / "nope").exists()


def test_missing_database_names_the_closest_not_a_path(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as fresh:
        Database.open(tmp_path, "default", create=False)
    assert "does not exist yet" in fresh.value.message and "isearch add" in fresh.value.message
    for name in ("photos", "Work", "cats"):
        Database.open(tmp_path, name, model_key="m", dim=DIM).close()
    with pytest.raises(NotFound) as typo:
        Database.open(tmp_path, "photso", create=False)
    assert "did you mean 'photos'?" in typo.value.message
    assert "existing databases: Work, cats, photos" in typo.value.message
    with pytest.raises(NotFound) as case:
        Database.open(tmp_path, "work", create=False)
    assert "did you mean 'Work'?" in case.value.message
    with pytest.raises(NotFound) as unlike:
        Database.open(tmp_path, "zzz", create=False)
    assert "did you mean" not in unlike.value.message
    for err in (fresh, typo, case, unlike):
        assert str(tmp_path) not in err.value.message  # names databases, never catalog files


@pytest.mark.parametrize(
    ("built_with", "hint"),
    [
        ("ViT-45LY+int8", "`isearch service start -m ViT-45LY -p int8`"),
        ("custom:mine.pt", "the checkpoint mine.pt"),
        ("custom:mine.pt+int8", "the checkpoint mine.pt -p int8"),
    ],
)
def test_model_mismatch_says_how_to_start_with_the_database_model(
    tmp_path: Path, built_with: str, hint: str
) -> None:
    rng = np.random.default_rng(2)
    with open_db(tmp_path, "p", model=built_with) as db:
        db.add(records(unit(rng, 3)))
    with pytest.raises(ModelMismatch, match=re.escape(hint)):
        open_db(tmp_path, "p", model="ViT-45LY")


def test_model_mismatch_names_both_models_and_the_fix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with open_db(tmp_path, "g", model="ViT-45LY") as db:
        db.add(records(unit(rng, 5)))
    with pytest.raises(ModelMismatch) as err:
        open_db(tmp_path, "g", model="RN-19L", dim=1024)
    msg = err.value.message
    assert "ViT-45LY" in msg and "RN-19L" in msg and "isearch db --clear -d g" in msg
    assert "`isearch service start -m ViT-45LY`" in msg
    # model_key None opens whatever it has
    with Database.open(tmp_path, "g", save_policy=QUIET) as db:
        assert (db.model_key, db.dim, db.count()) == ("ViT-45LY", DIM, 5)
        db.clear()
    # cleared: another model may take it over; embedding spaces are not mixed
    with open_db(tmp_path, "g", model="RN-19L", dim=1024) as db:
        assert (db.model_key, db.dim, db.count()) == ("RN-19L", 1024, 0)
        db.add(records(unit(rng, 3, 1024)))
        assert db.info().model == "RN-19L"


# -- adds, duplicates, hash reuse ----------------------------------------------------------------


def test_upsert_by_label_and_duplicates_in_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    v = unit(rng, 3)
    with open_db(tmp_path) as db:
        assert db.add(records(v[:2])) == 2
        first = db.get("/photos/00000.jpg")
        assert first is not None and first.size == 1000
        changed = ImageRecord("/photos/00000.jpg", "/photos/00000.jpg", 5, 9, "new", v[2])
        same_twice = [changed, changed]
        assert db.add(same_twice) == 1
        assert db.count() == 2
        got = db.get("/photos/00000.jpg")
        assert got is not None and (got.size, got.mtime_ns, got.content_hash) == (5, 9, "new")
        assert got.vector is not None and np.allclose(got.vector, v[2], atol=1e-6)
        hits = db.search(v[2], k=1)
        assert hits[0].label == "/photos/00000.jpg" and hits[0].similarity == 100.0
        assert db.search(v[0], k=1)[0].similarity < 100.0  # the old vector is gone from the index
        assert db.labels_present(["/photos/00000.jpg", "/photos/00001.jpg", "/x"]) == {
            "/photos/00000.jpg",
            "/photos/00001.jpg",
        }
        assert db.get("/x") is None
        assert_consistent(db)


def test_identical_content_reuses_the_stored_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    v = unit(rng, 1)
    with open_db(tmp_path) as db:
        db.add([ImageRecord("/a/cat.jpg", "/a/cat.jpg", 10, 1, "sha-cat", v[0])])
        reused = db.vector_for_hash("sha-cat")
        assert reused is not None and np.allclose(reused, v[0], atol=1e-6)
        assert db.vector_for_hash("sha-other") is None
        db.add([ImageRecord("/b/copy.jpg", "/b/copy.jpg", 10, 2, "sha-cat", None)])
        copy = db.get("/b/copy.jpg")
        assert copy is not None and copy.vector is not None and np.allclose(copy.vector, v[0], atol=1e-6)
        with pytest.raises(InvalidRequest):
            db.add([ImageRecord("/c.jpg", "/c.jpg", 1, 1, "unknown", None)])
        assert db.count() == 2


# -- deletes -------------------------------------------------------------------------------------


def test_delete_labels_and_folder_prefix(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    paths = ["/a/b", "/a/b/x.jpg", "/a/b/sub/y.jpg", "/a/bc/z.jpg", "/a/b.jpg", "/q/r.jpg"]
    v = unit(rng, len(paths))
    with open_db(tmp_path) as db:
        db.add([ImageRecord(p, p, 1, 1, p, v[i]) for i, p in enumerate(paths)])
        assert db.delete_prefix("/a/b/") == 2  # trailing slash: only what is inside the folder
        assert db.delete_prefix("/a/b") == 1  # the file "/a/b" itself
        assert {r.label for r in db.records()} == {"/a/bc/z.jpg", "/a/b.jpg", "/q/r.jpg"}
        assert db.delete_labels(["/q/r.jpg", "/missing.jpg"]) == 1
        assert db.delete_labels([]) == 0
        assert [r.label for r in db.records("/a")] == ["/a/b.jpg", "/a/bc/z.jpg"]
        for h in db.search(v[1], k=10):
            assert h.label in {"/a/bc/z.jpg", "/a/b.jpg"}
        assert_consistent(db)


# -- search --------------------------------------------------------------------------------------


def test_search_rounding_order_and_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    v = unit(rng, 50)
    with open_db(tmp_path) as db:
        db.add(records(v))
        q = v[7]
        hits = db.search(q, k=10)
        assert len(hits) == 10 and hits[0].label == "/photos/00007.jpg" and hits[0].similarity == 100.0
        sims = [h.similarity for h in hits]
        assert sims == sorted(sims, reverse=True)
        exact = np.sort(v @ q)[::-1][:10]
        assert sims == [round(float(c) * 100, 1) for c in exact]
        assert all(h.similarity == round(h.similarity, 1) for h in hits)
        threshold = sims[4]
        filtered = db.search(q, k=10, min_similarity=threshold)
        assert len(filtered) >= 5 and all(h.similarity >= threshold for h in filtered)
        # as the original: the default threshold 0 drops negative similarities
        assert len(db.search(q, k=100)) == int(np.sum(np.round(v @ q * 100, 1) >= 0))
        with pytest.raises(InvalidRequest):
            db.search(q, min_similarity=-1)
        assert [h.label for h in db.search(q, k=10, min_similarity=100)] == ["/photos/00007.jpg"]


# -- info, clear, drop, list, folders ------------------------------------------------------------


def test_info_clear_drop_and_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    assert list_databases(tmp_path) == []
    with open_db(tmp_path, "b") as db:
        db.add(records(unit(rng, 20)))
        db.add_folder("/photos", ["*.tmp"])
        info = db.info()
        assert info.name == "b" and info.base == str(tmp_path / "b")
        assert info.size == 20 and info.capacity >= 20 and info.disk_bytes
        assert (info.model, info.dim) == ("ViT-8Y", DIM) and info.created
        db.clear()
        assert db.count() == 0 and db.search(unit(rng, 1)[0]) == []
        assert db.folders()[0].path == "/photos" and db.folders()[0].exclude == ("*.tmp",)
        db.add(records(unit(rng, 3)))
        assert db.count() == 3
    with open_db(tmp_path, "a"):
        pass
    (tmp_path / "not-a-db").mkdir()
    assert list_databases(tmp_path) == ["a", "b"]
    with Database.open(tmp_path, "b", save_policy=QUIET) as db:
        assert db.count() == 3 and db.info().model == "ViT-8Y"
        assert db.remove_folder("/photos") and not db.remove_folder("/photos")
    shutil.rmtree(tmp_path / "b")
    assert list_databases(tmp_path) == ["a"]
    assert list_databases(tmp_path / "missing") == []


# -- recovery ------------------------------------------------------------------------------------


def test_unsaved_changes_are_replayed_on_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    v = unit(rng, 160)
    crashed = open_db(tmp_path)
    crashed.add(records(v[:100]))
    crashed.save_index()
    crashed.add(records(v[100:150], start=100))  # never saved to the index file
    crashed.delete_labels([f"/photos/{i:05d}.jpg" for i in range(10)])
    crashed.add(records(v[150:160], start=20))  # updates ids 20..29 with new vectors
    # no close(): as after a crash, the file on disk holds only the first 100 vectors
    with open_db(tmp_path) as db:
        assert db.count() == 140
        assert_consistent(db)
        for i in range(20, 30):
            hit = db.search(v[150 + i - 20], k=1)[0]
            assert (hit.label, hit.similarity) == (f"/photos/{i:05d}.jpg", 100.0)
        assert all(db.search(v[i], k=1)[0].similarity < 100.0 for i in range(10))
        assert db.search(v[120], k=1)[0].label == "/photos/00120.jpg"
    crashed.catalog.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-sidecar", "bad-sidecar"])
def test_damaged_index_is_rebuilt_from_the_catalog(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(8)
    v = unit(rng, 300)
    with open_db(tmp_path) as db:
        db.add(records(v))
    index, sidecar = tmp_path / "t" / "vectors.hnsw", tmp_path / "t" / "vectors.json"
    data = index.read_bytes()
    if damage == "truncate":
        index.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        index.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "no-sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="isearchd.store.vectors"), open_db(tmp_path) as db:
        assert "rebuilding" in caplog.text
        assert db.count() == 300
        assert_consistent(db)
        for i in range(0, 300, 7):
            assert db.search(v[i], k=1)[0].label == f"/photos/{i:05d}.jpg"
    with caplog.at_level(logging.WARNING, logger="isearchd.store.vectors"):
        caplog.clear()
        with open_db(tmp_path) as db:  # the rebuilt index was saved: no second rebuild
            assert db.count() == 300
        assert "rebuilding" not in caplog.text


def test_corrupt_catalog_is_an_error_and_left_untouched(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with open_db(tmp_path) as db:
        db.add(records(unit(rng, 10)))
    catalog = tmp_path / "t" / "catalog.sqlite"
    for wal in catalog.parent.glob("catalog.sqlite-*"):
        wal.unlink()
    garbage = b"this is not a database" + np.random.default_rng(1).bytes(8192)
    catalog.write_bytes(garbage)
    before = sorted(p.name for p in catalog.parent.iterdir())
    with pytest.raises(StoreError) as err:
        open_db(tmp_path)
    assert str(catalog) in err.value.message
    assert catalog.read_bytes() == garbage
    assert sorted(p.name for p in catalog.parent.iterdir()) == before
    assert list_databases(tmp_path) == ["t"]  # still listed; never deleted or reset


def test_failed_index_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(10)
    v = unit(rng, 80)
    db = open_db(tmp_path)
    db.add(records(v[:50]))
    db.save_index()
    index, sidecar = tmp_path / "t" / "vectors.hnsw", tmp_path / "t" / "vectors.json"
    saved = (index.read_bytes(), sidecar.read_bytes())
    db.add(records(v[50:], start=50))

    def disk_full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(indexfile_mod, "fsync_file", disk_full)
    with pytest.raises(StoreError) as err:
        db.save_index()
    assert "No space left" in err.value.message and "intact" in err.value.message
    assert (index.read_bytes(), sidecar.read_bytes()) == saved
    assert sorted(p.name for p in index.parent.iterdir() if p.name.endswith(".tmp")) == []
    with pytest.raises(StoreError):
        db.close()  # close reports the failed save too
    monkeypatch.undo()
    with open_db(tmp_path) as db2:  # the old file is loaded and the 30 newer rows replayed
        assert db2.count() == 80
        assert_consistent(db2)
        assert db2.search(v[70], k=1)[0].label == "/photos/00070.jpg"


def test_crash_between_the_two_renames_keeps_a_loadable_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(12)
    v = unit(rng, 60)
    db = open_db(tmp_path)
    db.add(records(v[:40]))
    db.save_index()
    db.add(records(v[40:], start=40))
    real_replace = Path.replace

    def fail_index_rename(self: Path, target: Path) -> Path:
        if self.name == "vectors.hnsw.tmp":
            raise OSError(errno.EIO, "I/O error")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", fail_index_rename)
    with pytest.raises(StoreError):
        db.save_index()  # the new sidecar is in place, the index file is still the old one
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="isearchd.store.vectors"), open_db(tmp_path) as db2:
        assert "rebuilding" not in caplog.text  # the sidecar's "previous" entry describes the old file
        assert db2.count() == 60
        assert_consistent(db2)
        assert db2.search(v[50], k=1)[0].label == "/photos/00050.jpg"
    db.close(save=False)


def test_background_saver_writes_after_enough_changes(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    policy = SavePolicy(max_changes=100, max_seconds=30.0, background=True)
    db = Database.open(tmp_path, "t", model_key="m", dim=DIM, save_policy=policy)
    index = tmp_path / "t" / "vectors.hnsw"
    deadline = time.monotonic() + 10
    while not index.exists() and time.monotonic() < deadline:  # the new empty index
        time.sleep(0.02)
    first = index.stat().st_mtime_ns
    for start in range(0, 40, 10):  # 40 changes: below the threshold, nothing written
        db.add(records(unit(rng, 10), start=start))
    time.sleep(0.3)
    assert index.stat().st_mtime_ns == first
    db.add(records(unit(rng, 70), start=40))
    while index.stat().st_mtime_ns == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert index.stat().st_mtime_ns != first
    db.close()


def test_saves_are_spaced_by_their_own_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large index takes seconds to write: the next save waits `spacing` times that long."""
    rng = np.random.default_rng(12)
    policy = SavePolicy(max_changes=10, max_seconds=1.0, background=False, spacing=9.0)
    db = Database.open(tmp_path, "t", model_key="m", dim=DIM, save_policy=policy)
    clock = [1000.0]
    # the database's clock only: other threads of the test process keep the real one
    monkeypatch.setattr(saver_mod, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    real_save = db._vectors.save

    def slow_save(seq: int) -> None:  # a save that takes 2 s on the (fake) clock
        real_save(seq)
        clock[0] += 2.0

    monkeypatch.setattr(db._vectors, "save", slow_save)
    db.add(records(unit(rng, 20)))
    db.save_index()  # ended at 1002: the next save is due no sooner than 1002 + 9 * 2
    db.add(records(unit(rng, 20), start=20))  # over max_changes and, later, over max_seconds
    clock[0] = 1019.9
    assert not db._saver.due()
    clock[0] = 1020.1
    assert db._saver.due()
    db.save_index()
    db.close()
    reopened = Database.open(tmp_path, "t", model_key="m", dim=DIM)
    assert reopened.count() == 40
    reopened.close()


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_adders_and_searchers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_mod, "EXACT_MAX_ROWS", 300)  # exercise the HNSW path as well
    policy = SavePolicy(max_changes=500, max_seconds=0.5, background=True)
    db = Database.open(tmp_path, "t", model_key="m", dim=DIM, save_policy=policy)
    stop = time.monotonic() + 3.0
    errors: list[BaseException] = []
    added = [0] * 4
    searches = [0] * 4

    def adder(t: int) -> None:
        rng = np.random.default_rng(100 + t)
        n = 0
        try:
            while time.monotonic() < stop:
                db.add(records(unit(rng, 20), prefix=f"/t{t}", start=n))
                n += 20
                added[t] = n
                if n % 200 == 0:  # some re-adds of existing labels too
                    db.add(records(unit(rng, 5), prefix=f"/t{t}", start=0))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def searcher(t: int) -> None:
        rng = np.random.default_rng(200 + t)
        try:
            while time.monotonic() < stop:
                hits = db.search(unit(rng, 1)[0], k=10, min_similarity=float(t))
                sims = [h.similarity for h in hits]
                assert sims == sorted(sims, reverse=True)
                searches[t] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=adder, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=searcher, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert db.count() == sum(added) and all(searches)
    assert_consistent(db)
    db.close()
    with open_db(tmp_path, model="m") as again:
        assert again.count() == sum(added)
        assert_consistent(again)
