"""The one interface of a database and of the store that holds databases, whatever is behind it.

Two implementations: the embedded store (``isearchd.store.embedded``: SQLite catalog + hnswlib
index per database under the data home, ``database.Database``) and Qdrant
(``isearchd.store.qdrant_store``: one collection per database, on a server or in qdrant-client's
local mode). The engine, duplicates, backfills, the watcher and the web page use only what is
declared here, so they cannot tell which store is behind.

Ids: every image has an ``int`` id, stable while the image stays, below 2**53 (the web page's
JavaScript reads ids as numbers). Labels and paths are ``str`` with ``surrogateescape`` for
bytes that are not UTF-8 (``isearchd.files.names``). Paths are paths on the machine that indexed
the image: calls that take or return paths (``get``, ``records``, ``delete_*``, ``rename``,
``move_prefix``, ``count_below``, the backfills) concern this machine's images; searches,
``count``, ``count_files``, ``details``, ``record_by_id``, ``vectors_below(None)`` and
``neighbours`` see the whole database (in a store shared by several daemons, every machine's
images, ``host`` set on those of the others).

Rows and files: a video is several rows, one per indexed frame (``isearchd.store.videos``), and
the stores keep them together (a delete, a re-add or a move of the video takes its frames). What
users are told counts files, a video once: ``count_files``, ``count_below``, ``info().size``, and
what ``delete_labels``, ``delete_prefix``, ``rename`` and ``move_prefix`` return. ``count`` and
``add`` count rows, which is what the passes (``pending``) and copies (``export``) go through.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from isearchd.messages import DbInfo
from isearchd.store.looks import Look
from isearchd.store.metadata import Filters, PhotoInfo
from isearchd.store.records import Detail, ImageRecord, Move, PhotoFile, SearchHit, WatchedFolder


class ImageDatabase(Protocol):
    """One named database: images (catalog fields, photo metadata, looks, a unit vector each)
    and the folders it watches. Writes are acknowledged only once durable."""

    name: str

    @property
    def model_key(self) -> str: ...

    @property
    def dim(self) -> int: ...

    # -- writes (the engine's job queue is their one caller) -------------------------------------

    def add(self, records: list[ImageRecord]) -> int:
        """Write ``records`` by label; returns the rows written. A video's own row (with its
        frames in the same call) replaces the frames stored before that the call does not write."""
        ...

    def delete_labels(self, labels: Iterable[str]) -> int:
        """Delete these images (a video with its frames); returns how many files existed."""
        ...

    def delete_prefix(self, path_prefix: str) -> int:
        """Delete the image at ``path_prefix`` and every one below that folder; returns the files."""
        ...

    def rename(self, moves: list[Move]) -> int:
        """Files moved (a video with its frames); returns how many files moved."""
        ...

    def move_prefix(self, src: str, dst: str) -> int:
        """A folder moved: every image at or below ``src`` now lives below ``dst``; returns how many
        files moved."""
        ...

    def clear(self) -> None: ...

    def save_index(self) -> None: ...

    def close(self, *, save: bool = True) -> None: ...

    def add_folder(self, path: str, exclude: Iterable[str] = ()) -> None: ...

    def remove_folder(self, path: str) -> bool: ...

    def store_metadata(self, rows: Mapping[int, PhotoInfo | None]) -> None: ...

    def store_looks(self, rows: Mapping[int, Look | None]) -> None: ...

    def record_analysis(self, analysis: str, version: int, outcomes: Mapping[int, str | None]) -> None:
        """Version ``version`` of a background analysis has read these images: None, or why it
        failed (``isearchd.engine.analysis``)."""
        ...

    # -- reads -----------------------------------------------------------------------------------

    def folders(self) -> list[WatchedFolder]: ...

    def get(self, label: str) -> ImageRecord | None: ...

    def record_by_id(self, image_id: int) -> ImageRecord | None: ...

    def records(self, path_prefix: str | None = None) -> Iterator[ImageRecord]: ...

    def export(self, batch: int) -> Iterator[list[ImageRecord]]:
        """This machine's images with all they hold, in batches, a video's own row before its
        further frames (a copy adds them in this order: an add of a video's own row replaces the
        frames stored before it)."""
        ...

    def vector_for_hash(self, content_hash: str) -> np.ndarray | None: ...

    def indexed_paths(self, paths: Collection[str]) -> set[str]:
        """Which of ``paths`` (files of this machine) the database holds, in one look-up."""
        ...

    def count(self) -> int:
        """The rows: a photo one, a video one per indexed frame."""
        ...

    def count_files(self) -> int:
        """The files: photos and videos, a video once (``info().size``)."""
        ...

    def count_below(self, path_prefix: str) -> int:
        """This machine's files at or below the folder ``path_prefix``, a video once."""
        ...

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        min_similarity: float = 0.0,
        filters: Filters | None = None,
        *,
        details: bool = False,
    ) -> list[SearchHit]: ...

    def pending(self, analysis: str, version: int, limit: int) -> list[PhotoFile]:
        """Up to ``limit`` of this machine's images that version ``version`` of a background pass
        (``metadata``, ``looks``, or an analysis) has not read. The embedded store gives the newest
        first (the pictures an add just decoded may still be in memory); Qdrant in its own order."""
        ...

    def count_pending(self, analysis: str, version: int) -> int: ...

    def count_failed(self, analysis: str, version: int) -> int:
        """This machine's images that the pass could not read (their reasons are in the log)."""
        ...

    def vectors_below(self, path_prefix: str | None) -> tuple[np.ndarray, np.ndarray]: ...

    def neighbours(self, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None: ...

    def details(self, ids: Sequence[int]) -> dict[int, Detail]: ...

    def matching(self, filters: Filters) -> list[int]:
        """The ids of every image that passes ``filters``, ascending (a search without a query)."""
        ...

    def info(self) -> DbInfo: ...


class Store(Protocol):
    """Where a daemon's databases live. ``url``: how the user named it (None: embedded)."""

    url: str | None

    def open(self, name: str, *, model_key: str | None, dim: int | None, create: bool) -> ImageDatabase:
        """Open (or, when ``create`` and a model is given, create) database ``name``. An existing
        database built by another model raises ``ModelMismatch``; ``model_key`` None opens it
        whatever its model. A missing one raises ``NotFound`` naming the closest existing name."""
        ...

    def names(self) -> list[str]:
        """Names of the databases, sorted."""
        ...

    def watched_folders(self, name: str) -> list[WatchedFolder]:
        """The folders database ``name`` watches on this machine, read without opening it."""
        ...

    def close(self) -> None: ...
