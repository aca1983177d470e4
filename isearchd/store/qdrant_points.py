"""The points of one database's collection in Qdrant, as the database reads and writes them.

``Points`` does the requests, page by page (``PAGE`` points each): scroll (optionally only this
machine's points, ``mine``), count, retrieve by point id, by image id or by content hash (a
stored vector to reuse), upsert, delete, set payloads, and picks new images' ids.
``QdrantDatabase`` (``qdrant.py``) builds the database's operations on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import models as qm

from isearchd.errors import StoreError
from isearchd.messages import JsonObject
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_payload import NewPayload, host_is, image_id
from isearchd.store.records import ImageRecord

__all__ = ["PAGE", "Points", "floats", "payload_of"]

# Points per request: a scroll page, a batch of retrieves or payload updates (a 512-d page of
# 1,000 vectors is ~2 MB of JSON).
PAGE = 1000
SALTS = 16  # image-id candidates tried before giving up (a second one is needed ~once in 1e8)


class Points:
    """The requests on one collection; ``host``: this machine, whose points ``_mine`` selects."""

    def __init__(self, link: QdrantLink, name: str, collection: str, host: str) -> None:
        self.name = name
        self.collection = collection
        self.host = host
        self._link = link
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database '{self.name}' is closed")

    def _mine(self, *more: qm.Condition) -> qm.Filter:
        return qm.Filter(must=[host_is(self.host), *more])

    def _scroll(
        self,
        flt: qm.Filter | None,
        *,
        vectors: bool = False,
        payload: bool | list[str] = True,
        limit: int = 0,
    ) -> Iterator[qm.Record]:
        self._check_open()
        offset = None
        left = limit or None
        while True:
            page = PAGE if left is None else min(PAGE, left)
            with self._link.guard() as client:
                points, offset = client.scroll(
                    self.collection,
                    flt,
                    limit=page,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=vectors,
                )
            yield from points
            if left is not None:
                left -= len(points)
            if offset is None or (left is not None and left <= 0):
                return

    def _count(self, flt: qm.Filter | None) -> int:
        self._check_open()
        with self._link.guard() as client:
            return int(client.count(self.collection, count_filter=flt, exact=True).count)

    def _retrieve(self, ids: Sequence[str], *, vectors: bool = False) -> dict[str, qm.Record]:
        self._check_open()
        out: dict[str, qm.Record] = {}
        for start in range(0, len(ids), PAGE):
            with self._link.guard() as client:
                found = client.retrieve(
                    self.collection, list(ids[start : start + PAGE]), with_payload=True, with_vectors=vectors
                )
            out.update({str(p.id): p for p in found})
        return out

    def _by_iid(
        self, iids: Sequence[int], *, mine: bool, vectors: bool = False, fields: Sequence[str] | None = None
    ) -> dict[int, qm.Record]:
        """The points of these image ids, by id (``mine``: this machine's only); with the whole
        payload, or only ``fields`` (and ``iid``)."""
        payload: bool | list[str] = True if fields is None else ["iid", *fields]
        out: dict[int, qm.Record] = {}
        for start in range(0, len(iids), PAGE):
            cond = qm.FieldCondition(
                key="iid", match=qm.MatchAny(any=[int(i) for i in iids[start : start + PAGE]])
            )
            flt = self._mine(cond) if mine else qm.Filter(must=[cond])
            points = self._scroll(flt, vectors=vectors, payload=payload)
            out.update({int(p.payload["iid"]): p for p in points if p.payload})
        return out

    def _upsert(self, points: list[qm.PointStruct]) -> None:
        for start in range(0, len(points), PAGE):
            with self._link.guard() as client:
                client.upsert(self.collection, points[start : start + PAGE], wait=True)

    def _delete_ids(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), PAGE):
            with self._link.guard() as client:
                client.delete(
                    self.collection, qm.PointIdsList(points=list(ids[start : start + PAGE])), wait=True
                )

    def _set_payloads(self, rows: Sequence[tuple[str, NewPayload]]) -> None:
        ops: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=payload, points=[pid]))
            for pid, payload in rows
        ]
        for start in range(0, len(ops), PAGE):
            with self._link.guard() as client:
                client.batch_update_points(self.collection, ops[start : start + PAGE], wait=True)

    def _vectors_for_hashes(self, hashes: set[str]) -> dict[str, np.ndarray]:
        if not hashes:
            return {}
        cond = qm.FieldCondition(key="hash", match=qm.MatchAny(any=sorted(hashes)))
        out: dict[str, np.ndarray] = {}
        for p in self._scroll(qm.Filter(must=[cond]), vectors=True, payload=["hash"]):
            if p.payload and p.vector is not None:
                out.setdefault(str(p.payload["hash"]), np.asarray(p.vector, dtype=np.float32))
        return out

    def _image_ids(
        self, batch: list[ImageRecord], pids: list[str], existing: dict[str, qm.Record]
    ) -> list[int]:
        """An image keeps its id; a new one takes its first candidate no other point holds."""
        ids: list[int] = [0] * len(batch)
        salt = [0] * len(batch)
        for i, pid in enumerate(pids):
            old = payload_of(existing.get(pid))
            ids[i] = int(old["iid"]) if old and "iid" in old else image_id(self.host, batch[i].label)
        for _ in range(SALTS):
            held = self._by_iid(ids, mine=False)
            taken: set[int] = set()
            clash = []
            for i, pid in enumerate(pids):
                other = held.get(ids[i])
                if (other is not None and str(other.id) != pid) or ids[i] in taken:
                    clash.append(i)
                taken.add(ids[i])
            if not clash:
                return ids
            for i in clash:
                salt[i] += 1
                ids[i] = image_id(self.host, batch[i].label, salt[i])
        raise StoreError(f"database '{self.name}': no free image id for {batch[clash[0]].label!r}")


def floats(vector: Any) -> list[float]:
    """A point's one unnamed vector as a list (what ``scroll``/``retrieve`` give back)."""
    if not isinstance(vector, list):
        raise StoreError(f"expected one unnamed vector per point, got {type(vector).__name__}")
    return [float(x) for x in vector]


def payload_of(point: qm.Record | qm.ScoredPoint | None) -> JsonObject:
    return dict(point.payload or {}) if point is not None else {}
