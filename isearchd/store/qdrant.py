"""One database as one Qdrant collection ``<prefix><name>``: a point per image (a video's per
indexed frame), its unit vector and its catalog fields in the payload
(``isearchd.store.qdrant_payload``). A video's frames are deleted, replaced and moved with it
(``qdrant_frames``), as the embedded store does.

Durability: every write is sent with ``wait=true``, so it returns only once Qdrant has applied it
and written it to its write-ahead log; a daemon killed after an acknowledgement loses nothing
(on a server that is Qdrant's guarantee, see docs/scale.md; there is no index of ours to save).

Many daemons, one collection: point ids come from (host, label), so machines never overwrite each
other's points and a retried batch overwrites its own. Calls that take paths (``get``,
``records``, deletes, moves, the backfills) see this machine's points only; searches, ``count``,
``details`` and duplicates see every machine's. Not atomic across points: a move writes the new
points before it deletes the old ones, so a crash in between leaves both until the next reconcile
finds the old file gone (nothing is lost); an add writes a changed video's frames before it
deletes its stale ones, which a crash in between leaves until the video is added or deleted again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence

import numpy as np
from qdrant_client import models as qm

from isearchd.errors import InvalidRequest
from isearchd.files.names import to_db
from isearchd.messages import DbInfo
from isearchd.store.metadata import Filters, PhotoInfo
from isearchd.store.qdrant_frames import QdrantFrames, label_of, videos_among
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_meta import QdrantMeta
from isearchd.store.qdrant_payload import (
    below,
    folders_above,
    host_is,
    image_payload,
    info_from,
    look_from,
    match,
    name_from_key,
    name_key,
    point_id,
    record_from,
    search_filter,
)
from isearchd.store.qdrant_people import QdrantPeople
from isearchd.store.qdrant_points import PAGE, floats, payload_of
from isearchd.store.qdrant_words import QdrantWords
from isearchd.store.records import (
    Detail,
    ImageRecord,
    Move,
    SearchHit,
    WatchedFolder,
    check_search,
    latest_by_label,
    similarity,
)
from isearchd.store.rules import finished_hits, folder_move, moved_below, moved_label
from isearchd.store.vectors import normalise, record_vectors
from isearchd.store.videos import files_among, video_label

log = logging.getLogger(__name__)

# Quantized search (server only; local mode searches exactly): candidates fetched by the int8
# vectors per result wanted, then rescored with the float32 originals (Qdrant's documented way to
# keep recall near that of unquantized search; the factor is not measured here: no server).
OVERSAMPLING = 2.0
HNSW_EF_MIN = 128  # search breadth on a server (Qdrant's default ef is 100)


class QdrantDatabase(QdrantPeople, QdrantWords, QdrantFrames):
    """A database in Qdrant: its reads and writes, over the points of its collection
    (``qdrant_points.Points``), its people (``qdrant_people``), the words in its pictures
    (``qdrant_words``) and its videos' frames (``qdrant_frames``). Use ``QdrantStore.open``."""

    def __init__(
        self,
        link: QdrantLink,
        meta: QdrantMeta,
        name: str,
        collection: str,
        host: str,
        model_key: str,
        dim: int,
    ) -> None:
        super().__init__(link, name, collection, host, meta.prefix)
        self._meta = meta
        self._model_key = model_key
        self._dim = dim

    @property
    def model_key(self) -> str:
        return self._model_key

    @property
    def dim(self) -> int:
        return self._dim

    # -- writes ----------------------------------------------------------------------------------

    def add(self, records: list[ImageRecord]) -> int:
        """Upsert ``records`` by (this host, label); returns the points written. A video's frames
        stored before that ``records`` does not write again are deleted after. Acknowledged by
        Qdrant (``wait=true``) before it returns."""
        if not records:
            return 0
        batch = latest_by_label(records)
        self._check_open()
        reused = self._vectors_for_hashes({r.content_hash for r in batch if r.vector is None})
        matrix = record_vectors(batch, reused.get, self.dim)
        pids = [point_id(self.host, r.label) for r in batch]
        existing = self._retrieve(pids)
        stale = self._stale_frames(batch, existing)
        iids = self._image_ids(batch, pids, existing)
        points = [
            qm.PointStruct(
                id=pid,
                vector=matrix[i].tolist(),
                payload=image_payload(r, self.host, self.model_key, iids[i], payload_of(existing.get(pid))),
            )
            for i, (pid, r) in enumerate(zip(pids, batch, strict=True))
        ]
        self._upsert(points)
        self._delete_ids([str(p.id) for p in stale])
        changed = [iids[i] for i, pid in enumerate(pids) if _other_picture(existing.get(pid), batch[i])]
        changed += [int(payload_of(p)["iid"]) for p in stale]
        self._drop_faces(changed)  # another picture under that name (or none): its faces are not in it
        return len(points)

    def delete_labels(self, labels: Iterable[str]) -> int:
        """Delete this machine's images by label, a video with its frames; returns how many files
        existed."""
        found = self._retrieve([point_id(self.host, lb) for lb in labels])
        gone = {str(p.id): p for p in [*found.values(), *self._frames(videos_among(found.values()))]}
        self._delete_ids(list(gone))
        self._drop_faces([int(payload_of(p)["iid"]) for p in gone.values()])
        return files_among(label_of(p) for p in found.values())

    def delete_prefix(self, path_prefix: str) -> int:
        """Delete this machine's image at ``path_prefix`` and every one below that folder (a
        video's frames share its path); returns how many files."""
        if not path_prefix:
            raise InvalidRequest("a path prefix cannot be empty")
        flt = self._mine(below(path_prefix))
        gone = list(self._scroll(flt, payload=["iid", "label"]))
        if gone:
            with self._link.guard() as client:
                client.delete(self.collection, qm.FilterSelector(filter=flt), wait=True)
            self._drop_faces([int(payload_of(p)["iid"]) for p in gone])
        return files_among(label_of(p) for p in gone)

    def rename(self, moves: list[Move]) -> int:
        """Files moved on this machine, a video with its frames (see ``Database.rename``);
        returns how many files moved."""
        if not moves:
            return 0
        self._check_open()
        found = self._retrieve([point_id(self.host, m.old) for m in moves], vectors=True)
        planned = []
        by_label = {}
        for m in moves:
            point = found.get(point_id(self.host, m.old))
            if point is not None:
                planned.append((point, m.new, m.size, m.mtime_ns))
                by_label[label_of(point)] = m
        for frame in self._frames(videos_among(p for p, *_ in planned), vectors=True):
            if str(frame.id) not in found:
                m = by_label[video_label(label_of(frame))]
                planned.append((frame, m.new, m.size, m.mtime_ns))
        return self._move(planned)

    def move_prefix(self, src: str, dst: str) -> int:
        """A folder moved on this machine: every image at or below ``src`` (a video's frames share
        its path) now lives below ``dst``; returns how many files moved."""
        src, dst = folder_move(src, dst)
        planned = []
        for point in self._scroll(self._mine(below(src)), vectors=True):
            path = name_from_key(payload_of(point)["path"])
            planned.append((point, moved_below(path, src, dst), None, None))
        return self._move(planned)

    def _move(self, planned: Sequence[tuple[qm.Record, str, int | None, int | None]]) -> int:
        """Write each point under its new path (and label, when labelled by path), then delete the
        old points and any other point of this machine that was at a new path (replaced, with
        its faces); returns how many files moved."""
        points: list[qm.PointStruct] = []
        old_ids: list[str] = []
        for point, new_path, size, mtime_ns in planned:
            payload = dict(payload_of(point))
            label, path = name_from_key(payload["label"]), name_from_key(payload["path"])
            new_label = moved_label(label, path, new_path)
            payload.update(label=name_key(new_label), path=name_key(new_path), dirs=folders_above(new_path))
            if size is not None:
                payload["size"] = int(size)
            if mtime_ns is not None:
                payload["mtime_ns"] = int(mtime_ns)
            new_id = point_id(self.host, new_label)
            points.append(qm.PointStruct(id=new_id, vector=floats(point.vector), payload=payload))
            old_ids.append(str(point.id))
        if not points:
            return 0
        new_ids = {str(p.id) for p in points}
        kept_iids = {int((p.payload or {})["iid"]) for p in points}
        replaced: list[str] = []
        were_there: set[int] = set()  # the images at the new paths (overwritten ones too)
        for path in sorted({(p.payload or {})["path"] for p in points}):
            at_new = qm.Filter(must=[host_is(self.host), match("path", path)])
            for q in self._scroll(at_new, payload=["iid"]):
                if str(q.id) not in new_ids:
                    replaced.append(str(q.id))
                were_there.add(int(payload_of(q)["iid"]))
        self._upsert(points)
        self._delete_ids(sorted({*replaced, *(i for i in old_ids if i not in new_ids)}))
        self._drop_faces(sorted(were_there - kept_iids))
        return files_among(label_of(point) for point, *_ in planned)

    def clear(self) -> None:
        """Remove every image of the database (every machine's); its model and folders stay."""
        self._check_open()
        with self._link.guard() as client:
            client.delete(self.collection, qm.FilterSelector(filter=qm.Filter()), wait=True)
        self._drop_faces(None)

    def save_index(self) -> None:
        """Nothing to save: Qdrant acknowledged every write."""
        self._check_open()

    def close(self, *, save: bool = True) -> None:
        """Forget the connection (the store owns and closes the client). Idempotent."""
        self._closed = True

    def __enter__(self) -> QdrantDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders (this machine's) ----------------------------------------------------------------

    def add_folder(self, path: str, exclude: Iterable[str] = ()) -> None:
        self._check_open()
        self._meta.add_folder(self.name, self.host, path, list(exclude))

    def remove_folder(self, path: str) -> bool:
        self._check_open()
        return self._meta.remove_folder(self.name, self.host, path)

    def folders(self) -> list[WatchedFolder]:
        return self._meta.folders(self.name, self.host)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, label: str) -> ImageRecord | None:
        """This machine's image ``label``, with its vector."""
        point = self._retrieve([point_id(self.host, label)], vectors=True).get(point_id(self.host, label))
        return None if point is None else record_from(payload_of(point), point.vector, self.host)

    def record_by_id(self, image_id: int) -> ImageRecord | None:
        point = self._by_iid([image_id], mine=False, vectors=True).get(image_id)
        return None if point is None else record_from(payload_of(point), point.vector, self.host)

    def records(self, path_prefix: str | None = None) -> Iterator[ImageRecord]:
        """This machine's images (vector None), ordered by path; optionally only below one folder."""
        flt = self._mine(below(path_prefix)) if path_prefix is not None else self._mine()
        found = [record_from(payload_of(p), None, self.host) for p in self._scroll(flt)]
        found.sort(key=lambda r: to_db(r.path))
        yield from found

    def export(self, batch: int) -> Iterator[list[ImageRecord]]:
        """This machine's images with vectors, metadata and looks, in batches (for a copy), a
        video's own point before its further frames."""
        out: list[ImageRecord] = []
        for p in self._files_then_frames():
            out.append(record_from(payload_of(p), p.vector, self.host))
            if len(out) >= batch:
                yield out
                out = []
        if out:
            yield out

    def vector_for_hash(self, content_hash: str) -> np.ndarray | None:
        return self._vectors_for_hashes({content_hash}).get(content_hash)

    def indexed_paths(self, paths: Collection[str]) -> set[str]:
        """Which of ``paths`` this machine's points have, in one filtered scroll."""
        keys = sorted({name_key(p) for p in paths})
        if not keys:
            return set()
        flt = self._mine(qm.FieldCondition(key="path", match=qm.MatchAny(any=keys)))
        return {name_from_key(payload_of(p)["path"]) for p in self._scroll(flt, payload=["path"])}

    def count(self) -> int:
        """Every machine's points: a photo one, a video one per indexed frame."""
        return self._count(None)

    def count_files(self) -> int:
        """Every machine's files: photos and videos, a video once."""
        return self._count_files(None)

    def count_below(self, path_prefix: str) -> int:
        """This machine's files at or below the folder ``path_prefix``, a video once."""
        return self._count_files(self._mine(below(path_prefix)))

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        min_similarity: float = 0.0,
        filters: Filters | None = None,
        *,
        details: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` most similar images of every machine (filters as payload filters, pushed
        down to Qdrant) with similarity >= ``min_similarity`` percent, best first."""
        check_search(k, min_similarity)
        self._check_open()
        query = normalise(vector, self.dim)[0]
        params = None
        if not self._link.local:  # local mode searches exactly and warns about search params
            params = qm.SearchParams(
                hnsw_ef=max(HNSW_EF_MIN, 2 * k),
                quantization=qm.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING),
            )
        flt = search_filter(filters, people=self._people_of(filters))  # (outside the client's lock)
        with self._link.guard() as client:
            found = client.query_points(
                self.collection,
                query=query.tolist(),
                query_filter=flt,
                limit=k,
                score_threshold=min_similarity / 100.0 - 0.0005,  # then rounded as the embedded store
                search_params=params,
                with_payload=True,
            ).points
        hits = []
        for p in found:
            payload = payload_of(p)
            host = name_from_key(payload["host"])
            hits.append(
                SearchHit(
                    name_from_key(payload["label"]),
                    name_from_key(payload["path"]),
                    similarity(p.score),
                    info_from(payload) if details else PhotoInfo(),
                    int(payload["size"]) if details else None,
                    int(payload["iid"]),
                    None if host == self.host else host,
                )
            )
        return finished_hits(hits, min_similarity)

    # -- duplicates ------------------------------------------------------------------------------

    def vectors_below(self, path_prefix: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and unit vectors of every machine's images, or of this machine's below a folder."""
        flt = self._mine(below(path_prefix)) if path_prefix else None
        ids, rows = [], []
        for p in self._scroll(flt, vectors=True, payload=["iid"]):
            ids.append(int(payload_of(p)["iid"]))
            rows.append(p.vector)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), np.asarray(rows, dtype=np.float32)

    def matching(self, filters: Filters) -> list[int]:
        flt = search_filter(filters, people=self._people_of(filters))
        return sorted(int(payload_of(p)["iid"]) for p in self._scroll(flt, payload=["iid"]))

    def _people_of(self, filters: Filters | None) -> set[int] | None:
        """The images that show every person ``filters`` names (None: it names nobody)."""
        return self._with_people(filters.people) if filters and filters.people else None

    def neighbours(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``k`` nearest images of each image ``ids`` (itself first), as (ids, cosines) of
        shape ``(len(ids), k)``; None when some image has fewer than ``k - 1`` others."""
        if k < 2 or len(ids) == 0:
            return None
        points = self._by_iid([int(i) for i in ids], mine=False)
        if len(points) < len(ids):
            return None  # an image deleted meanwhile
        labels = np.zeros((len(ids), k), dtype=np.int64)
        cosines = np.zeros((len(ids), k), dtype=np.float32)
        labels[:, 0], cosines[:, 0] = ids, 1.0
        for start in range(0, len(ids), PAGE // 10):
            chunk = [int(i) for i in ids[start : start + PAGE // 10]]
            requests = [
                qm.QueryRequest(query=str(points[i].id), limit=k - 1, with_payload=["iid"]) for i in chunk
            ]
            with self._link.guard() as client:
                answers = client.query_batch_points(self.collection, requests)
            for row, answer in enumerate(answers, start=start):
                if len(answer.points) < k - 1:
                    return None
                labels[row, 1:] = [int(payload_of(p)["iid"]) for p in answer.points]
                cosines[row, 1:] = [p.score for p in answer.points]
        return labels, cosines

    def details(self, ids: Sequence[int]) -> dict[int, Detail]:
        """What duplicate finding and listings need of images of any machine by id."""
        out = {}
        for iid, p in self._by_iid(list(ids), mine=False).items():
            pl = payload_of(p)
            host = name_from_key(pl["host"])
            out[iid] = Detail(
                name_from_key(pl["label"]),
                name_from_key(pl["path"]),
                info_from(pl),
                int(pl["size"]),
                look_from(pl),
                None if host == self.host else host,
            )
        return out

    def info(self) -> DbInfo:
        entry = self._meta.database(self.name)
        created = entry.created if entry is not None else None
        vectors = self.count()
        return DbInfo(
            name=self.name,
            base=f"{self._link.target.url} collection {self.collection}",
            size=self.count_files(),
            vectors=vectors,
            capacity=vectors,
            disk_bytes=None,  # Qdrant's business (see docs/scale.md for the sizes to expect)
            model=self.model_key,
            dim=self.dim,
            created=created,
            store=self._link.target.url,
            collection=self.collection,
            host=self.host,
        )


def _other_picture(point: qm.Record | None, record: ImageRecord) -> bool:
    """Whether ``record`` puts another picture where ``point`` was (same name, other content)."""
    return point is not None and payload_of(point).get("hash") != record.content_hash
