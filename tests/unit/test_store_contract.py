"""What every store promises (``isearchd.store.interface``), run against the embedded store and
against Qdrant's local mode: the engine, dups, backfills and the watcher rely on nothing else.
(Crash safety is the embedded store's own test, test_store_crash.py; Qdrant's is Qdrant's.)"""

from __future__ import annotations

import numpy as np
import pytest
from store_backends import DIM, records, unit

from isearchd.errors import InvalidRequest, ModelMismatch, NotFound
from isearchd.store import Filters, ImageDatabase, ImageRecord, Move, PhotoInfo, Store, WatchedFolder
from isearchd.store.looks import Look


def open_db(store: Store, name: str = "t", model: str = "ViT-8Y", dim: int = DIM) -> ImageDatabase:
    return store.open(name, model_key=model, dim=dim, create=True)


def labels(db: ImageDatabase, prefix: str | None = None) -> list[str]:
    return [r.label for r in db.records(prefix)]


def test_open_create_list_and_missing(store: Store) -> None:
    assert store.names() == []
    with pytest.raises(NotFound, match="does not exist yet"):
        store.open("photos", model_key="ViT-8Y", dim=DIM, create=False)
    db = open_db(store, "photos")
    assert (db.name, db.model_key, db.dim, db.count()) == ("photos", "ViT-8Y", DIM, 0)
    db.close()
    assert store.names() == ["photos"]
    with pytest.raises(NotFound, match="did you mean 'photos'"):
        store.open("photso", model_key=None, dim=None, create=False)
    with pytest.raises(InvalidRequest):
        store.open("../x", model_key="m", dim=DIM, create=True)
    again = store.open("photos", model_key=None, dim=None, create=False)  # whatever its model
    assert again.model_key == "ViT-8Y"
    info = again.info()
    assert (info.name, info.size, info.model, info.dim) == ("photos", 0, "ViT-8Y", DIM)
    assert info.created and info.capacity >= 0


def test_model_mismatch_and_takeover_of_an_empty_database(store: Store) -> None:
    rng = np.random.default_rng(1)
    db = open_db(store)
    db.add(records(unit(rng, 2)))
    db.close()
    with pytest.raises(ModelMismatch) as e:
        store.open("t", model_key="ViT-45LY+int8", dim=DIM, create=True)
    assert "ViT-8Y" in e.value.message and "-m ViT-8Y" in e.value.message
    db = store.open("t", model_key=None, dim=None, create=False)
    db.clear()
    db.close()
    taken = store.open("t", model_key="RN-19L", dim=64, create=True)  # empty: the new model takes it
    assert (taken.model_key, taken.dim) == ("RN-19L", 64)
    taken.add(records(unit(rng, 1, 64)))
    assert taken.count() == 1


def test_upsert_by_label_and_duplicates_in_batch(store: Store) -> None:
    rng = np.random.default_rng(2)
    v = unit(rng, 3)
    db = open_db(store)
    assert db.add(records(v[:2])) == 2
    first = db.get("/photos/00000.jpg")
    assert first is not None and (first.size, first.mtime_ns, first.content_hash) == (1000, 7, "h0")
    changed = ImageRecord("/photos/00000.jpg", "/photos/00000.jpg", 5, 9, "new", v[2])
    assert db.add([changed, changed]) == 1
    assert db.count() == 2
    got = db.get("/photos/00000.jpg")
    assert got is not None and (got.size, got.mtime_ns, got.content_hash) == (5, 9, "new")
    assert got.vector is not None and np.allclose(got.vector, v[2], atol=1e-6)
    hits = db.search(v[2], k=1)
    assert hits[0].label == "/photos/00000.jpg" and hits[0].similarity == 100.0
    assert db.search(v[0], k=1)[0].similarity < 100.0  # the old vector is gone
    assert db.get("/x") is None
    assert sorted(labels(db)) == ["/photos/00000.jpg", "/photos/00001.jpg"]


