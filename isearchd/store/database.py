"""One named database: ``<home>/<name>/`` holding the catalog and the vector index.

The catalog is committed before ``add`` returns (nothing acknowledged is ever lost); the vector
index is updated in memory right after and written to disk later by the background saver
(``saver.py``). A crash loses at most the unsaved index changes, which the next open replays from
the catalog.

Thread safety: one writer per database (a lock around every change and every index save), any
number of concurrent readers (``DatabaseReader``: pooled SQLite reader connections in WAL mode,
shared index lock).

One process should own a database at a time (the daemon, whose pid-file lock makes it the only
one per data home).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from isearchd.errors import InvalidRequest, StoreError
from isearchd.store import analyses
from isearchd.store.catalog import CATALOG_NAME, Catalog, now_iso
from isearchd.store.looks import Look, write_looks
from isearchd.store.metadata import PhotoInfo, write_info
from isearchd.store.names import missing_database, validate_db_name
from isearchd.store.people_db import PeopleWrites
from isearchd.store.reading import DatabaseReader
from isearchd.store.records import ImageRecord, Move, latest_by_label
from isearchd.store.rules import folder_move, moved_below, moved_label, settle_model
from isearchd.store.saver import IndexSaver, SavePolicy
from isearchd.store.vectors import VectorIndex, record_vectors
from isearchd.store.videos import files_among
from isearchd.store.words_db import WordsWrites

__all__ = ["Database", "SavePolicy"]

log = logging.getLogger(__name__)


class Database(DatabaseReader, PeopleWrites, WordsWrites):
    """Catalog + vector index of one named database: the reads, and the writes (people's are
    ``PeopleWrites``, words' ``WordsWrites``). Use ``Database.open``."""

    def __init__(
        self, name: str, base: Path, catalog: Catalog, vectors: VectorIndex, policy: SavePolicy
    ) -> None:
        super().__init__(name, base, catalog, vectors)
        self._write_lock = threading.RLock()
        self._saver = IndexSaver(name, policy, self.save_index)

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
            stored_model, stored_dim = _settle_model(catalog, name, model_key, dim)
            vectors, changed = VectorIndex.open(base, stored_dim, stored_model, catalog)
        except BaseException:
            catalog.close()
            raise
        db = cls(name, base, catalog, vectors, save_policy or SavePolicy())
        if changed:
            db._saver.note(max(1, db._saver.policy.max_changes))  # save soon: the replay is done once
        return db

    # -- the vector index on disk ---------------------------------------------------------------

    def save_index(self) -> None:
        """Write the vector index now if it has unsaved changes. StoreError on failure."""
        with self._write_lock:
            self._check_open()
            pending = self._saver.unsaved
            if not pending and self._vectors.path.exists():
                return
            with self._saver.saving(pending):
                self._vectors.save(self.catalog.change_seq())

    # -- writes ---------------------------------------------------------------------------------

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
            _, written, stale = self.catalog.upsert(rows, [(r.label, r.look) for r in batch])
            ids = [ident for ident, _ in written]
            existing = [ident for ident, existed in written if existed]
            self._apply_to_index(lambda: self._vectors.add(ids, matrix, existing))
            self._saver.note(len(ids))
            self._deleted(stale)  # a re-indexed video's moments that are gone
        return len(ids)

    def _apply_to_index(self, change: Callable[[], object]) -> None:
        try:
            change()
        except (RuntimeError, MemoryError) as exc:
            raise StoreError(
                f"database '{self.name}': the change is saved in the catalog but the in-memory index "
                f"could not take it ({exc}); restart the daemon to rebuild the index"
            ) from exc

    def _deleted(self, ids: list[int]) -> int:
        self._apply_to_index(lambda: self._vectors.delete(ids))
        if ids:
            self._saver.note(len(ids))
        return len(ids)

    def delete_labels(self, labels: Iterable[str]) -> int:
        """Delete images by label, a video with its frames; returns how many files existed."""
        wanted = list(labels)
        if not wanted:
            return 0
        with self._write_lock:
            self._check_open()
            removed = self.catalog.delete_labels(wanted)
            self._deleted(removed.ids)
            return removed.files

    def delete_prefix(self, path_prefix: str) -> int:
        """Delete the image at ``path_prefix`` and every image below that folder.

        Folder semantics: ``/photos/a`` removes ``/photos/a`` and ``/photos/a/...``, not ``/photos/ab``.
        Returns how many files were removed (a video once).
        """
        if not path_prefix:
            raise InvalidRequest("a path prefix cannot be empty")
        with self._write_lock:
            self._check_open()
            removed = self.catalog.delete_prefix(path_prefix)
            self._deleted(removed.ids)
            return removed.files

    def rename(self, moves: list[Move]) -> int:
        """Files moved or renamed on disk, in one transaction.

        Rows labelled by their path get the new path as label and path; other rows (name labels)
        only a new path; a video's frames move with it. The vectors stay (no re-embedding). A row
        already stored at a new path (the move replaced that file) is removed. Returns how many
        files moved.
        """
        if not moves:
            return 0
        with self._write_lock:
            self._check_open()
            rows = {}
            for m in moves:
                rec = self.catalog.get(m.old, with_vector=False)
                if rec is not None:
                    rows[m.old] = (m.old, moved_label(rec.label, rec.path, m.new), m.new, m.size, m.mtime_ns)
            return self._move(list(rows.values()))

    def move_prefix(self, src: str, dst: str) -> int:
        """A folder moved or renamed on disk: every row at or below ``src`` now lives below
        ``dst``, in one transaction, vectors kept. Returns how many files moved (a video once)."""
        src, dst = folder_move(src, dst)
        with self._write_lock:
            self._check_open()
            moves = []
            for label, path in self.catalog.rows_below(src):
                new_path = moved_below(path, src, dst)
                moves.append((label, moved_label(label, path, new_path), new_path, None, None))
            return self._move(moves)

    def _move(self, moves: Sequence[tuple[str, str, str, int | None, int | None]]) -> int:
        if not moves:
            return 0
        self._deleted(self.catalog.move_rows(moves))
        return files_among(m[0] for m in moves)

    def clear(self) -> None:
        """Remove every image; the database, its model and its watched folders stay."""
        with self._write_lock:
            self._check_open()
            self.catalog.clear()
            self._vectors.reset()
            self._saver.note(1)
            try:
                self.save_index()  # small now; replaces the large old file right away
            except StoreError as exc:
                log.warning("%s", exc)

    def store_metadata(self, rows: Mapping[int, PhotoInfo | None]) -> None:
        """Photo metadata by id (None: the file cannot be read); no vector or index changes."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                write_info(db.conn, list(rows.items()))

    def store_looks(self, rows: Mapping[int, Look | None]) -> None:
        """Looks by id (None: the image cannot be read); no vector or index changes."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                write_looks(db.conn, list(rows.items()))

    def record_analysis(self, analysis: str, version: int, outcomes: Mapping[int, str | None]) -> None:
        """Version ``version`` of ``analysis`` has read these images (None) or failed (the reason)."""
        with self._write_lock:
            self._check_open()
            with self.catalog.transaction() as db:
                analyses.record_outcomes(db.conn, analysis, version, outcomes)

    # -- watched folders ------------------------------------------------------------------------

    def add_folder(self, path: str, exclude: Iterable[str] = ()) -> None:
        with self._write_lock:
            self._check_open()
            self.catalog.add_folder(path, list(exclude))

    def remove_folder(self, path: str) -> bool:
        with self._write_lock:
            self._check_open()
            return self.catalog.remove_folder(path)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self, *, save: bool = True) -> None:
        """Stop the saver, write the index if it changed, close the catalog. Idempotent."""
        if self._closed:
            return
        self._saver.stop()
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


def _settle_model(catalog: Catalog, name: str, model_key: str | None, dim: int | None) -> tuple[str, int]:
    """The database's model after opening it with ``model_key`` (``rules.settle_model``)."""
    stored_model, stored_dim = catalog.get_meta("model_key"), catalog.get_meta("dim")
    stored = (stored_model, int(stored_dim)) if stored_model is not None and stored_dim is not None else None
    model, size, taken_over = settle_model(name, stored, model_key, dim, lambda: catalog.count() == 0)
    if taken_over:
        values = {"model_key": model, "dim": str(size)}
        if stored is None:
            values["created"] = now_iso()
        catalog.set_meta(values)
    return model, size
