"""A Qdrant database's people, to and from Qdrant: load what one operation needs into an in-memory
SQLite (``qdrant_people_rows``), and write back only the rows the operation changed.

Why a mirror rather than Qdrant-native rules: the rules of people (grouping's checks, names unique
in any case, merges undone exactly, corrections kept through re-analysis) are the embedded store's
SQL functions (``people.py``, ``people_reads.py``, ``people_edits.py``); running the very same
functions on the same tables keeps one copy of them, so the two stores cannot drift (the people
store tests run on both). Persons, merges and the switch are points of their own collection
``<prefix>.people``, not of ``<prefix>.databases``: personal data stays in the two collections named
for it (a user can drop or inspect them), and listing databases or folders never scans them.

What an operation loads (``Scope``): every person and merge of the database (what the user said:
small), and the faces it names with their images (the path, date and content people's queries
join). A face whose image is gone or holds another picture is stale: left out, and deleted by the
next write (the embedded store's triggers, done late).

Many daemons, one store. New rows take ids above the table's high-water mark (the ``seq`` points)
and are claimed by writing their points with ``insert_only`` and a token: when another daemon took
one of those ids meanwhile, this operation's new points are taken back, the mark moves past them
and the operation runs again on what is stored now (``commit`` says False). Updates of existing
rows are last-writer-wins per point; each machine groups only the free faces of its own photos, so
two daemons never place the same face at once.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from qdrant_client import models as qm

from isearchd.messages import JsonObject
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_payload import NewPayload, match
from isearchd.store.qdrant_people_rows import (
    SEQUENCED,
    ImageRow,
    Rows,
    face_image,
    face_payload,
    face_row,
    face_vector,
    insert_rows,
    merge_payload,
    mirror,
    person_payload,
    point_uuid,
    set_sequences,
    stored_row,
    table_rows,
)

__all__ = ["FACES_SUFFIX", "PEOPLE_SUFFIX", "Loaded", "PeopleCollections", "Scope"]

FACES_SUFFIX = ".faces"  # '.': no database's collection can have these names
PEOPLE_SUFFIX = ".people"
_PAGE = 1000
# payload fields filtered on, indexed on a server (local mode has no payload indexes)
_FACE_INDEXES = (("db", "keyword"), ("host", "keyword"), ("iid", "integer"), ("fid", "integer"),
                 ("person", "integer"))  # fmt: skip
_PEOPLE_INDEXES = (("db", "keyword"), ("kind", "keyword"))

ImagesOf = Callable[[Sequence[int]], dict[int, ImageRow]]


@dataclass(frozen=True)
class Scope:
    """Which faces an operation reads: ``faces`` the conditions they meet (None: every face of
    the database; ``with_faces`` False: none); ``images``: image rows it needs besides theirs."""

    faces: list[qm.Condition] | None = None
    with_faces: bool = True
    images: tuple[int, ...] = ()
    descriptors: bool = False


@dataclass
class Loaded:
    """One operation's copy of the people: ``conn`` to run the embedded store's functions on."""

    conn: sqlite3.Connection
    before: Rows
    images: dict[int, ImageRow]
    stale: list[str] = field(default_factory=list)


class PeopleCollections:
    """The people of database ``db`` in the store with collection prefix ``prefix``."""

    def __init__(self, link: QdrantLink, prefix: str, db: str) -> None:
        self._link = link
        self.db = db
        self.faces = prefix + FACES_SUFFIX
        self.people = prefix + PEOPLE_SUFFIX
        self._ready = False

    # -- the collections -------------------------------------------------------------------------

    def exists(self) -> bool:
        if not self._ready:
            with self._link.guard() as client:
                self._ready = client.collection_exists(self.faces) and client.collection_exists(self.people)
        return self._ready

    def ensure(self) -> None:
        if self._ready:
            return
        faces = qm.VectorParams(size=128, distance=qm.Distance.EUCLID)
        for name, vectors, indexes in (
            (self.faces, faces, _FACE_INDEXES),
            (self.people, {}, _PEOPLE_INDEXES),
        ):
            made = self._link.create_collection(name, vectors_config=vectors)
            if made and not self._link.local:  # local mode has no payload indexes (and warns)
                for key, schema in indexes:
                    with self._link.guard() as client:
                        client.create_payload_index(
                            name, key, field_schema=qm.PayloadSchemaType(schema), wait=True
                        )
        self._ready = True

    # -- loading ---------------------------------------------------------------------------------

    def load(self, scope: Scope, images_of: ImagesOf) -> Loaded:
        """The persons, merges and the faces of ``scope`` (with their images) in a new mirror."""
        if not self.exists():
            return self._built({}, {}, [], images_of(scope.images), {t: 0 for t in SEQUENCED})
        persons = {int(p["id"]): stored_row("people", p) for p in self._kind("person")}
        merges = {int(p["id"]): stored_row("merges", p) for p in self._kind("merge")}
        last = {str(p["table"]): int(p["last"]) for p in self._kind("seq")}
        points = list(self._faces(scope)) if scope.with_faces else []
        wanted = {int((p.payload or {})["iid"]) for p in points} | set(scope.images)
        images = images_of(sorted(wanted))
        return self._built(persons, merges, points, images, {t: last.get(t, 0) for t in SEQUENCED})

    def _built(
        self,
        persons: dict[int, tuple[object, ...]],
        merges: dict[int, tuple[object, ...]],
        points: list[qm.Record],
        images: dict[int, ImageRow],
        last: dict[str, int],
    ) -> Loaded:
        faces: dict[int, tuple[object, ...]] = {}
        stale: list[str] = []
        for p in points:
            payload = p.payload or {}
            image = images.get(int(payload["iid"]))
            if image is None or image.hash != payload.get("hash"):
                stale.append(str(p.id))
            else:
                faces[int(payload["fid"])] = face_row(payload, p.vector)
        conn = mirror(list(images.values()))
        insert_rows(conn, "people", persons)
        insert_rows(conn, "merges", merges)
        insert_rows(conn, "faces", faces)
        set_sequences(conn, last)
        return Loaded(conn, table_rows(conn), images, stale)

    def _kind(self, kind: str) -> list[JsonObject]:
        flt = qm.Filter(must=[match("db", self.db), match("kind", kind)])
        return [dict(p.payload or {}) for p in self._scroll(self.people, flt, vectors=False)]

    def _faces(self, scope: Scope) -> Iterable[qm.Record]:
        flt = qm.Filter(must=[match("db", self.db), *(scope.faces or [])])
        return self._scroll(self.faces, flt, vectors=scope.descriptors)

    def _scroll(self, collection: str, flt: qm.Filter, *, vectors: bool) -> Iterable[qm.Record]:
        offset = None
        while True:
            with self._link.guard() as client:
                points, offset = client.scroll(
                    collection, flt, limit=_PAGE, offset=offset, with_payload=True, with_vectors=vectors
                )
            yield from points
            if offset is None:
                return

    # -- writing back ----------------------------------------------------------------------------

    def commit(self, state: Loaded) -> bool:
        """Write what the operation changed in ``state.conn``; False when another daemon took an
        id this operation gave a new row (nothing of it is left written: run it again)."""
        after = table_rows(state.conn)
        new = {t: {i: v for i, v in after[t].items() if i not in state.before[t]} for t in after}
        changed = {
            t: {i: v for i, v in after[t].items() if i in state.before[t] and state.before[t][i] != v}
            for t in after
        }
        gone = {t: [i for i in state.before[t] if i not in after[t]] for t in after}
        if not any(new.values()) and not any(changed.values()) and not any(gone.values()) and not state.stale:
            return True
        self.ensure()
        if not self._claim(state, new):
            return False
        self._write_faces(state, changed["faces"])
        self._upsert(self.people, [self._point(t, i, v, state) for t in ("people", "merges")
                                   for i, v in changed[t].items()])  # fmt: skip
        self._delete(self.faces, [point_uuid("face", self.db, i) for i in gone["faces"]] + state.stale)
        self._delete(self.people, [point_uuid(t, self.db, i) for t in ("people", "merges") for i in gone[t]])
        self._raise_marks({t: max(new[t]) for t in SEQUENCED if new[t]})
        return True

    def _claim(self, state: Loaded, new: Rows) -> bool:
        """Write the new rows' points if none exists yet (``insert_only``); True when every one
        is ours."""
        token = uuid.uuid4().hex
        faces = [self._face_point(i, v, state, token) for i, v in new["faces"].items()]
        people = [self._point(t, i, v, state, token) for t in ("people", "merges") for i, v in new[t].items()]
        for collection, points in ((self.faces, faces), (self.people, people)):
            self._upsert(collection, points, mode=qm.UpdateMode.INSERT_ONLY)
        mine = {c: self._claimed(c, [str(p.id) for p in pts], token) for c, pts in
                ((self.faces, faces), (self.people, people))}  # fmt: skip
        if all(len(mine[c]) == len(pts) for c, pts in ((self.faces, faces), (self.people, people))):
            return True
        for collection, ids in mine.items():
            self._delete(collection, ids)
        self._raise_marks({t: max(new[t]) for t in SEQUENCED if new[t]})  # those ids are spent
        return False

    def _claimed(self, collection: str, ids: list[str], token: str) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), _PAGE):
            with self._link.guard() as client:
                got = client.retrieve(collection, ids[start : start + _PAGE], with_payload=["claim"])
            found += [str(p.id) for p in got if (p.payload or {}).get("claim") == token]
        return found

    def _write_faces(self, state: Loaded, rows: dict[int, tuple[object, ...]]) -> None:
        """Faces whose descriptor changed are written whole; the others' payloads are updated."""
        whole = [self._face_point(i, v, state) for i, v in rows.items() if face_vector(v) is not None]
        self._upsert(self.faces, whole)
        ops: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(
                set_payload=qm.SetPayload(
                    payload=face_payload(self.db, i, v, state.images[face_image(v)]),
                    points=[point_uuid("face", self.db, i)],
                )
            )
            for i, v in rows.items()
            if face_vector(v) is None
        ]
        for start in range(0, len(ops), _PAGE):
            with self._link.guard() as client:
                client.batch_update_points(self.faces, ops[start : start + _PAGE], wait=True)

    def _face_point(
        self, face_id: int, values: tuple[object, ...], state: Loaded, token: str = ""
    ) -> qm.PointStruct:
        image = state.images[face_image(values)]
        payload = face_payload(self.db, face_id, values, image)
        if token:
            payload["claim"] = token
        return qm.PointStruct(
            id=point_uuid("face", self.db, face_id), vector=face_vector(values) or [], payload=payload
        )

    def _point(
        self, table: str, row_id: int, values: tuple[object, ...], state: Loaded, token: str = ""
    ) -> qm.PointStruct:
        build = person_payload if table == "people" else merge_payload
        payload = build(self.db, row_id, values)
        if token:
            payload["claim"] = token
        return qm.PointStruct(id=point_uuid(table, self.db, row_id), vector={}, payload=payload)

    def _raise_marks(self, last: dict[str, int]) -> None:
        """Each table's high-water mark up to ``last`` (never down: a mark above stays)."""
        points = [
            qm.PointStruct(
                id=point_uuid("seq", self.db, t),
                vector={},
                payload={"kind": "seq", "db": self.db, "table": t, "last": n},
            )
            for t, n in last.items()
        ]
        for p in points:  # one request each: the filter compares with that point's own mark
            below = qm.Filter(
                must=[qm.FieldCondition(key="last", range=qm.Range(lt=(p.payload or {})["last"]))]
            )
            with self._link.guard() as client:
                client.upsert(self.people, [p], update_filter=below, wait=True)

    def _upsert(
        self, collection: str, points: list[qm.PointStruct], mode: qm.UpdateMode | None = None
    ) -> None:
        for start in range(0, len(points), _PAGE):
            with self._link.guard() as client:
                client.upsert(collection, points[start : start + _PAGE], update_mode=mode, wait=True)

    def _delete(self, collection: str, ids: list[str]) -> None:
        for start in range(0, len(ids), _PAGE):
            chunk: list[qm.ExtendedPointId] = list(ids[start : start + _PAGE])
            with self._link.guard() as client:
                client.delete(collection, qm.PointIdsList(points=chunk), wait=True)

    # -- the switch, and forgetting --------------------------------------------------------------

    def enabled(self) -> bool:
        if not self.exists():
            return True
        with self._link.guard() as client:
            found = client.retrieve(self.people, [point_uuid("switch", self.db, "")], with_payload=True)
        return not found or bool((found[0].payload or {}).get("enabled", True))

    def set_enabled(self, enabled: bool) -> None:
        self.ensure()
        payload: NewPayload = {"kind": "switch", "db": self.db, "enabled": enabled}
        self._upsert(
            self.people, [qm.PointStruct(id=point_uuid("switch", self.db, ""), vector={}, payload=payload)]
        )

    def drop_faces(self, image_ids: Sequence[int] | None) -> None:
        """Delete the faces of these images (None: of every image): they were deleted or now hold
        another picture (what the embedded store's triggers do; ``load`` also leaves such faces
        out, should a daemon stop between the two)."""
        if not self.exists() or (image_ids is not None and not image_ids):
            return
        must: list[qm.Condition] = [match("db", self.db)]
        if image_ids is not None:
            must.append(qm.FieldCondition(key="iid", match=qm.MatchAny(any=[int(i) for i in image_ids])))
        with self._link.guard() as client:
            client.delete(self.faces, qm.FilterSelector(filter=qm.Filter(must=must)), wait=True)

    def forget(self) -> None:
        """Delete every face, person and merge of the database (its switch and marks stay)."""
        if not self.exists():
            return
        kinds = qm.FieldCondition(key="kind", match=qm.MatchAny(any=["person", "merge"]))
        with self._link.guard() as client:
            client.delete(
                self.faces, qm.FilterSelector(filter=qm.Filter(must=[match("db", self.db)])), wait=True
            )
            client.delete(
                self.people,
                qm.FilterSelector(filter=qm.Filter(must=[match("db", self.db), kinds])),
                wait=True,
            )
