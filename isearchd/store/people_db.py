"""People on an embedded ``Database``: the reads on ``DatabaseReader`` (``PeopleReads``), the
writes on ``Database`` (``PeopleWrites``: each one transaction under the writer lock), and
``PeopleStore``, the protocol the engine checks a database against (the Qdrant store's databases
keep people too, ``qdrant_people.py``, with the same functions). The tables and rules are
``people.py``'s.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from isearchd.store import analyses, people_edits, people_reads
from isearchd.store.catalog import Catalog
from isearchd.store.people import (
    FACES_ANALYSIS,
    Applied,
    FaceRow,
    apply_grouping,
    forget_people,
    people_enabled,
    require_person,
    set_people_enabled,
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

if TYPE_CHECKING:
    from isearchd.store.interface import ImageDatabase

__all__ = ["PeopleReads", "PeopleStore", "PeopleWrites", "people_store"]


@runtime_checkable
class PeopleStore(Protocol):
    """A database that keeps people (of either store)."""

    # -- reads -----------------------------------------------------------------------------------

    def people_enabled(self) -> bool: ...

    def grouping_input(self) -> GroupingInput: ...

    def faces_in_image(self, image_id: int) -> list[Face]: ...

    def face_crop_box(self, face_id: int) -> FaceCrop: ...

    def people_counts(self) -> PeopleCounts: ...

    def people_list(
        self, include_hidden: bool = False, *, include_empty: bool = False
    ) -> list[PersonSummary]: ...

    def person_photos(self, person_id: int) -> list[PersonPhoto]: ...

    def person_name(self, person_id: int) -> str | None: ...

    def people_in_images(self, image_ids: Sequence[int]) -> dict[int, list[str]]: ...

    def image_ids_with_people(self, names: Sequence[str]) -> set[int]: ...

    # -- writes ----------------------------------------------------------------------------------

    def set_people_enabled(self, enabled: bool) -> None: ...

    def store_faces(
        self, version: int, rows: Mapping[int, Sequence[FaceRow]], failures: Mapping[int, str] | None = None
    ) -> None: ...

    def apply_grouping(
        self, joins: Mapping[int, int], new_people: Sequence[Sequence[int]], *, min_faces: int = 1
    ) -> Applied: ...

    def name_person(self, person_id: int, name: str | None) -> None: ...

    def merge_people(self, ids: Sequence[int]) -> int: ...

    def split_person(self, person_id: int) -> list[int]: ...

    def remove_face(self, person_id: int, image_id: int) -> int: ...

    def hide_person(self, person_id: int) -> None: ...

    def unhide_person(self, person_id: int) -> None: ...

    def forget_people(self) -> None: ...


def people_store(db: ImageDatabase) -> PeopleStore:
    """``db`` as the ``PeopleStore`` it is: every database of both stores keeps people
    (``database.Database``, ``qdrant.QdrantDatabase``); anything else is a bug, not a user's error."""
    if not isinstance(db, PeopleStore):
        raise TypeError(f"{type(db).__name__} is not a PeopleStore")
    return db


class PeopleReads:
    """The people queries of a ``DatabaseReader`` (on a pooled reader connection)."""

    if TYPE_CHECKING:
        catalog: Catalog

    def people_enabled(self) -> bool:
        with self.catalog.reader() as conn:
            return people_enabled(conn)

    def grouping_input(self) -> GroupingInput:
        """The free faces, every person's faces and the rejects (``engine.grouping``'s input)."""
        with self.catalog.reader() as conn:
            return people_reads.grouping_input(conn)

    def faces_in_image(self, image_id: int) -> list[Face]:
        with self.catalog.reader() as conn:
            return people_reads.faces_in_image(conn, image_id)

    def face_crop_box(self, face_id: int) -> FaceCrop:
        with self.catalog.reader() as conn:
            return people_reads.face_crop_box(conn, face_id)

    def people_counts(self) -> PeopleCounts:
        with self.catalog.reader() as conn:
            return people_reads.people_counts(conn)

    def people_list(
        self, include_hidden: bool = False, *, include_empty: bool = False
    ) -> list[PersonSummary]:
        with self.catalog.reader() as conn:
            return people_reads.people_list(conn, include_hidden, include_empty=include_empty)

    def person_photos(self, person_id: int) -> list[PersonPhoto]:
        with self.catalog.reader() as conn:
            return people_reads.person_photos(conn, person_id)

    def person_name(self, person_id: int) -> str | None:
        """The person's name (None: unnamed); ``NotFound`` for an id that is no person."""
        with self.catalog.reader() as conn:
            return require_person(conn, person_id)[0]

    def people_in_images(self, image_ids: Sequence[int]) -> dict[int, list[str]]:
        with self.catalog.reader() as conn:
            return people_reads.people_in_images(conn, image_ids)

    def image_ids_with_people(self, names: Sequence[str]) -> set[int]:
        with self.catalog.reader() as conn:
            return people_reads.image_ids_with_people(conn, names)


class PeopleWrites(PeopleReads):
    """The people writes of a ``Database``: one transaction each, under its writer lock."""

    if TYPE_CHECKING:
        _write_lock: threading.RLock

        def _check_open(self) -> None: ...

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The writer's connection, in one transaction, under the writer lock."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                yield db.conn

    def set_people_enabled(self, enabled: bool) -> None:
        with self._writing() as conn:
            set_people_enabled(conn, enabled)

    def store_faces(
        self, version: int, rows: Mapping[int, Sequence[FaceRow]], failures: Mapping[int, str] | None = None
    ) -> None:
        """The faces version ``version`` of the faces analysis found in these images, and the
        images it could not read (the reasons), recorded as read in the same transaction."""
        outcomes: dict[int, str | None] = {i: None for i in rows}
        outcomes.update(failures or {})
        with self._writing() as conn:
            store_faces(conn, version, rows)
            analyses.record_outcomes(conn, FACES_ANALYSIS, version, outcomes)

    def apply_grouping(
        self, joins: Mapping[int, int], new_people: Sequence[Sequence[int]], *, min_faces: int = 1
    ) -> Applied:
        with self._writing() as conn:
            return apply_grouping(conn, joins, new_people, created=time.time(), min_faces=min_faces)

    def name_person(self, person_id: int, name: str | None) -> None:
        with self._writing() as conn:
            people_edits.name_person(conn, person_id, name)

    def merge_people(self, ids: Sequence[int]) -> int:
        with self._writing() as conn:
            return people_edits.merge_people(conn, ids, created=time.time())

    def split_person(self, person_id: int) -> list[int]:
        with self._writing() as conn:
            return people_edits.split_person(conn, person_id)

    def remove_face(self, person_id: int, image_id: int) -> int:
        with self._writing() as conn:
            return people_edits.remove_face(conn, person_id, image_id)

    def hide_person(self, person_id: int) -> None:
        self._set_hidden(person_id, True)

    def unhide_person(self, person_id: int) -> None:
        self._set_hidden(person_id, False)

    def _set_hidden(self, person_id: int, hidden: bool) -> None:
        with self._writing() as conn:
            people_edits.hide_person(conn, person_id, hidden)

    def forget_people(self) -> None:
        """Delete every face, person and correction; photos will be read again if people stay on."""
        with self._writing() as conn:
            forget_people(conn)
