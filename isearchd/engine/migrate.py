"""Copy a database between the embedded store and Qdrant (``isearch migrate``), both ways.

What is copied: every image of this machine (label, path, size, mtime, content hash, vector, the
photo metadata once read, the look once computed), in batches, each acknowledged by the target
before the next (``add`` is an upsert by label, so an interrupted copy is finished by running it
again), and the folders the database watches. The source is only read: it is left as it was.
Nothing is embedded again, so the target keeps the source's model key and dimension (a target
built by another model is a ``ModelMismatch``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from isearchd.errors import Busy, InvalidRequest
from isearchd.messages import Migrated
from isearchd.store.videos import files_among

if TYPE_CHECKING:
    from isearchd.store import ImageDatabase, Store

# Images per batch: one upsert of 256 points (~600 kB of JSON at dim 512) per acknowledgement.
COPY_BATCH = 256

CopyProgress = Callable[[int, int], None]  # (images copied, images in the source)


def copy_database(
    src: ImageDatabase,
    dst: ImageDatabase,
    progress: CopyProgress | None = None,
    cancel: threading.Event | None = None,
    batch: int = COPY_BATCH,
) -> int:
    """Copy ``src``'s images and watched folders into ``dst``; returns the images copied (files:
    a video once, its frames with it, as ``progress`` counts them)."""
    total = src.count_files()
    copied = 0
    for records in src.export(batch):
        if cancel is not None and cancel.is_set():
            raise Busy(
                f"the daemon is shutting down; the copy of '{src.name}' stopped after {copied} images; "
                "run the migrate again to finish"
            )
        dst.add(records)
        copied += files_among(r.label for r in records)
        if progress is not None:
            progress(copied, max(total, copied))
    for folder in src.folders():
        dst.add_folder(folder.path, folder.exclude)
    return copied


@dataclass(frozen=True)
class Handle:
    """An open database, and whether the migration opened it (and so closes it)."""

    db: ImageDatabase
    owned: bool


class Opener(Protocol):
    """How a migration opens a database of a store (the engine hands out its own open ones)."""

    def __call__(
        self, store: Store, name: str, *, model: str | None, dim: int | None, create: bool
    ) -> Handle: ...


@dataclass(frozen=True)
class Migration:
    """A copy from one store to another; ``other`` is closed after it (unless it is the daemon's)."""

    src: Store
    dst: Store
    other: Store
    other_is_mine: bool

    def run(
        self, name: str, open_db: Opener, progress: CopyProgress | None, cancel: threading.Event | None
    ) -> Migrated:
        """Copy database ``name`` (a job of the write queue: a write like any other)."""
        handles: list[Handle] = []
        try:
            src = open_db(self.src, name, model=None, dim=None, create=False)
            handles.append(src)
            dst = open_db(self.dst, name, model=src.db.model_key, dim=src.db.dim, create=True)
            handles.append(dst)
            copied = copy_database(src.db, dst.db, progress, cancel)
        finally:
            for handle in handles:
                if handle.owned:
                    handle.db.close()
            if not self.other_is_mine:
                self.other.close()
        return Migrated(
            db=name, source=self.src.url or "embedded", to=self.dst.url or "embedded", copied=copied
        )


def plan_migration(
    store: Store, home: Path, open_url: Callable[[str], Store], to: str | None, source: str | None
) -> Migration:
    """From the daemon's ``store`` (the embedded store under ``home`` when it is another one) to
    the store at URL ``to``, or from the one at ``source`` into it: exactly one of the two."""
    from isearchd.store import EmbeddedStore

    if (to is None) == (source is None):
        raise InvalidRequest("migrate needs exactly one of 'to' and 'from' (a store URL)")
    url = str(to or source)
    local: Store = store if store.url is None else EmbeddedStore(home)
    other = store if store.url == url else open_url(url)
    src, dst = (local, other) if to is not None else (other, local)
    return Migration(src, dst, other, other is store)
