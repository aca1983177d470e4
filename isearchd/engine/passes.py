"""Two catch-up passes as analyses (``isearchd.engine.analysis``): photo metadata and looks.

Both are read at add time already (the metadata with the file, the look from the decoded
picture); these passes fill them in for the images a database holds from before they existed:

- ``MetadataPass`` reads only the first ``HEAD_BYTES`` of each file (EXIF sits at the start of
  JPEG, HEIC and most TIFF files; a file whose header needs more is read whole): nothing is
  decoded or embedded again;
- ``LooksPass`` decodes each image once, at a small scale (``LOOK_MIN_SIDE``).

A file that is gone, or that was sent as bytes by a TCP client (there is nothing on this machine
to read), is recorded as unreadable: its dates and places stay unknown, and it is never grouped
as a duplicate; adding it again reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from isearchd.engine.analysis import Failed, Outcome, Photo
from isearchd.engine.looks import LOOK_MIN_SIDE, look_of
from isearchd.engine.photometa import PhotoMeta, photo_infos, read_metadata
from isearchd.files.images import open_regular
from isearchd.store import ImageDatabase, PhotoInfo
from isearchd.store.looks import Look

if TYPE_CHECKING:
    from isearchd.engine.places import Gazetteer

log = logging.getLogger(__name__)

__all__ = ["HEAD_BYTES", "LooksPass", "MetadataPass"]

# Bytes read per file; EXIF is in the first 64 kB of a JPEG by the standard.
HEAD_BYTES = 256 * 1024


@dataclass
class MetadataPass:
    """Photo metadata (date, place, size, type) of images indexed before the catalog kept it."""

    places: Gazetteer
    name: str = "metadata"
    version: int = 1
    priority: int = 2
    side: int = 0
    # rows per step: a step reads 200 file heads (~1 s on 2 cores)
    chunk: int = 200
    tables: tuple[str, ...] = ("images (date, place, size and type columns)",)
    reads_new: bool = False
    decodes_files: bool = False

    def applies(self, db: ImageDatabase) -> bool:
        return True

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        metas = [_read_head(p.file.path, p.file.mtime_ns) for p in photos]
        infos = photo_infos(metas, self.places)
        return {
            p.file.id: info if info is not None else Failed("cannot be read")
            for p, info in zip(photos, infos, strict=True)
        }

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        db.store_metadata({i: o if isinstance(o, PhotoInfo) else None for i, o in outcomes.items()})


@dataclass
class LooksPass:
    """Looks (perceptual hash, colours: what confirms duplicates) of images indexed before them."""

    name: str = "looks"
    version: int = 1
    priority: int = 2
    side: int = LOOK_MIN_SIDE
    # images per step: decoding 50 photos at a small scale takes ~1 s on 2 cores
    chunk: int = 50
    tables: tuple[str, ...] = field(default=("images (phash and colours columns)",))
    reads_new: bool = False
    decodes_files: bool = False

    def applies(self, db: ImageDatabase) -> bool:
        return True

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        return {p.file.id: look_of(p.picture) for p in photos if p.picture is not None}

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        db.store_looks({i: o if isinstance(o, Look) else None for i, o in outcomes.items()})


def _read_head(path: str, mtime_ns: int) -> PhotoMeta | None:
    """The metadata of the file at ``path`` from its first bytes; None when it cannot be read."""
    try:
        fh, _ = open_regular(path)  # a FIFO never blocks (NotRegularFile is an OSError)
        with fh:
            data = fh.read(HEAD_BYTES)
            meta = read_metadata(data, mtime_ns, path)
            if meta.width is None and len(data) == HEAD_BYTES:  # a header longer than the head
                fh.seek(0)
                meta = read_metadata(fh.read(), mtime_ns, path)
    except OSError:
        return None
    return meta
