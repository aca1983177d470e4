"""People and the two stores: the embedded store keeps them; a database in Qdrant says plainly that
it does not (yet), for every people op and for a search by person, and is never read for faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_backends import DIM, make_store, records, unit

from isearchd.engine.jobqueue import JobQueue
from isearchd.engine.people import People
from isearchd.errors import InvalidRequest
from isearchd.messages import FaceRequest, ImageInfo, PeopleRequest, PersonRequest
from isearchd.store.metadata import Filters
from isearchd.store.people_db import PeopleStore


def _no_image(db: str, image_id: int) -> ImageInfo:
    raise AssertionError("no image is asked for")


@pytest.mark.parametrize("kind", ["embedded", "qdrant"])
def test_only_the_embedded_store_keeps_people(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    jobs = JobQueue()
    try:
        db = store.open("fam", model_key="ViT-8Y", dim=DIM, create=True)
        db.add(records(unit(np.random.default_rng(1), 3)))
        people = People(lambda name: db, jobs, None, lambda d: None, _no_image)
        if kind == "embedded":
            assert isinstance(db, PeopleStore)
            listed = people.answer(PeopleRequest(db="fam"))
            assert listed.people == [] and listed.total == 3  # type: ignore[union-attr]
            return
        assert not isinstance(db, PeopleStore)
        assert people.named_in_image("fam", 1) is None  # the large view names nobody
        for request in (
            PeopleRequest(db="fam"),
            PersonRequest(db="fam", person=1),
            FaceRequest(db="fam", face=1),
        ):
            with pytest.raises(InvalidRequest, match="embedded store only"):
                people.answer(request)
        with pytest.raises(InvalidRequest, match="embedded store only"):
            people.check_names(db, ["Ana"])
        with pytest.raises(InvalidRequest, match="embedded store only"):
            db.search(unit(np.random.default_rng(2), 1)[0], filters=Filters(people=("Ana",)))
    finally:
        jobs.close(timeout=10)
        store.close()
