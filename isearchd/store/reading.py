"""The reading side of an embedded database: every query, on pooled reader connections.

``DatabaseReader`` holds a database's catalog and vector index and answers everything that only
reads them: lookups, searches (filters ranked exactly among the images that pass), the passes'
pending photos, what duplicate finding needs, people (``people_db.py``). ``Database``
(``database.py``) adds the writes, the saver and the lifecycle on top; the reads never take its
write lock (WAL mode), so a search never waits on an add.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from isearchd.errors import StoreError
from isearchd.messages import DbInfo
from isearchd.store import analyses
from isearchd.store.catalog import Catalog
from isearchd.store.export import export_rows
from isearchd.store.looks import looks_for_ids
from isearchd.store.metadata import Filters, PhotoInfo, filter_ids, filter_vectors, info_for_ids
from isearchd.store.people_db import PeopleReads
from isearchd.store.records import (
    Detail,
    ImageRecord,
    PhotoFile,
    SearchHit,
    WatchedFolder,
    check_search,
    similarity,
)
from isearchd.store.rules import finished_hits
from isearchd.store.vectors import FILTER_EXACT_MAX, VectorIndex, normalise, rank
from isearchd.store.words_db import WordsReads


class DatabaseReader(PeopleReads, WordsReads):
    """The queries of one database (its catalog and vector index); people's are ``PeopleReads``,
    words' ``WordsReads``."""

    def __init__(self, name: str, base: Path, catalog: Catalog, vectors: VectorIndex) -> None:
        self.name = name
        self.base = base
        self.catalog = catalog
        self._vectors = vectors
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database '{self.name}' is closed")

    @property
    def model_key(self) -> str:
        return self._vectors.model_key

    @property
    def dim(self) -> int:
        return self._vectors.dim

    def folders(self) -> list[WatchedFolder]:
        return self.catalog.folders()

    def get(self, label: str) -> ImageRecord | None:
        row = self.catalog.get(label)
        if row is None:
            return None
        return ImageRecord(row.label, row.path, row.size, row.mtime_ns, row.content_hash, row.vector)

    def record_by_id(self, image_id: int) -> ImageRecord | None:
        """One image by id, with its vector and what the photo says of itself."""
        found = self.catalog.labels_for_ids([image_id]).get(image_id)
        record = self.get(found[0]) if found is not None else None
        if record is None:
            return None
        with self.catalog.reader() as conn:
            info = info_for_ids(conn, [image_id]).get(image_id)
        return replace(record, info=info[0] if info is not None else None)

    def export(self, batch: int) -> Iterator[list[ImageRecord]]:
        """Every image with its vector, photo metadata and look, in batches (for a copy)."""
        with self.catalog.reader() as conn:
            yield from export_rows(conn, batch)

    def records(self, path_prefix: str | None = None) -> Iterator[ImageRecord]:
        """Every stored image (vector None), ordered by path; optionally only below one folder."""
        for row in self.catalog.iter_rows(path_prefix):
            yield ImageRecord(row.label, row.path, row.size, row.mtime_ns, row.content_hash, None)

    def labels_present(self, labels: Iterable[str]) -> set[str]:
        return self.catalog.labels_present(labels)

    def vector_for_hash(self, content_hash: str) -> np.ndarray | None:
        """The stored vector of an image with this content hash, to skip embedding a duplicate."""
        return self.catalog.vector_for_hash(content_hash)

    def indexed_paths(self, paths: Collection[str]) -> set[str]:
        """Which of ``paths`` the database holds, in one query of the path index."""
        return self.catalog.indexed_paths(paths)

    def count(self) -> int:
        """The rows: a photo one, a video one per indexed frame (what the passes go through)."""
        return self.catalog.count()

    def count_files(self) -> int:
        """The files: photos and videos, a video once (what users are told)."""
        return self.catalog.count_files()

    def count_below(self, path_prefix: str) -> int:
        """The files at or below the folder ``path_prefix`` (by path), a video once."""
        return self.catalog.count_files(path_prefix)

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        min_similarity: float = 0.0,
        filters: Filters | None = None,
        *,
        details: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` most similar images with similarity >= ``min_similarity`` (percent), best first.

        ``filters``: only images that pass them, ranked exactly among themselves (the top k of
        those that pass, not what passes of an unfiltered top k). ``details``: hits carry the
        photo metadata and file size.
        """
        check_search(k, min_similarity)
        self._check_open()
        if filters:
            exact = True
            with self.catalog.reader() as conn:
                allowed = filter_ids(conn, filters)
                if len(allowed) <= FILTER_EXACT_MAX:  # exactly, with the vectors of those that pass
                    ids, matrix = filter_vectors(conn, filters)
            if len(allowed) <= FILTER_EXACT_MAX:
                hits = rank(normalise(vector, self.dim)[0], k, ids, matrix)
            else:
                hits = self._vectors.search_among(vector, k, allowed)
        else:
            hits, exact = self._vectors.search(vector, k)
        passing = sum(1 for h in hits if similarity(h.cosine) >= min_similarity)
        if not exact and passing < len(hits) and not filters:
            # The filter cut into an approximate top k: the graph may have missed images that
            # pass. Search deeper so that when more than k pass, k come back.
            hits, _ = self._vectors.search(vector, k, deep=True)
        labels = self.catalog.labels_for_ids([h.id for h in hits])
        extra: dict[int, tuple[PhotoInfo, int]] = {}
        if details:
            with self.catalog.reader() as conn:
                extra = info_for_ids(conn, [h.id for h in hits])
        found = []
        for h in hits:
            names = labels.get(h.id)
            if names is not None:
                info, size = extra.get(h.id, (PhotoInfo(), None))
                found.append(SearchHit(names[0], names[1], similarity(h.cosine), info, size, h.id))
        return finished_hits(found, min_similarity)

    def pending(self, analysis: str, version: int, limit: int) -> list[PhotoFile]:
        """Up to ``limit`` images that version ``version`` of ``analysis`` has not read."""
        with self.catalog.reader() as conn:
            return analyses.pending(conn, analysis, version, limit)

    def count_pending(self, analysis: str, version: int) -> int:
        with self.catalog.reader() as conn:
            return analyses.count_pending(conn, analysis, version)

    def count_failed(self, analysis: str, version: int) -> int:
        with self.catalog.reader() as conn:
            return analyses.count_failed(conn, analysis, version)

    def vectors_below(self, path_prefix: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and unit vectors of every image, or of those below the folder ``path_prefix``."""
        with self.catalog.reader() as conn:
            return filter_vectors(conn, Filters(within=(path_prefix,) if path_prefix else ()))

    def neighbours(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Graph search: the ``k`` nearest images of each image ``ids`` (see ``VectorIndex``)."""
        return self._vectors.neighbours(ids, k)

    def matching(self, filters: Filters) -> list[int]:
        with self.catalog.reader() as conn:
            return [int(i) for i in filter_ids(conn, filters)]

    def details(self, ids: Sequence[int]) -> dict[int, Detail]:
        """What duplicate finding needs of images by id."""
        labels = self.catalog.labels_for_ids(list(ids))
        with self.catalog.reader() as conn:
            infos = info_for_ids(conn, list(ids))
            looks = looks_for_ids(conn, list(ids))
        return {
            i: Detail(labels[i][0], labels[i][1], infos[i][0], infos[i][1], looks.get(i))
            for i in ids
            if i in labels and i in infos
        }

    def info(self) -> DbInfo:
        disk = 0
        for entry in self.base.iterdir():
            try:
                if entry.is_file():
                    disk += entry.stat().st_size
            except OSError:
                continue
        return DbInfo(
            name=self.name,
            base=str(self.base),
            size=self.count_files(),
            vectors=self.count(),
            capacity=self._vectors.capacity,
            disk_bytes=disk,
            model=self.model_key,
            dim=self.dim,
            created=self.catalog.get_meta("created"),
        )

    def index_ids(self) -> set[int]:
        """Ids the in-memory vector index holds (for consistency checks)."""
        return self._vectors.ids()
