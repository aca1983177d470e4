"""People in both stores (``isearchd.store.people*`` on an embedded ``Database``, and the same
rules on a Qdrant database in qdrant-client's local mode, ``isearchd.store.qdrant_people``): faces
stored and grouped, the list, names, merges undone exactly, corrections that survive re-analysis
and reopening (another daemon opening the same Qdrant), deletes, forgetting, and search by people.
The migration from schema 6 is the embedded store's own."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from store_backends import BACKENDS, DIM, make_store, records, unit

from isearchd.engine.grouping import plan_grouping
from isearchd.errors import InvalidRequest, NotFound
from isearchd.store import Database, Filters, ImageRecord, SavePolicy, Store
from isearchd.store.people import FACES_ANALYSIS, Applied, Box, FaceRow
from isearchd.store.people_db import PeopleStore
from isearchd.store.people_reads import PeopleCounts
from isearchd.store.qdrant import QdrantDatabase
from isearchd.store.qdrant_people_sync import Scope
from isearchd.store.schema import SCHEMA_VERSION
from isearchd.store.synthetic import synthetic_faces

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from schemas import undo

QUIET = SavePolicy(background=False)
VERSION = 1
T = TypeVar("T")
PeopleDb = Database | QdrantDatabase


class Stores:
    """The store under test; ``reopen`` closes it and opens the same data again (a restart, or
    for Qdrant another daemon on the same store)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind, self.tmp = kind, tmp_path
        self.store: Store = make_store(kind, tmp_path)
        self.labels: dict[int, str] = {}  # image id -> label

    def open(self) -> PeopleDb:
        db = self.store.open("t", model_key="m", dim=DIM, create=True)
        assert isinstance(db, Database | QdrantDatabase) and isinstance(db, PeopleStore)
        return db

    def reopen(self, db: PeopleDb) -> PeopleDb:
        db.close()
        self.store.close()
        self.store = make_store(self.kind, self.tmp, host="beta")
        return self.open()


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    s = Stores(request.param, tmp_path)
    yield s
    s.store.close()


def open_db(home: Path) -> Database:
    return Database.open(home, "t", model_key="m", dim=DIM, save_policy=QUIET)


def with_images(stores: Stores, n: int, start: int = 0) -> tuple[PeopleDb, list[int]]:
    db = stores.open()
    batch = records(unit(np.random.default_rng(start), n), start=start)
    db.add(batch)
    by_label = {p.label: p.id for p in db.pending(FACES_ANALYSIS, VERSION, 100_000)}
    ids = [by_label[r.label] for r in batch]
    stores.labels.update({by_label[r.label]: r.label for r in batch})
    return db, ids


def people_sql(db: PeopleDb, query: Callable[[sqlite3.Connection], T]) -> T:
    """``query`` on the people tables as stored (Qdrant: the copy its operations run on)."""
    if isinstance(db, Database):
        with db.catalog.reader() as conn:
            return query(conn)
    return db._read(Scope(), query)


def face(box: Box, descriptor: np.ndarray, score: float = 0.9) -> FaceRow:
    left, top, w, h = box
    marks = tuple(
        (left + w * x, top + h * y) for x, y in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))
    )
    return FaceRow(box, marks, score, descriptor.astype(np.float32))


def group(db: PeopleDb) -> None:
    got = db.grouping_input()
    plan = plan_grouping(got.unassigned, got.people, got.rejects)
    db.apply_grouping(plan.joins, plan.new_people, min_faces=3)


