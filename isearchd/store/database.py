"""One named database: ``<home>/<name>/`` holding the catalog and the vector index.

The catalog is committed before ``add`` returns (nothing acknowledged is ever lost); the vector
index is updated in memory right after and written to disk later by a background saver, after
``SavePolicy.max_changes`` changes or ``max_seconds`` after the first unsaved change, spaced so that
saving takes at most a tenth of the time (``spacing``), and at ``close`` (never after every batch:
at 100k images the file is ~250 MB). A crash loses at most
those unsaved index changes, which the next open replays from the catalog.

Thread safety: one writer per database (a lock around every change and every index save), any
number of concurrent readers (pooled SQLite reader connections in WAL mode, shared index lock).

One process should own a database at a time (the daemon, whose pid-file lock makes it the only
one per data home).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from isearchd.errors import InvalidRequest, StoreError
from isearchd.messages import DbInfo
from isearchd.store.catalog import CATALOG_NAME, Catalog, now_iso
from isearchd.store.export import export_rows
from isearchd.store.looks import Look, count_unknown_looks, looks_for_ids, unknown_looks, write_looks
from isearchd.store.metadata import (
    Filters,
    PhotoInfo,
    count_unread,
    filter_ids,
    filter_vectors,
    info_for_ids,
    unread,
    write_info,
)
from isearchd.store.names import missing_database, validate_db_name
from isearchd.store.records import (
    ImageRecord,
    SearchHit,
    check_search,
    latest_by_label,
    model_mismatch,
    similarity,
)
from isearchd.store.vectors import FILTER_EXACT_MAX, VectorIndex, normalise, rank, record_vectors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavePolicy:
    """When the vector index is written to disk.

    A save rewrites the whole file (~2.5 kB per image at dim 512), and what is not saved is
    replayed from the catalog on the next open (~3,000 rows/s on 2 cores), so the defaults bound
    the replay after a crash to a few seconds without rewriting the file for every batch.
    """

    max_changes: int = 10_000
    max_seconds: float = 60.0
    background: bool = True
    # A save rewrites the whole file, so its cost grows with the library (~5 s for 1M images);
    # adds wait while it runs. Whatever the two limits above say, a save is due no sooner than
    # this many times the last save's duration after it: saving takes at most a tenth of the
    # time at any size (replay after a crash grows with it, by the images added meanwhile).
    spacing: float = 9.0


class Database:
    """Catalog + vector index of one named database. Use ``Database.open``."""

    def __init__(
        self, name: str, base: Path, catalog: Catalog, vectors: VectorIndex, policy: SavePolicy
    ) -> None:
        self.name = name
        self.base = base
        self.catalog = catalog
        self._vectors = vectors
        self._policy = policy
        self._write_lock = threading.RLock()
        self._cond = threading.Condition()
        self._unsaved = 0
        self._dirty_since: float | None = None
        self._next_save_at = 0.0  # monotonic: no background save before (``SavePolicy.spacing``)
        self._stopping = False
        self._closed = False
        self._saver: threading.Thread | None = None

    @property
    def model_key(self) -> str:
        return self._vectors.model_key

    @property
    def dim(self) -> int:
        return self._vectors.dim

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        home: Path,
        name: str,
        *,
        model_key: str | None = None,
        dim: int | None = None,
        create: bool = True,
        save_policy: SavePolicy | None = None,
    ) -> Database:
        """Open the database ``name`` under ``home``, creating it when missing and allowed.

        Creating needs ``model_key`` and ``dim``. An existing database built by another model
        raises ModelMismatch (an empty one is taken over by the new model); ``model_key`` None
        opens whatever model it has.
        """
        validate_db_name(name)
        base = Path(home) / name
        catalog_path = base / CATALOG_NAME
        if not catalog_path.is_file():
            if not create or model_key is None or dim is None:
                raise missing_database(home, name)
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create database '{name}' at {base}: {exc}") from exc
        catalog = Catalog.open(catalog_path)
        try:
            stored_model, stored_dim = cls._check_model(catalog, name, model_key, dim)
            vectors, changed = VectorIndex.open(base, stored_dim, stored_model, catalog)
        except BaseException:
            catalog.close()
            raise
        db = cls(name, base, catalog, vectors, save_policy or SavePolicy())
        if changed:
            db._note_changes(max(1, db._policy.max_changes))  # save soon: the replay is done once
        db._start_saver()
        return db

    @staticmethod
    def _check_model(catalog: Catalog, name: str, model_key: str | None, dim: int | None) -> tuple[str, int]:
        stored_model = catalog.get_meta("model_key")
        stored_dim = catalog.get_meta("dim")
        if stored_model is None or stored_dim is None:
            if model_key is None or dim is None:
                raise StoreError(f"database '{name}' ({catalog.path}) records no model; open it with a model")
            catalog.set_meta({"model_key": model_key, "dim": str(dim), "created": now_iso()})
            return model_key, dim
        other_dim = dim is not None and dim != int(stored_dim)
        if model_key is not None and (model_key != stored_model or other_dim):
            if catalog.count() == 0:
                # Nothing embedded yet (new or cleared): the new model takes the database over.
                log.info("database '%s' is empty: its model %s -> %s", name, stored_model, model_key)
                catalog.set_meta({"model_key": model_key, "dim": str(dim if dim is not None else stored_dim)})
                return model_key, int(dim if dim is not None else stored_dim)
            raise model_mismatch(name, stored_model, stored_dim, model_key, dim)
        return stored_model, int(stored_dim)

    # -- background saving ----------------------------------------------------------------------

    def _start_saver(self) -> None:
        if self._policy.background:
            self._saver = threading.Thread(
                target=self._saver_loop, name=f"isearch-save-{self.name}", daemon=True
            )
            self._saver.start()

    def _note_changes(self, n: int) -> None:
        with self._cond:
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
            self._unsaved += n
            if self._unsaved >= self._policy.max_changes:
                self._cond.notify_all()

    def _save_due(self) -> bool:
        if not self._unsaved or self._dirty_since is None:
            return False
        now = time.monotonic()
        if now < self._next_save_at:
            return False
        age = now - self._dirty_since
        return self._unsaved >= self._policy.max_changes or age >= self._policy.max_seconds

    def _wait_for_save(self) -> float:
        """Seconds until the next background save could be due (the saver's wait; >= 0.05)."""
        assert self._dirty_since is not None
        now = time.monotonic()
        left = self._policy.max_seconds - (now - self._dirty_since)
        if self._unsaved >= self._policy.max_changes:
            left = 0.0
        return max(0.05, left, self._next_save_at - now)

    def _saver_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._save_due():
                    if self._dirty_since is None:
                        self._cond.wait()
                    else:
                        self._cond.wait(self._wait_for_save())
                if self._stopping:
                    return
            try:
                self.save_index()
            except StoreError as exc:
                log.error("%s", exc)
                with self._cond:  # retry after max_seconds, not in a tight loop
                    self._dirty_since = time.monotonic()
                    self._unsaved = min(self._unsaved, max(0, self._policy.max_changes - 1))
                    self._cond.wait(self._policy.max_seconds)

    def save_index(self) -> None:
        """Write the vector index now if it has unsaved changes. StoreError on failure."""
        with self._write_lock:
            self._check_open()
            with self._cond:
                pending = self._unsaved
            if not pending and self._vectors.path.exists():
                return
            started = time.monotonic()
            self._vectors.save(self.catalog.change_seq())
            with self._cond:
                ended = time.monotonic()
                self._next_save_at = ended + self._policy.spacing * (ended - started)
                self._unsaved -= pending
                self._dirty_since = ended if self._unsaved else None

    # -- writes ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database '{self.name}' is closed")

    def add(self, records: list[ImageRecord]) -> int:
        """Insert or update ``records`` by label in one transaction; returns the rows written.

        When this returns, the rows are committed to the catalog and searchable.
        """
        if not records:
            return 0
        batch = latest_by_label(records)
        with self._write_lock:
            self._check_open()
            matrix = record_vectors(batch, self.catalog.vector_for_hash, self.dim)
            rows = [
                (r.label, r.path, int(r.size), int(r.mtime_ns), r.content_hash, matrix[i], r.info)
                for i, r in enumerate(batch)
            ]
            _, written = self.catalog.upsert(rows, [(r.label, r.look) for r in batch])
            ids = [ident for ident, _ in written]
            existing = [ident for ident, existed in written if existed]
            self._apply_to_index(lambda: self._vectors.add(ids, matrix, existing))
            self._note_changes(len(ids))
        return len(ids)

    def _apply_to_index(self, change: Any) -> None:
        try:
            change()
        except (RuntimeError, MemoryError) as exc:
            raise StoreError(
                f"database '{self.name}': the change is saved in the catalog but the in-memory index "
                f"could not take it ({exc}); restart the daemon to rebuild the index"
            ) from exc

    def delete_labels(self, labels: Iterable[str]) -> int:
        """Delete images by label; returns how many existed."""
        wanted = list(labels)
        if not wanted:
            return 0
        with self._write_lock:
            self._check_open()
            ids = self.catalog.delete_labels(wanted)
            self._apply_to_index(lambda: self._vectors.delete(ids))
            if ids:
                self._note_changes(len(ids))
        return len(ids)

    def delete_prefix(self, path_prefix: str) -> int:
        """Delete the image at ``path_prefix`` and every image below that folder.

        Folder semantics: ``/photos/a`` removes ``/photos/a`` and ``/photos/a/...``, not ``/photos/ab``.
        """
        if not path_prefix:
            raise InvalidRequest("a path prefix cannot be empty")
        with self._write_lock:
            self._check_open()
            ids = self.catalog.delete_prefix(path_prefix)
            self._apply_to_index(lambda: self._vectors.delete(ids))
            if ids:
                self._note_changes(len(ids))
        return len(ids)

    def rename(self, moves: list[tuple[str, str, int | None, int | None]]) -> int:
        """Files moved or renamed on disk: ``(old_path, new_path, size, mtime_ns)``, one transaction.

        Rows labelled by their path get the new path as label and path; other rows (name labels)
        only a new path. The vectors stay (no re-embedding). A row already stored at a new path
        (the move replaced that file) is removed. Returns how many rows moved.
        """
        if not moves:
            return 0
        with self._write_lock:
            self._check_open()
            rows = {}
            for old, new, size, mtime_ns in moves:
                rec = self.catalog.get(old, with_vector=False)
                if rec is not None:
                    rows[old] = (old, new if rec.label == rec.path else rec.label, new, size, mtime_ns)
            return self._move(list(rows.values()))

    def move_prefix(self, src: str, dst: str) -> int:
        """A folder moved or renamed on disk: every row at or below ``src`` now lives below
        ``dst``, in one transaction, vectors kept. Returns how many rows moved."""
        src, dst = src.rstrip("/"), dst.rstrip("/")
        if not src or not dst:
            raise InvalidRequest("a folder path cannot be empty")
        with self._write_lock:
            self._check_open()
            moves = []
            for label, path in self.catalog.rows_below(src):
                new_path = dst + path[len(src) :]
                moves.append((label, new_path if label == path else label, new_path, None, None))
            return self._move(moves)

    def _move(self, moves: Sequence[tuple[str, str, str, int | None, int | None]]) -> int:
        if not moves:
            return 0
        replaced = self.catalog.move_rows(moves)
        if replaced:
            self._apply_to_index(lambda: self._vectors.delete(replaced))
            self._note_changes(len(replaced))
        return len(moves)

    def clear(self) -> None:
        """Remove every image; the database, its model and its watched folders stay."""
        with self._write_lock:
            self._check_open()
            self.catalog.clear()
            self._vectors.reset()
            self._note_changes(1)
            try:
                self.save_index()  # small now; replaces the large old file right away
            except StoreError as exc:
                log.warning("%s", exc)

    def drop(self) -> None:
        """Delete the database and all its files."""
        self.close(save=False)
        shutil.rmtree(self.base, ignore_errors=False)
        log.info("database '%s' dropped (%s)", self.name, self.base)

    def close(self, *, save: bool = True) -> None:
        """Stop the saver, write the index if it changed, close the catalog. Idempotent."""
        if self._closed:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._saver is not None:
            self._saver.join()
        error: StoreError | None = None
        with self._write_lock:
            if save:
                try:
                    self.save_index()
                except StoreError as exc:
                    error = exc
            self._closed = True
            self.catalog.close()
        if error is not None:
            raise error

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders --------------------------------------------------------------------------------

    def add_folder(self, path: str, options: dict[str, Any] | None = None) -> None:
        with self._write_lock:
            self._check_open()
            self.catalog.add_folder(path, options or {})

    def remove_folder(self, path: str) -> bool:
        with self._write_lock:
            self._check_open()
            return self.catalog.remove_folder(path)

    def folders(self) -> list[dict[str, Any]]:
        return self.catalog.folders()

    # -- reads ----------------------------------------------------------------------------------

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

    def count(self) -> int:
        return self.catalog.count()

    def count_below(self, path_prefix: str) -> int:
        """Images at or below the folder ``path_prefix`` (by path)."""
        return self.catalog.count_below(path_prefix)

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
        out = []
        for h in hits:
            sim = similarity(h.cosine)
            found = labels.get(h.id)
            if found is not None and sim >= min_similarity:
                info, size = extra.get(h.id, (PhotoInfo(), None))
                out.append(SearchHit(found[0], found[1], sim, info, size, h.id))
        out.sort(key=lambda s: -s.similarity)
        return out

    # -- photo metadata of rows added before it existed (filled in by the engine's backfill) ------

    def unread_metadata(self, limit: int) -> list[tuple[int, str, str, int]]:
        """Images whose metadata was never read: (id, label, path, mtime_ns)."""
        with self.catalog.reader() as conn:
            return unread(conn, limit)

    def count_unread_metadata(self) -> int:
        with self.catalog.reader() as conn:
            return count_unread(conn)

    def store_metadata(self, rows: list[tuple[int, PhotoInfo | None]]) -> None:
        """Metadata by id (None: the file cannot be read); no vector or index changes."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                write_info(db.conn, rows)

    # -- looks (perceptual hash, colours) of rows added before they existed, and their readers --

    def unknown_looks(self, limit: int) -> list[tuple[int, str]]:
        """Images whose look was never computed: (id, path)."""
        with self.catalog.reader() as conn:
            return unknown_looks(conn, limit)

    def count_unknown_looks(self) -> int:
        with self.catalog.reader() as conn:
            return count_unknown_looks(conn)

    def store_looks(self, rows: list[tuple[int, Look | None]]) -> None:
        """Looks by id (None: the image cannot be read); no vector or index changes."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                write_looks(db.conn, rows)

    def vectors_below(self, path_prefix: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and unit vectors of every image, or of those below the folder ``path_prefix``."""
        with self.catalog.reader() as conn:
            return filter_vectors(conn, Filters(within=(path_prefix,) if path_prefix else ()))

    def neighbours(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Graph search: the ``k`` nearest images of each image ``ids`` (see ``VectorIndex``)."""
        return self._vectors.neighbours(ids, k)

    def details(self, ids: Sequence[int]) -> dict[int, tuple[str, str, PhotoInfo, int, Look | None]]:
        """(label, path, photo metadata, file size, look) of images by id."""
        labels = self.catalog.labels_for_ids(list(ids))
        with self.catalog.reader() as conn:
            infos = info_for_ids(conn, list(ids))
            looks = looks_for_ids(conn, list(ids))
        return {
            i: (labels[i][0], labels[i][1], infos[i][0], infos[i][1], looks.get(i))
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
            size=self.count(),
            capacity=self._vectors.capacity,
            disk_bytes=disk,
            model=self.model_key,
            dim=self.dim,
            created=self.catalog.get_meta("created"),
        )

    def index_ids(self) -> set[int]:
        """Ids the in-memory vector index holds (for consistency checks)."""
        return self._vectors.ids()