def test_identical_content_reuses_the_stored_vector_and_bad_input_writes_nothing(store: Store) -> None:
    v = unit(np.random.default_rng(3), 1)
    db = open_db(store)
    db.add([ImageRecord("/a/cat.jpg", "/a/cat.jpg", 10, 1, "sha-cat", v[0])])
    reused = db.vector_for_hash("sha-cat")
    assert reused is not None and np.allclose(reused, v[0], atol=1e-6)
    assert db.vector_for_hash("sha-other") is None
    db.add([ImageRecord("/b/copy.jpg", "/b/copy.jpg", 10, 2, "sha-cat", None)])
    copy = db.get("/b/copy.jpg")
    assert copy is not None and copy.vector is not None and np.allclose(copy.vector, v[0], atol=1e-6)
    for bad in (
        ImageRecord("/c.jpg", "/c.jpg", 1, 1, "unknown", None),
        ImageRecord("/c.jpg", "/c.jpg", 1, 1, "h", np.ones(DIM + 1, np.float32)),
        ImageRecord("/c.jpg", "/c.jpg", 1, 1, "h", np.zeros(DIM, np.float32)),
        ImageRecord("", "/c.jpg", 1, 1, "h", v[0]),
    ):
        with pytest.raises(InvalidRequest):
            db.add([ImageRecord("/ok.jpg", "/ok.jpg", 1, 1, "ok", v[0]), bad])
    with pytest.raises(InvalidRequest):
        db.search(np.ones(DIM + 1, np.float32))
    with pytest.raises(InvalidRequest):
        db.search(np.ones(DIM, np.float32), k=0)
    assert db.count() == 2


def test_delete_labels_and_folder_prefix(store: Store) -> None:
    rng = np.random.default_rng(4)
    paths = ["/a/b", "/a/b/x.jpg", "/a/b/sub/y.jpg", "/a/bc/z.jpg", "/a/b.jpg", "/q/r.jpg"]
    v = unit(rng, len(paths))
    db = open_db(store)
    db.add([ImageRecord(p, p, 1, 1, p, v[i]) for i, p in enumerate(paths)])
    assert db.count_below("/a/b") == 3 and db.count_below("/a") == 5
    assert db.delete_prefix("/a/b/") == 2  # trailing slash: only what is inside the folder
    assert db.delete_prefix("/a/b") == 1  # the file "/a/b" itself
    assert set(labels(db)) == {"/a/bc/z.jpg", "/a/b.jpg", "/q/r.jpg"}
    assert db.delete_labels(["/q/r.jpg", "/missing.jpg"]) == 1
    assert db.delete_labels([]) == 0
    assert labels(db, "/a") == ["/a/b.jpg", "/a/bc/z.jpg"]  # ordered by path
    assert {h.label for h in db.search(v[1], k=10)} <= {"/a/bc/z.jpg", "/a/b.jpg"}


def test_rename_and_move_prefix_keep_vectors(store: Store) -> None:
    v = unit(np.random.default_rng(5), 4)
    db = open_db(store)
    db.add(
        [
            ImageRecord("/p/a.jpg", "/p/a.jpg", 1, 1, "ha", v[0]),
            ImageRecord("name.jpg", "/p/name.jpg", 1, 1, "hn", v[1]),  # labelled by name
            ImageRecord("/p/sub/c.jpg", "/p/sub/c.jpg", 1, 1, "hc", v[2]),
            ImageRecord("/p/b.jpg", "/p/b.jpg", 1, 1, "hb", v[3]),
        ]
    )
    # a.jpg moved over b.jpg: b's row goes (the file it described was replaced)
    assert db.rename([Move("/p/a.jpg", "/p/b.jpg", 2, 3), Move("name.jpg", "/p/renamed.jpg")]) == 2
    moved = db.get("/p/b.jpg")
    assert moved is not None and moved.content_hash == "ha" and (moved.size, moved.mtime_ns) == (2, 3)
    assert moved.vector is not None and np.allclose(moved.vector, v[0], atol=1e-6)
    named = db.get("name.jpg")
    assert named is not None and named.path == "/p/renamed.jpg"
    assert db.get("/p/a.jpg") is None and db.count() == 3
    assert db.move_prefix("/p/sub", "/q/new") == 1
    assert labels(db, "/q") == ["/q/new/c.jpg"] and db.count_below("/p/sub") == 0
    hit = db.search(v[2], k=1)[0]
    assert (hit.label, hit.path, hit.similarity) == ("/q/new/c.jpg", "/q/new/c.jpg", 100.0)