def tables(db: PeopleDb) -> dict[str, list[tuple[object, ...]]]:
    """Everything people keep, for exact comparisons."""

    def read(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
        return {
            "people": conn.execute("SELECT id, name, hidden, created FROM people ORDER BY id").fetchall(),
            "faces": conn.execute("SELECT id, image_id, person_id, pinned FROM faces ORDER BY id").fetchall(),
            "rejects": conn.execute("SELECT face_id, person_id FROM face_rejects ORDER BY 1, 2").fetchall(),
        }

    return people_sql(db, read)


def other_face(identity: int, k: int = 0) -> np.ndarray:
    """A face of one of ``three_people``'s identities from another photo (same seed: same centres)."""
    truth, vectors = synthetic_faces(600, identities=3, seed=7)
    return vectors[truth == identity][-1 - k]


def three_people(db: PeopleDb, ids: list[int]) -> dict[int, int]:
    """Image k shows identity k % 3 at (10, 10, 50, 50); images k % 6 == 1 and image 0 show
    identity 0 too, at (100, 10, 40, 40) (with 30 images: identity 0 is in 15 photos, 1 and 2 in
    10). Grouped; returns identity -> person id (persons made in identity order)."""
    truth, vectors = synthetic_faces(300, identities=3, seed=7)
    pools = {t: list(vectors[truth == t]) for t in range(3)}
    rows = {}
    for k, image_id in enumerate(ids):
        rows[image_id] = [face((10, 10, 50, 50), pools[k % 3].pop())]
        if k % 6 == 1 or k == 0:
            rows[image_id].append(face((100, 10, 40, 40), pools[0].pop()))
    for image_id in ids:  # one by one: face ids follow k (a batch takes images in id order, and
        db.store_faces(VERSION, {image_id: rows[image_id]})  # Qdrant's image ids are not in k's)
    group(db)
    found = {k: db.faces_in_image(ids[k])[0].person_id for k in range(3)}
    assert sorted(found.values()) == [found[0], found[1], found[2]]
    return {k: p for k, p in found.items() if p is not None}


# -- schema ----------------------------------------------------------------------------------------


def test_a_catalog_made_before_people_opens_and_gains_them(tmp_path: Path) -> None:
    db, ids = with_images(Stores("embedded", tmp_path), 3)
    db.close()
    conn = sqlite3.connect(tmp_path / "home" / "t" / "catalog.sqlite")
    undo(conn, 6)  # back to what schema 6 wrote
    conn.close()
    with open_db(tmp_path / "home") as db:
        assert db.catalog.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert db.count() == 3 and db.people_list() == [] and db.people_enabled()
        db.store_faces(VERSION, {ids[0]: [face((0, 0, 10, 10), np.zeros(128))]})
        assert len(db.faces_in_image(ids[0])) == 1
        db.delete_labels(["/photos/00000.jpg"])
        assert db.people_counts().faces == 0  # the trigger is there


def test_both_stores_keep_people(stores: Stores) -> None:
    db = stores.open()
    assert isinstance(db, PeopleStore) and db.people_enabled()
    assert db.people_list() == [] and db.people_counts() == PeopleCounts(0, 0, 0, 0)


# -- faces and grouping ----------------------------------------------------------------------------


def test_faces_are_stored_with_the_analysis_outcome(stores: Stores) -> None:
    db, ids = with_images(stores, 4)
    with db:
        assert db.count_pending(FACES_ANALYSIS, VERSION) == 4
        descriptor = np.arange(128, dtype=np.float32) / 128
        db.store_faces(VERSION, {ids[0]: [face((5, 6, 30, 40), descriptor, 0.75)], ids[1]: [], 999: []},
                       failures={ids[2]: "cannot decode"})  # fmt: skip
        (stored,) = db.faces_in_image(ids[0])
        assert (stored.image_id, stored.box, stored.score, stored.person_id, stored.pinned) == (
            ids[0], (5, 6, 30, 40), 0.75, None, False
        )  # fmt: skip
        assert (
            db.count_pending(FACES_ANALYSIS, VERSION) == 1 and db.count_failed(FACES_ANALYSIS, VERSION) == 1
        )
        crop = db.face_crop_box(stored.id)
        assert (crop.image_id, crop.box, crop.path) == (ids[0], (5, 6, 30, 40), "/photos/00000.jpg")
        assert crop.person_id is None  # nobody yet
        got = db.grouping_input()
        assert got.unassigned.ids.tolist() == [stored.id]
        assert np.array_equal(got.unassigned.descriptors[0], descriptor)
        assert db.people_counts().faces == 1 and db.people_counts().unassigned == 1
        with pytest.raises(NotFound, match="no face 12345"):
            db.face_crop_box(12345)
        with pytest.raises(ValueError, match="128"):
            face((0, 0, 1, 1), np.zeros(64))


def test_grouping_makes_people_and_new_photos_join_them(stores: Stores) -> None:
    db, ids = with_images(stores, 36)
    with db:
        who = three_people(db, ids[:30])
        listed = db.people_list()
        assert [(p.id, p.photos) for p in listed] == [(who[0], 15), (who[1], 10), (who[2], 10)]
        assert listed[0].sample_face_id is not None
        assert listed[0].sample_path is not None and listed[0].sample_path.startswith("/photos/")
        assert db.people_counts() == PeopleCounts(faces=36, unassigned=0, people=3, named=0)
        db.store_faces(VERSION, {ids[30 + k]: [face((0, 0, 20, 20), other_face(k % 3, k))] for k in range(6)})
        group(db)
        assert [db.faces_in_image(ids[30 + k])[0].person_id for k in range(6)] == [
            who[k % 3] for k in range(6)
        ]
        assert len(db.people_list()) == 3


def test_a_stale_plan_never_undoes_a_correction(stores: Stores) -> None:
    db, ids = with_images(stores, 12)
    with db:
        who = three_people(db, ids[:9])
        db.store_faces(VERSION, {ids[9]: [face((0, 0, 20, 20), other_face(0))]})
        got = db.grouping_input()
        plan = plan_grouping(got.unassigned, got.people, got.rejects)
        assert list(plan.joins.values()) == [who[0]]
        db.name_person(who[1], "Bob")
        db.merge_people([who[0], who[1]])  # meanwhile the user merges that person away
        assert db.apply_grouping(plan.joins, []) == Applied(0, [])
        (free,) = db.faces_in_image(ids[9])
        assert free.person_id is None
        db.delete_labels(["/photos/00009.jpg"])  # and deletes the photo
        assert db.apply_grouping({}, [[free.id]], min_faces=1) == Applied(0, [])
        assert len(db.people_list(include_empty=True)) == 2


# -- the list and names ----------------------------------------------------------------------------


def test_the_list_shows_named_people_first_then_the_most_photographed(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)  # photos: 0 -> 15, 1 -> 10, 2 -> 10
        assert [p.id for p in db.people_list()] == [who[0], who[1], who[2]]
        db.name_person(who[2], "zoe")
        db.name_person(who[1], "Adam")
        assert [(p.id, p.name) for p in db.people_list()] == [
            (who[1], "Adam"),
            (who[2], "zoe"),
            (who[0], None),
        ]
        db.hide_person(who[1])
        assert [p.id for p in db.people_list()] == [who[2], who[0]]
        assert [p.hidden for p in db.people_list(include_hidden=True)] == [True, False, False]
        db.unhide_person(who[1])
        assert len(db.people_list()) == 3
        photos = db.person_photos(who[1])
        assert len(photos) == 10 and [p.image_id for p in photos] == sorted(
            (p.image_id for p in photos), reverse=True
        )
        faces_there = {f.id: f.person_id for p in photos for f in db.faces_in_image(p.image_id)}
        assert all(faces_there[p.face_id] == who[1] for p in photos)  # each photo names their face
        assert db.face_crop_box(photos[0].face_id).person_id == who[1]
        with pytest.raises(NotFound, match="no person 999"):
            db.person_photos(999)


def test_photos_are_listed_by_the_date_they_were_taken(stores: Stores) -> None:
    from isearchd.store import PhotoInfo

    db, ids = with_images(stores, 9)
    with db:
        who = three_people(db, ids)
        mine = [i for k, i in enumerate(ids) if k % 3 == 1]  # identity 1's three photos
        db.store_metadata({mine[0]: PhotoInfo(taken_local="2021-05-01T10:00:00"), mine[1]: None,
                           mine[2]: PhotoInfo(taken_local="2019-01-01T10:00:00")})  # fmt: skip
        assert [p.image_id for p in db.person_photos(who[1])] == [mine[0], mine[2], mine[1]]


def test_names_are_unique_whatever_their_case(stores: Stores) -> None:
    db, ids = with_images(stores, 9)
    with db:
        who = three_people(db, ids)
        db.name_person(who[0], "  Élodie ")
        assert db.people_list()[0].name == "Élodie"
        for taken in ("élodie", "ÉLODIE", "Élodie"):
            with pytest.raises(InvalidRequest, match=f"person {who[0]} is already named 'Élodie'"):
                db.name_person(who[1], taken)
        db.name_person(who[0], "élodie")  # the same person may change the case of its own name
        assert db.people_list()[0].name == "élodie"
        assert db.image_ids_with_people(["ÉLODIE"]) == {
            i for k, i in enumerate(ids) if k % 3 == 0 or k % 6 == 1
        }
        db.name_person(who[0], None)
        db.name_person(who[1], "élodie")
        db.name_person(who[1], "  ")  # blank: no name
        assert all(p.name is None for p in db.people_list())
        with pytest.raises(InvalidRequest, match="at most"):
            db.name_person(who[1], "x" * 101)
        with pytest.raises(NotFound, match="no person 999"):
            db.name_person(999, "Bob")


def test_search_by_people_needs_everyone_named(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)
        db.name_person(who[0], "Ann")
        db.name_person(who[1], "Bob")
        together = {i for k, i in enumerate(ids) if k % 6 == 1}
        assert len(db.image_ids_with_people(["ann"])) == 15
        assert db.image_ids_with_people(["Ann", "bob", "ANN"]) == together
        assert db.image_ids_with_people(["Bob"]) == {i for k, i in enumerate(ids) if k % 3 == 1}
        both = Filters(people=("ann", "BOB"))
        assert db.matching(both) == sorted(together)
        hits = db.search(unit(np.random.default_rng(0), 30)[7], k=30, filters=both)  # image 7's vector
        assert hits[0].id == ids[7] and {h.id for h in hits} <= together
        assert db.matching(Filters(people=("Nobody",))) == []
        assert db.people_in_images([ids[1], ids[2], ids[3], 999]) == {ids[1]: ["Ann", "Bob"], ids[3]: ["Ann"]}
        db.hide_person(who[1])
        assert db.people_in_images([ids[1]]) == {ids[1]: ["Ann"]}
        assert db.image_ids_with_people(["Ann", "Bob"]) == together  # asked by name: found all the same
        with pytest.raises(NotFound, match="no person is named 'Anne'; did you mean 'Ann'"):
            db.image_ids_with_people(["Anne", "Bob"])
        with pytest.raises(InvalidRequest):
            db.image_ids_with_people([" "])


# -- merges ----------------------------------------------------------------------------------------


def test_a_merge_is_undone_exactly(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)
        db.name_person(who[2], "Cleo")
        db.hide_person(who[1])
        db.remove_face(who[1], ids[1])  # a reject held by a person that is merged away
        db.remove_face(who[0], ids[0])
        before = tables(db)
        into = db.merge_people([who[0], who[1], who[2]])
        assert into == who[2]  # the only named one
        assert [(p.id, p.name, p.photos) for p in db.people_list()] == [(who[2], "Cleo", 29)]
        with pytest.raises(NotFound, match=f"person {who[0]} was merged into person {who[2]}"):
            db.name_person(who[0], "x")
        assert sorted(db.split_person(into)) == sorted([who[0], who[1]])
        assert tables(db) == before
        with pytest.raises(InvalidRequest, match="nothing to split"):
            db.split_person(into)


def test_merges_undo_one_at_a_time_and_refuse_two_names(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)
        start = tables(db)
        assert db.merge_people([who[1], who[0]]) == min(who[0], who[1])
        middle = tables(db)
        low = min(who[0], who[1])
        assert db.merge_people([who[2], low]) == min(low, who[2])
        db.split_person(min(low, who[2]))
        assert tables(db) == middle
        db.split_person(low)
        assert tables(db) == start
        db.name_person(who[0], "Ann")
        db.name_person(who[1], "Bob")
        with pytest.raises(InvalidRequest, match="different names"):
            db.merge_people([who[0], who[1]])
        with pytest.raises(InvalidRequest, match="at least two"):
            db.merge_people([who[0], who[0]])
        with pytest.raises(NotFound):
            db.merge_people([who[0], 999])
        assert len(db.people_list()) == 3


# -- corrections last ------------------------------------------------------------------------------


def test_a_removed_face_stays_out_after_reanalysis_and_reopening(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    who = three_people(db, ids)
    db.name_person(who[0], "Ann")
    image = ids[0]  # Ann twice: a face at (10, 10) and one at (100, 10)
    assert db.remove_face(who[0], image) == 2
    with pytest.raises(NotFound, match=f"person {who[0]} is not in image {image}"):
        db.remove_face(who[0], image)
    removed = tables(db)
    # analysed again (a new version): the same faces, boxes a few pixels off, other descriptors
    again = {image: [face((12, 9, 50, 52), np.zeros(128) + 0.01), face((101, 11, 40, 40), np.zeros(128))]}
    faces_before = [f.id for f in db.faces_in_image(image)]
    db.store_faces(VERSION + 1, again)
    assert [f.id for f in db.faces_in_image(image)] == faces_before
    assert all(f.pinned and f.person_id is None for f in db.faces_in_image(image))
    group(db)
    assert tables(db) == removed
    db = stores.reopen(db)
    with db:
        assert tables(db) == removed
        group(db)
        assert tables(db) == removed
        assert image not in db.image_ids_with_people(["Ann"])


def test_reanalysis_keeps_the_faces_it_finds_again(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)
        image = ids[1]  # Bob at (10, 10), Ann at (100, 10)
        first, second = db.faces_in_image(image)
        db.store_faces(VERSION + 1, {image: [face((11, 10, 50, 50), np.zeros(128)),  # found again
                                             face((300, 300, 40, 40), np.ones(128))]})  # fmt: skip
        kept, new = db.faces_in_image(image)
        assert (kept.id, kept.person_id, kept.box) == (first.id, who[1], (11, 10, 50, 50))
        assert new.id not in (first.id, second.id) and new.person_id is None
        db.store_faces(VERSION + 1, {image: []})
        assert db.faces_in_image(image) == []
        assert [p.photos for p in db.people_list()] == [14, 10, 9]


# -- deletes and forgetting ------------------------------------------------------------------------


def test_deleting_photos_deletes_their_faces_and_keeps_the_named_person(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    with db:
        who = three_people(db, ids)
        db.name_person(who[1], "Bob")
        db.remove_face(who[0], ids[0])
        labels = stores.labels
        bobs = [i for k, i in enumerate(ids) if k % 3 == 1]
        db.delete_labels([labels[i] for i in bobs])
        assert all(db.faces_in_image(i) == [] for i in bobs)
        assert [(p.id, p.photos) for p in db.people_list()] == [(who[2], 10), (who[0], 9)]  # Ann: 15 - 5 - 1
        (empty,) = [p for p in db.people_list(include_empty=True) if p.id == who[1]]
        assert (empty.name, empty.photos, empty.sample_face_id) == ("Bob", 0, None)
        with pytest.raises(InvalidRequest, match="already named 'Bob' \\(no photos left\\)"):
            db.name_person(who[2], "bob")
        assert db.merge_people([who[2], who[1]]) == who[1]  # the new faces take the old name
        assert [(p.id, p.name, p.photos) for p in db.people_list()] == [
            (who[1], "Bob", 10),
            (who[0], None, 9),
        ]
        db.split_person(who[1])
        db.delete_labels([labels[ids[0]]])
        assert tables(db)["rejects"] == []  # went with its face
        changed = labels[ids[2]]
        db.add([ImageRecord(changed, changed, 1, 2, "other content", unit(np.random.default_rng(1), 1)[0])])
        assert db.faces_in_image(ids[2]) == []
        assert db.count_pending(FACES_ANALYSIS, VERSION) == 1  # to be read again


def test_forgetting_deletes_everything_people_keep(stores: Stores) -> None:
    db, ids = with_images(stores, 30)
    who = three_people(db, ids)
    db.name_person(who[0], "Ann")
    db.remove_face(who[0], ids[0])
    db.merge_people([who[1], who[2]])
    assert db.count_pending(FACES_ANALYSIS, VERSION) == 0
    db.set_people_enabled(False)
    db.forget_people()
    assert tables(db) == {"people": [], "faces": [], "rejects": []}
    assert people_sql(db, lambda conn: conn.execute("SELECT count(*) FROM merges").fetchone()[0]) == 0
    assert db.count_pending(FACES_ANALYSIS, VERSION) == 30
    assert db.people_counts() == PeopleCounts(0, 0, 0, 0)
    db = stores.reopen(db)
    with db:
        assert not db.people_enabled()
        db.set_people_enabled(True)
        assert db.people_enabled()
