"""What a database hands out and takes in, whichever store holds it (embedded or Qdrant)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from isearchd.errors import InvalidRequest, ModelMismatch, StoreError
from isearchd.store.looks import Look
from isearchd.store.metadata import PhotoInfo
from isearchd.store.videos import VIDEO_TYPE, is_frame_label


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
    raw: str | None = None  # the camera RAW file paired with this JPEG/HEIC (engine.rawpairs)


@dataclass(frozen=True)
class Move:
    """A file moved or renamed on disk: from ``old`` to ``new`` (paths on this machine), with its
    size and modification time there when known (None: unchanged)."""

    old: str
    new: str
    size: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class PhotoFile:
    """An image's file on this machine, for a background pass that reads it again."""

    id: int
    label: str
    path: str
    mtime_ns: int


@dataclass(frozen=True)
class Detail:
    """What duplicate finding and listings need of an image: names, what the photo says, file
    size, look, and the machine whose path it is (None: this one)."""

    label: str
    path: str
    info: PhotoInfo
    size: int
    look: Look | None
    host: str | None = None


@dataclass(frozen=True)
class WatchedFolder:
    """A folder a database keeps in sync, with the globs it leaves out."""

    path: str
    exclude: tuple[str, ...] = ()


def latest_by_label(records: list[ImageRecord]) -> list[ImageRecord]:
    """The batch an add writes: one record per label (the same label twice: the last wins); an
    empty label is refused."""
    batch = list({r.label: r for r in records}.values())
    if any(not r.label for r in batch):
        raise InvalidRequest("an image label cannot be empty")
    return batch


def owns_frames(label: str, info: PhotoInfo | None) -> bool:
    """Whether the row ``label`` written with ``info`` is a video's own row, whose add replaces
    the frames stored before (not a photo, a further frame, or a row whose metadata is not given)."""
    return info is not None and info.type == VIDEO_TYPE and not is_frame_label(label)


def check_search(k: int, min_similarity: float) -> None:
    """A search's own arguments, as every store refuses them."""
    if k < 1:
        raise InvalidRequest(f"the number of results must be at least 1, got {k}")
    if not 0.0 <= min_similarity <= 100.0:
        raise InvalidRequest(f"the minimum similarity must be between 0 and 100, got {min_similarity}")


def similarity(cosine: float) -> float:
    """A cosine as the similarity every store reports: percent, one decimal (as the original)."""
    return round(min(1.0, max(-1.0, cosine)) * 100.0, 1)


INT8_SUFFIX = "+int8"  # how isearchd.models names the int8 variant of a model key
CUSTOM_PREFIX = "custom:"  # how isearchd.models names a custom checkpoint


def restart_hint(stored_model: str) -> str:
    """How to start the daemon with the model (and precision) a database was built with."""
    base = stored_model.removesuffix(INT8_SUFFIX)
    precision = " -p int8" if stored_model.endswith(INT8_SUFFIX) else ""
    if base.startswith(CUSTOM_PREFIX):
        return f"start the service with the checkpoint {base.removeprefix(CUSTOM_PREFIX)}{precision}"
    return f"start the service with `isearch service start -m {base}{precision}`"


def model_mismatch(
    name: str, stored_model: str, stored_dim: int | str, model_key: str, dim: int | None
) -> ModelMismatch:
    """The error for a database built by another model than the one in use (either store)."""
    return ModelMismatch(
        f"database '{name}' was built with model {stored_model} (dim {stored_dim}), but the "
        f"model in use is {model_key}{'' if dim is None else f' (dim {dim})'}; embedding spaces "
        f"cannot be mixed. Re-index it with `isearch db --clear -d {name}` and add the images "
        f"again, use another database (-d NAME), or {restart_hint(stored_model)}"
    )


def corrupt_catalog(path: Path, exc: Exception) -> StoreError:
    """The error for a catalog file that cannot be opened: it is never reset, the user decides."""
    return StoreError(
        f"the catalog {path} cannot be opened ({exc}). It was left untouched: if it is damaged, "
        "restore it from a backup, or move it away to start this database over (its images must "
        "then be added again)"
    )