def test_search_rounding_order_threshold_and_ids(store: Store) -> None:
    v = unit(np.random.default_rng(6), 50)
    db = open_db(store)
    assert db.search(v[0]) == []
    db.add(records(v))
    q = v[7]
    hits = db.search(q, k=10)
    assert len(hits) == 10 and hits[0].label == "/photos/00007.jpg" and hits[0].similarity == 100.0
    sims = [h.similarity for h in hits]
    assert sims == [round(float(c) * 100, 1) for c in np.sort(v @ q)[::-1][:10]]
    threshold = sims[4]
    assert all(h.similarity >= threshold for h in db.search(q, k=10, min_similarity=threshold))
    assert len(db.search(q, k=100)) == int(np.sum(np.round(v @ q * 100, 1) >= 0))  # 0 drops negatives
    assert [h.label for h in db.search(q, k=10, min_similarity=100)] == ["/photos/00007.jpg"]
    with pytest.raises(InvalidRequest):
        db.search(q, min_similarity=-1)
    ids = [h.id for h in hits]
    assert all(isinstance(i, int) and 0 < i < 2**53 for i in ids) and len(set(ids)) == 10
    assert hits[0].host is None  # this machine's
    rec = db.record_by_id(hits[0].id or 0)
    assert rec is not None and rec.label == "/photos/00007.jpg" and rec.content_hash == "h7"
    assert db.record_by_id(2**52 + 12345) is None
    db.add(records(v[7:8], start=7))  # adding it again keeps its id
    assert db.search(q, k=1)[0].id == hits[0].id


def test_filters_and_details(store: Store) -> None:
    v = np.abs(unit(np.random.default_rng(7), 6))  # no negative similarity (which 0 % drops)
    db = open_db(store)
    infos = [
        PhotoInfo(taken_local="2019-07-01T10:00:00", city="Lisbon", country="Portugal", type="jpeg", width=4),
        PhotoInfo(taken_local="2019-06-30T23:59:59", city="Porto", country="Portugal", type="png"),
        PhotoInfo(taken_local="2021-01-01T00:00:00", city="Paris", country="France", type="jpeg"),
        None,
    ]
    paths = ["/x/a/1.jpg", "/x/a/2.png", "/x/b/3.jpg", "/x/ab/4.jpg"]
    db.add([ImageRecord(p, p, 10 + i, 1, f"h{i}", v[i], infos[i]) for i, p in enumerate(paths)])

    def found(f: Filters) -> set[str]:
        return {h.label for h in db.search(v[0], k=10, filters=f)}

    assert found(Filters(after="2019-07-01T00:00:00")) == {"/x/a/1.jpg", "/x/b/3.jpg"}
    assert found(Filters(before="2019-07-01T10:00:00")) == {"/x/a/2.png"}
    assert found(Filters(within=("/x/a",))) == {"/x/a/1.jpg", "/x/a/2.png"}
    assert found(Filters(within=("/x/a", "/x/ab"))) == {"/x/a/1.jpg", "/x/a/2.png", "/x/ab/4.jpg"}
    assert found(Filters(place="portugal")) == {"/x/a/1.jpg", "/x/a/2.png"}
    assert found(Filters(place="  LISBON ")) == {"/x/a/1.jpg"}
    assert found(Filters(types=("png",))) == {"/x/a/2.png"}
    assert found(Filters(types=("jpeg",), place="France")) == {"/x/b/3.jpg"}
    hit = db.search(v[0], k=1, details=True)[0]
    assert (hit.info.city, hit.info.width, hit.bytes) == ("Lisbon", 4, 10)
    assert hit.info.place == "Lisbon, Portugal"


