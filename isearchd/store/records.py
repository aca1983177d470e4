"""What a database hands out and takes in, whichever store holds it (embedded or Qdrant)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from isearchd.store.looks import Look
from isearchd.store.metadata import PhotoInfo


@dataclass(frozen=True)
class ImageRecord:
    """One image as stored. ``label`` is the unique key (absolute path, or file name when the
    user asks for name labels). ``vector`` None on ``add`` means: reuse the vector stored for
    the same ``content_hash`` (an InvalidRequest when there is none). ``host``: the machine the
    image was indexed on, None for this one (a store shared by several daemons may hold others)."""

    label: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    vector: np.ndarray | None = None
    info: PhotoInfo | None = None  # what the photo says about itself (None: leave as stored)
    look: Look | None = None  # perceptual hash and colours (None: unknown, filled in later)
    host: str | None = None


@dataclass(frozen=True)
class SearchHit:
    label: str
    path: str
    similarity: float  # cosine x 100, rounded to 1 decimal (as the original prints it)
    info: PhotoInfo = field(default_factory=PhotoInfo)
    bytes: int | None = None
    id: int | None = None  # the image's id in its database (stable while the image stays)
    host: str | None = None  # the machine whose path ``path`` is; None: this one
