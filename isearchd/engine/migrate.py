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
from typing import TYPE_CHECKING

from isearchd.errors import Busy

if TYPE_CHECKING:
    from isearchd.store import ImageDatabase

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
    """Copy ``src``'s images and watched folders into ``dst``; returns the images copied."""
    total = src.count()
    copied = 0
    for records in src.export(batch):
        if cancel is not None and cancel.is_set():
            raise Busy(
                f"the daemon is shutting down; the copy of '{src.name}' stopped after {copied} images; "
                "run the migrate again to finish"
            )
        copied += dst.add(records)
        if progress is not None:
            progress(copied, max(total, copied))
    for folder in src.folders():
        dst.add_folder(folder.path, folder.exclude)
    return copied
