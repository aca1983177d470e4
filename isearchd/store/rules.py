"""The rules every store follows, whichever holds the data: each backend does I/O, these decide.

- ``settle_model``: which model a database opened with a given model gets (its own; the given one
  when it is empty, a new or cleared database being taken over; ``ModelMismatch`` otherwise);
- ``finished_hits``: the hits a search returns (similarity in percent, those below the minimum
  dropped, best first);
- ``moved_label`` / ``moved_below`` / ``folder_move``: where a moved file or folder's rows go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from isearchd.errors import InvalidRequest, StoreError
from isearchd.store.records import SearchHit, model_mismatch
from isearchd.store.videos import FRAME_MARK

log = logging.getLogger(__name__)

__all__ = ["finished_hits", "folder_move", "moved_below", "moved_label", "settle_model"]


def settle_model(
    name: str,
    stored: tuple[str, int] | None,
    wanted_model: str | None,
    wanted_dim: int | None,
    is_empty: Callable[[], bool],
) -> tuple[str, int, bool]:
    """``(model, dim, taken_over)`` for database ``name`` whose ``stored`` model is given (None:
    it records none yet), opened with ``wanted_model``/``wanted_dim`` (None: whatever it has).

    A database that records no model takes the wanted one; one built by another model is a
    ``ModelMismatch`` unless it holds no image (new or cleared), which the wanted model takes over
    (``taken_over`` True: the backend records the new model).
    """
    if stored is None:
        if wanted_model is None or wanted_dim is None:
            raise StoreError(f"database '{name}' records no model; open it with a model")
        return wanted_model, wanted_dim, True
    stored_model, stored_dim = stored
    other_dim = wanted_dim is not None and wanted_dim != stored_dim
    if wanted_model is None or (wanted_model == stored_model and not other_dim):
        return stored_model, stored_dim, False
    if not is_empty():
        raise model_mismatch(name, stored_model, stored_dim, wanted_model, wanted_dim)
    log.info("database '%s' is empty: its model %s -> %s", name, stored_model, wanted_model)
    return wanted_model, wanted_dim if wanted_dim is not None else stored_dim, True


def finished_hits(hits: Iterable[SearchHit], min_similarity: float) -> list[SearchHit]:
    """What a search returns of its candidates: those at ``min_similarity`` percent or more, best
    first (a stable sort: equal similarities keep the backend's order)."""
    return sorted((h for h in hits if h.similarity >= min_similarity), key=lambda h: -h.similarity)


def moved_label(label: str, path: str, new_path: str) -> str:
    """A moved file's new label: the new path when it was labelled by its path (a video's frame:
    the new path's frame); a name label stays."""
    if label == path:
        return new_path
    if label.startswith(path + FRAME_MARK):
        return new_path + label[len(path) :]
    return label


def folder_move(src: str, dst: str) -> tuple[str, str]:
    """A folder move's source and destination without their trailing slashes (neither empty)."""
    src, dst = src.rstrip("/"), dst.rstrip("/")
    if not src or not dst:
        raise InvalidRequest("a folder path cannot be empty")
    return src, dst


def moved_below(path: str, src: str, dst: str) -> str:
    """Where ``path``, at or below the folder ``src``, is after ``src`` moved to ``dst``."""
    return dst + path[len(src) :]