def test_metadata_and_looks_backfill(store: Store) -> None:
    v = unit(np.random.default_rng(8), 3)
    db = open_db(store)
    look = Look(0xFEDCBA9876543210, bytes(range(48)))
    db.add(
        [
            ImageRecord("/m/a.jpg", "/m/a.jpg", 1, 11, "ha", v[0]),
            ImageRecord("/m/b.jpg", "/m/b.jpg", 1, 12, "hb", v[1], PhotoInfo(type="png"), look),
            ImageRecord("/m/c.jpg", "/m/c.jpg", 1, 13, "hc", v[2]),
        ]
    )
    assert db.count_pending("metadata", 1) == 2 and db.count_pending("looks", 1) == 2
    unread = sorted(db.pending("metadata", 1, 10), key=lambda r: r.label)
    assert [(f.label, f.path, f.mtime_ns) for f in unread] == [
        ("/m/a.jpg", "/m/a.jpg", 11),
        ("/m/c.jpg", "/m/c.jpg", 13),
    ]
    assert len(db.pending("metadata", 1, 1)) == 1
    ids = {f.label: f.id for f in unread}
    db.store_metadata({ids["/m/a.jpg"]: PhotoInfo(city="Oslo", type="jpeg"), ids["/m/c.jpg"]: None})
    assert db.count_pending("metadata", 1) == 0 and db.count_failed("metadata", 1) == 1
    assert {h.label for h in db.search(v[0], k=5, filters=Filters(place="oslo"))} == {"/m/a.jpg"}
    unknown = {f.path: f.id for f in db.pending("looks", 1, 10)}
    assert set(unknown) == {"/m/a.jpg", "/m/c.jpg"}
    db.store_looks({unknown["/m/a.jpg"]: look, unknown["/m/c.jpg"]: None})
    assert db.count_pending("looks", 1) == 0 and db.count_failed("looks", 1) == 1
    details = db.details([ids["/m/a.jpg"], ids["/m/c.jpg"], 2**52 + 1])
    assert set(details) == {ids["/m/a.jpg"], ids["/m/c.jpg"]}
    got = details[ids["/m/a.jpg"]]
    assert (got.label, got.path, got.info.city) == ("/m/a.jpg", "/m/a.jpg", "Oslo")
    assert (got.size, got.look) == (1, look)
    assert details[ids["/m/c.jpg"]].look is None
    # re-adding without info keeps what was read
    db.add([ImageRecord("/m/a.jpg", "/m/a.jpg", 2, 14, "ha2", v[0])])
    assert db.count_pending("metadata", 1) == 0
    assert db.search(v[0], k=1, details=True)[0].info.city == "Oslo"


def test_analysis_state_follows_the_images(store: Store) -> None:
    """What a background analysis has read: pending until recorded (a failure too), again when
    its version changes (either way: the words analysis's version includes its language), and
    forgotten when an image is deleted or its content changes."""
    v = unit(np.random.default_rng(11), 4)
    db = open_db(store)
    db.add(records(v, "/an"))
    assert db.count_pending("faces", 1) == 4 and db.count_failed("faces", 1) == 0
    assert len(db.pending("faces", 1, 2)) == 2
    files = {f.label: f for f in db.pending("faces", 1, 10)}
    first, second, third, fourth = (files[f"/an/{i:05d}.jpg"] for i in range(4))
    db.record_analysis("faces", 1, {first.id: None, second.id: "truncated JPEG", 2**52 + 3: None})
    assert db.count_pending("faces", 1) == 2 and db.count_failed("faces", 1) == 1
    assert {f.id for f in db.pending("faces", 1, 10)} == {third.id, fourth.id}
    assert db.count_pending("words", 1) == 4  # each analysis its own
    assert db.count_pending("faces", 2) == 4  # a new version reads them all again
    db.record_analysis("words", 4001, {first.id: None, second.id: "truncated JPEG"})
    assert db.count_pending("words", 4001) == 2 and db.count_failed("words", 4001) == 1
    assert db.count_pending("words", 1) == 4 and db.count_failed("words", 1) == 0  # another language
    db.record_analysis("words", 1, {first.id: None})  # read in that one...
    assert db.count_pending("words", 4001) == 3  # ...is read again when the language changes back
    # a changed picture is read again; a renamed one keeps its state; a deleted one leaves
    db.add([ImageRecord(first.label, first.path, 9, 99, "changed", v[0])])
    db.rename([Move(second.path, "/an/renamed.jpg")])
    db.delete_labels([third.label])
    assert {f.label for f in db.pending("faces", 1, 10)} == {first.label, fourth.label}
    assert db.count_failed("faces", 1) == 1
    db.clear()
    assert db.count_pending("faces", 1) == 0 and db.count_failed("faces", 1) == 0


def test_vectors_below_and_neighbours(store: Store) -> None:
    v = unit(np.random.default_rng(9), 20)
    db = open_db(store)
    db.add(records(v[:12], "/d/one") + records(v[12:], "/d/two", start=12))
    ids, matrix = db.vectors_below(None)
    assert len(ids) == 20 and matrix.shape == (20, DIM)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    below_ids, _ = db.vectors_below("/d/two")
    assert len(below_ids) == 8 and set(below_ids.tolist()) <= set(ids.tolist())
    by_id = dict(zip(ids.tolist(), matrix, strict=True))
    found = db.neighbours(ids[:5], 4)
    assert found is not None
    nids, cosines = found
    assert nids.shape == (5, 4) and cosines.shape == (5, 4)
    for row, ident in enumerate(ids[:5].tolist()):
        exact = sorted(by_id, key=lambda j: -float(by_id[j] @ by_id[ident]))[:4]
        assert sorted(nids[row].tolist()) == sorted(exact)
    details = db.details(ids.tolist())
    assert len(details) == 20


