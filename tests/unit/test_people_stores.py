"""People and the two stores: both keep them, through the engine's people ops; in Qdrant they are
shared by every daemon of the store (a person named on one machine is that person on another,
and the other machine's photos of them join them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models as qm
from store_backends import BACKENDS, DIM, make_store, records, unit

from isearchd.engine.grouping import plan_grouping
from isearchd.engine.jobqueue import JobQueue
from isearchd.engine.people import People
from isearchd.errors import InvalidRequest, NotFound
from isearchd.messages import ImageInfo, NamePersonRequest, PeopleList, PeopleRequest, PersonRequest
from isearchd.store import Filters, ImageDatabase
from isearchd.store.people import FACES_ANALYSIS, FaceRow
from isearchd.store.people_db import PeopleStore
from isearchd.store.qdrant import QdrantDatabase
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_people_sync import Loaded
from isearchd.store.qdrant_store import QdrantStore
from isearchd.store.synthetic import synthetic_faces

VERSION = 1


def _no_image(db: str, image_id: int) -> ImageInfo:
    raise AssertionError("no image is asked for")


def faces_of(identity: int, n: int, skip: int = 0) -> list[np.ndarray]:
    truth, vectors = synthetic_faces(200, identities=2, seed=3)
    return list(vectors[truth == identity][skip : skip + n])


def add_with_faces(db: ImageDatabase, prefix: str, descriptors: list[np.ndarray]) -> list[int]:
    """One photo per descriptor (below ``prefix``), each with that one face; grouped."""
    assert isinstance(db, PeopleStore)
    db.add(records(unit(np.random.default_rng(len(prefix)), len(descriptors)), prefix=prefix))
    pending = sorted(db.pending(FACES_ANALYSIS, VERSION, 1000), key=lambda p: p.label)
    ids = [p.id for p in pending]
    marks = tuple((10.0 + k, 20.0) for k in range(5))
    for image_id, d in zip(ids, descriptors, strict=True):
        db.store_faces(VERSION, {image_id: [FaceRow((0, 0, 40, 40), marks, 0.9, d.astype(np.float32))]})
    got = db.grouping_input()
    plan = plan_grouping(got.unassigned, got.people, got.rejects)
    db.apply_grouping(plan.joins, plan.new_people, min_faces=3)
    return ids


@pytest.mark.parametrize("kind", BACKENDS)
def test_both_stores_keep_people_through_the_engines_ops(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    jobs = JobQueue()
    try:
        db = store.open("fam", model_key="ViT-8Y", dim=DIM, create=True)
        assert isinstance(db, PeopleStore)
        ids = add_with_faces(db, "/p", faces_of(0, 4))
        people = People(lambda name: db, jobs, None, lambda d: None, _no_image)
        listed = people.answer(PeopleRequest(db="fam"))
        assert isinstance(listed, PeopleList) and listed.total == 4 and len(listed.people) == 1
        person = listed.people[0].id
        people.answer(NamePersonRequest(db="fam", person=person, name="Ana"))
        shown = people.answer(PersonRequest(db="fam", person=person))
        assert shown.name == "Ana" and len(shown.photos) == 4  # type: ignore[union-attr]
        people.check_names(db, ["ana"])
        with pytest.raises(NotFound, match="did you mean 'Ana'"):
            people.check_names(db, ["Anna"])
        assert set(db.image_ids_with_people(["Ana"])) == set(ids)
        assert db.matching(Filters(people=("ANA",))) == sorted(ids)
    finally:
        jobs.close(timeout=10)
        store.close()


def test_daemons_on_one_qdrant_share_people(tmp_path: Path) -> None:
    """Machine "alpha" finds and names a person; "beta", opening the same store afterwards (local
    mode allows one client at a time), sees the name, and its own photos of them join them."""
    alpha = make_store("qdrant", tmp_path, host="alpha")
    db = alpha.open("fam", model_key="ViT-8Y", dim=DIM, create=True)
    assert isinstance(db, QdrantDatabase)
    mine = add_with_faces(db, "/alpha", faces_of(0, 3))
    (ana,) = db.people_list()
    db.name_person(ana.id, "Ana")
    alpha.close()

    beta = make_store("qdrant", tmp_path, host="beta")
    try:
        db = beta.open("fam", model_key="ViT-8Y", dim=DIM, create=False)
        assert isinstance(db, QdrantDatabase)
        assert [(p.id, p.name, p.photos) for p in db.people_list()] == [(ana.id, "Ana", 3)]
        assert db.count_pending(FACES_ANALYSIS, VERSION) == 0  # beta has no photos of its own yet
        theirs = add_with_faces(db, "/beta", faces_of(0, 2, skip=3) + faces_of(1, 3))
        bo = ana.id + 1  # the next id of the store's people, not beta's own first one
        assert [db.faces_in_image(i)[0].person_id for i in theirs] == [ana.id] * 2 + [bo] * 3
        assert db.image_ids_with_people(["ana"]) == set(mine) | set(theirs[:2])
        with pytest.raises(InvalidRequest, match=f"person {ana.id} is already named 'Ana'"):
            db.name_person(bo, "ANA")
        ids, vectors = db.vectors_below(None)
        hits = db.search(vectors[list(ids).index(mine[0])], k=10, filters=Filters(people=("Ana",)))
        assert {h.id for h in hits} <= set(mine) | set(theirs[:2]) and hits[0].id == mine[0]
        assert hits[0].host == "alpha"  # alpha's photo, found from beta
        assert db.delete_prefix("/beta") == 5  # beta's photos go, and their faces with them
        with beta.link.guard() as client:
            assert client.count(db._people.faces, exact=True).count == 3
        assert [(p.id, p.photos) for p in db.people_list(include_empty=True)] == [(ana.id, 3), (bo, 0)]
        assert db.people_in_images([mine[0], theirs[4]]) == {mine[0]: ["Ana"]}
    finally:
        beta.close()


def test_two_daemons_making_people_at_once_never_share_an_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpha and beta (one shared local client) each group their own photos' faces; beta makes its
    person while alpha is between reading and writing: alpha's claim on that id fails, and it
    makes its person again under the next id, leaving nothing half-written."""
    link = QdrantLink.connect(f"qdrant://{tmp_path}/q")
    dbs = {
        h: QdrantStore(link, host=h).open("fam", model_key="ViT-8Y", dim=DIM, create=True)
        for h in ("alpha", "beta")
    }
    alpha, beta = dbs["alpha"], dbs["beta"]
    assert isinstance(alpha, QdrantDatabase) and isinstance(beta, QdrantDatabase)
    outcomes: list[bool] = []
    real_commit = alpha._people.commit

    def beta_first(state: Loaded) -> bool:
        made = state.conn.execute("SELECT count(*) FROM people").fetchone()[0] > len(state.before["people"])
        if made and not outcomes:  # alpha has read and planned its person; beta makes its own now
            add_with_faces(beta, "/beta", faces_of(1, 3))
        ok = real_commit(state)
        if made:
            outcomes.append(ok)
        return ok

    monkeypatch.setattr(alpha._people, "commit", beta_first)
    ana = add_with_faces(alpha, "/alpha", faces_of(0, 3))
    persons = {p.id: p.photos for p in alpha.people_list()}
    assert persons == {1: 3, 2: 3} and outcomes == [False, True]  # alpha lost id 1, then took 2
    assert {beta.faces_in_image(i)[0].person_id for i in ana} == {2}
    with link.guard() as client:
        assert client.count(alpha._people.faces, exact=True).count == 6
        kind = qm.Filter(must=[qm.FieldCondition(key="kind", match=qm.MatchValue(value="person"))])
        assert client.count(alpha._people.people, count_filter=kind, exact=True).count == 2
    link.close()
