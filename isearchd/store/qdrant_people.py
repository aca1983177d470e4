"""People on a Qdrant database: ``QdrantDatabase`` is a ``PeopleStore`` through ``QdrantPeople``.

Each operation loads what it reads into an in-memory SQLite with the embedded store's tables
(``qdrant_people_sync.Scope``), runs the embedded store's own function on it (``people.py``,
``people_reads.py``, ``people_edits.py``: one copy of the rules) and, for a write, sends back the
rows it changed (``PeopleCollections.commit``; run again when another daemon took a new id). Faces
are points of ``<prefix>.faces``, persons and merges of ``<prefix>.people``, shared by every daemon
of the store: a person named on one machine is named on all (layout: ``qdrant_people_rows``).

This machine reads only its own photos for faces (``pending`` is per machine) and groups only the
free faces of its own photos; the persons they join are everyone's.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

from qdrant_client import models as qm

from isearchd.errors import NotFound, StoreError
from isearchd.store import people_edits, people_reads
from isearchd.store.people import (
    FACES_ANALYSIS,
    Applied,
    FaceRow,
    apply_grouping,
    require_person,
    store_faces,
)
from isearchd.store.people_reads import (
    Face,
    FaceCrop,
    GroupingInput,
    PeopleCounts,
    PersonPhoto,
    PersonSummary,
)
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_passes import Passes
from isearchd.store.qdrant_payload import analysis_key, host_is, match, name_from_key
from isearchd.store.qdrant_people_rows import ImageRow
from isearchd.store.qdrant_people_sync import PeopleCollections, Scope
from isearchd.store.qdrant_points import payload_of

__all__ = ["QdrantPeople"]

T = TypeVar("T")
# Times an operation runs again when other daemons took the ids of its new rows meanwhile (each
# try moves past the ids taken: two at once is rare, eight in a row means something is wrong).
TRIES = 8

_EVERY = Scope()
_NONE = Scope(with_faces=False)
_NO_PERSON = qm.IsEmptyCondition(is_empty=qm.PayloadField(key="person"))
_IN_PERSONS = Scope(faces=[qm.Filter(must_not=[_NO_PERSON])])


def _of_images(ids: Sequence[int]) -> Scope:
    cond = qm.FieldCondition(key="iid", match=qm.MatchAny(any=[int(i) for i in ids]))
    return Scope(faces=[cond], images=tuple(int(i) for i in ids))


def _of_faces(ids: Collection[int]) -> Scope:
    return Scope(faces=[qm.FieldCondition(key="fid", match=qm.MatchAny(any=sorted(int(i) for i in ids)))])


class QdrantPeople(Passes):
    """The ``PeopleStore`` operations of a Qdrant database (see the module docstring)."""

    def __init__(self, link: QdrantLink, name: str, collection: str, host: str, prefix: str) -> None:
        super().__init__(link, name, collection, host)
        self._people = PeopleCollections(link, prefix, name)
        self._people_lock = threading.Lock()

    # -- running the embedded store's functions --------------------------------------------------

    def _image_rows(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        out = {}
        for iid, point in self._by_iid(list(ids), mine=False).items():
            pl = payload_of(point)
            path = name_from_key(pl["path"])
            out[iid] = ImageRow(iid, path, pl.get("taken_local"), str(pl["hash"]), str(pl["host"]))
        return out

    def _read(self, scope: Scope, run: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        state = self._people.load(scope, self._image_rows)
        try:
            return run(state.conn)
        finally:
            state.conn.close()

    def _change(self, scope: Scope, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``run`` on the people ``scope`` names and store what it changed (again, on what is
        stored then, when another daemon took one of its new ids)."""
        self._check_open()
        with self._people_lock:
            for _ in range(TRIES):
                state = self._people.load(scope, self._image_rows)
                try:
                    result = run(state.conn)
                    if self._people.commit(state):
                        return result
                finally:
                    state.conn.close()
        raise StoreError(
            f"database '{self.name}': other daemons keep taking the ids of new people; try again"
        )

    def _drop_faces(self, image_ids: Sequence[int] | None) -> None:
        """Delete the faces of these images (None: every image's): deleted, or another picture."""
        self._people.drop_faces(image_ids)

    # -- reads -----------------------------------------------------------------------------------

    def people_enabled(self) -> bool:
        self._check_open()
        return self._people.enabled()

    def grouping_input(self) -> GroupingInput:
        """The free faces of this machine's photos, every person's faces, and the rejects."""
        mine_free = qm.Filter(must=[host_is(self.host), _NO_PERSON])
        scope = Scope(
            faces=[qm.Filter(should=[mine_free, qm.Filter(must_not=[_NO_PERSON])])], descriptors=True
        )
        return self._read(scope, people_reads.grouping_input)

    def faces_in_image(self, image_id: int) -> list[Face]:
        return self._read(_of_images([image_id]), lambda c: people_reads.faces_in_image(c, image_id))

    def face_crop_box(self, face_id: int) -> FaceCrop:
        return self._read(_of_faces([face_id]), lambda c: people_reads.face_crop_box(c, face_id))

    def people_counts(self) -> PeopleCounts:
        return self._read(_EVERY, people_reads.people_counts)

    def people_list(
        self, include_hidden: bool = False, *, include_empty: bool = False
    ) -> list[PersonSummary]:
        return self._read(
            _IN_PERSONS, lambda c: people_reads.people_list(c, include_hidden, include_empty=include_empty)
        )

    def person_photos(self, person_id: int) -> list[PersonPhoto]:
        scope = Scope(faces=[match("person", person_id)])
        return self._read(scope, lambda c: people_reads.person_photos(c, person_id))

    def person_name(self, person_id: int) -> str | None:
        return self._read(_NONE, lambda c: require_person(c, person_id)[0])

    def people_in_images(self, image_ids: Sequence[int]) -> dict[int, list[str]]:
        if not image_ids:
            return {}
        return self._read(_of_images(image_ids), lambda c: people_reads.people_in_images(c, image_ids))

    def image_ids_with_people(self, names: Sequence[str]) -> set[int]:
        return self._read(_IN_PERSONS, lambda c: people_reads.image_ids_with_people(c, names))

    def _with_people(self, names: Sequence[str]) -> set[int]:
        """The images a search by ``names`` may return: none when a name is no person's."""

        def find(conn: sqlite3.Connection) -> set[int]:
            try:
                return people_reads.image_ids_with_people(conn, names)
            except NotFound:  # (as the embedded store's filter: a name nobody has is in no photo)
                return set()

        return self._read(_IN_PERSONS, find)

    # -- writes ----------------------------------------------------------------------------------

    def set_people_enabled(self, enabled: bool) -> None:
        self._check_open()
        self._people.set_enabled(enabled)

    def store_faces(
        self, version: int, rows: Mapping[int, Sequence[FaceRow]], failures: Mapping[int, str] | None = None
    ) -> None:
        """As the embedded store's: the faces first, then that the photos were read (a crash in
        between reads them again, and re-analysis keeps the faces found again)."""
        outcomes: dict[int, str | None] = {i: None for i in rows}
        outcomes.update(failures or {})
        if rows:
            self._change(_of_images(sorted(rows)), lambda c: store_faces(c, version, rows))
        self.record_analysis(FACES_ANALYSIS, version, outcomes)

    def apply_grouping(
        self, joins: Mapping[int, int], new_people: Sequence[Sequence[int]], *, min_faces: int = 1
    ) -> Applied:
        faces = set(joins) | {f for group in new_people for f in group}
        if not faces:
            return Applied(0, [])
        created = time.time()
        return self._change(
            _of_faces(faces),
            lambda c: apply_grouping(c, joins, new_people, created=created, min_faces=min_faces),
        )

    def name_person(self, person_id: int, name: str | None) -> None:
        self._change(_IN_PERSONS, lambda c: people_edits.name_person(c, person_id, name))

    def merge_people(self, ids: Sequence[int]) -> int:
        created = time.time()
        return self._change(_EVERY, lambda c: people_edits.merge_people(c, ids, created=created))

    def split_person(self, person_id: int) -> list[int]:
        return self._change(_EVERY, lambda c: people_edits.split_person(c, person_id))

    def remove_face(self, person_id: int, image_id: int) -> int:
        return self._change(
            _of_images([image_id]), lambda c: people_edits.remove_face(c, person_id, image_id)
        )

    def hide_person(self, person_id: int) -> None:
        self._change(_NONE, lambda c: people_edits.hide_person(c, person_id, True))

    def unhide_person(self, person_id: int) -> None:
        self._change(_NONE, lambda c: people_edits.hide_person(c, person_id, False))

    def forget_people(self) -> None:
        """Delete every face, person and correction, and which photos were read for faces (every
        machine's: they are read again if people stay on)."""
        self._check_open()
        with self._people_lock:
            self._people.forget()
            keys = [analysis_key(FACES_ANALYSIS), analysis_key(FACES_ANALYSIS) + "_failure"]
            with self._link.guard() as client:
                client.delete_payload(
                    self.collection, keys=keys, points=qm.FilterSelector(filter=qm.Filter()), wait=True
                )