def test_folders_are_kept_by_clear(store: Store) -> None:
    v = unit(np.random.default_rng(10), 3)
    db = open_db(store)
    db.add_folder("/watch/b", ["*.tmp"])
    db.add_folder("/watch/a")
    db.add_folder("/watch/b", [])  # again: new options
    assert db.folders() == [WatchedFolder("/watch/a"), WatchedFolder("/watch/b")]
    db.add_folder("/watch/b", ["*.tmp", "**/raw/**"])
    assert db.folders()[1].exclude == ("*.tmp", "**/raw/**")
    db.add(records(v))
    db.clear()
    assert db.count() == 0 and db.search(v[0]) == []
    assert [f.path for f in store.watched_folders("t")] == ["/watch/a", "/watch/b"]
    assert db.remove_folder("/watch/a") and not db.remove_folder("/watch/a")
    db.close()
    assert [f.path for f in store.watched_folders("t")] == ["/watch/b"]
    assert store.watched_folders("nope") == []
    again = store.open("t", model_key="ViT-8Y", dim=DIM, create=False)
    assert again.count() == 0 and again.model_key == "ViT-8Y"


def test_names_of_any_bytes_round_trip(store: Store) -> None:
    v = unit(np.random.default_rng(11), 3)
    odd = "/ph/caf\udce9/\udcff\udcfe.jpg"  # Latin-1 bytes: not UTF-8
    db = open_db(store)
    db.add(
        [
            ImageRecord(odd, odd, 1, 1, "h1", v[0]),
            ImageRecord("/ph/café/ü.jpg", "/ph/café/ü.jpg", 1, 1, "h2", v[1]),
            ImageRecord("/ph/b64:x.jpg", "/ph/b64:x.jpg", 1, 1, "h3", v[2]),
        ]
    )
    got = db.get(odd)
    assert got is not None and got.path == odd
    assert db.search(v[0], k=1)[0].path == odd
    assert labels(db, "/ph/caf\udce9") == [odd]
    assert {h.label for h in db.search(v[0], k=5, filters=Filters(within=("/ph/caf\udce9",)))} == {odd}
    assert db.rename([Move(odd, "/ph/\udc80.jpg")]) == 1
    assert labels(db, "/ph") == sorted(["/ph/\udc80.jpg", "/ph/café/ü.jpg", "/ph/b64:x.jpg"], key=os_bytes)
    db.add_folder(odd)
    assert [f.path for f in db.folders()] == [odd]


def test_indexed_paths_in_one_look_up(store: Store) -> None:
    db = open_db(store)
    odd = "/ph/\udcff.CR2"
    db.add([*records(unit(np.random.default_rng(12), 700), prefix="/ph"),
            ImageRecord(odd, odd, 1, 1, "odd", unit(np.random.default_rng(13), 1)[0])])  # fmt: skip
    asked = [f"/ph/{i:05d}.jpg" for i in range(0, 1400, 2)] + [odd, "/ph/00001.JPG", "/ph", "/ph/"]
    assert db.indexed_paths(asked) == {f"/ph/{i:05d}.jpg" for i in range(0, 700, 2)} | {odd}
    assert db.indexed_paths([]) == set()


def os_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def test_export_gives_everything_a_copy_needs(store: Store) -> None:
    v = unit(np.random.default_rng(12), 5)
    db = open_db(store)
    look = Look(7, bytes(48))
    batch = records(v)
    batch[0] = ImageRecord(batch[0].label, batch[0].path, 1, 2, "h", v[0], PhotoInfo(type="gif"), look)
    db.add(batch)
    out = [r for chunk in db.export(2) for r in chunk]
    assert len(out) == 5 and all(len(c) <= 2 for c in db.export(2))
    first = next(r for r in out if r.label == batch[0].label)
    assert first.info == PhotoInfo(type="gif") and first.look == look
    assert first.vector is not None and np.allclose(first.vector, v[0], atol=1e-6)
    assert all(r.info is None and r.look is None for r in out if r is not first)
