"""A search as people ask for one: a query made of parts, and filters on what may come back.

``SearchQuery.terms`` are the parts: the main query (text, an image, or an image already in the
database: ``like``) and any ``--plus``/``--minus`` parts, each with a weight; the query vector is
the normalised weighted sum of their embeddings (rclip's combined queries). ``filters`` say which
images may be returned (dates, folders, place, type): the results are the exact top ``num`` of
the images that pass. ``sort`` orders that top ``num`` by similarity (default) or by taken time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from isearchd.engine.videohits import once_per_video
from isearchd.errors import InvalidRequest
from isearchd.store import ImageDatabase, SearchHit
from isearchd.store.metadata import Filters
from isearchd.store.words_db import words_store

SORTS = ("similarity", "oldest", "newest")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


@dataclass(frozen=True)
class Term:
    """One part of a query: exactly one of ``text``, ``image`` (a daemon-side path or bytes) and
    ``like`` (the label of an image in the database), with its weight (negative: ``--minus``)."""

    weight: float = 1.0
    text: str | None = None
    image: str | bytes | None = None
    like: str | None = None
    name: str | None = None  # how an image part is named in errors


@dataclass(frozen=True)
class SearchQuery:
    terms: tuple[Term, ...]
    num: int = 10
    similarity: float = 0.0
    filters: Filters = field(default_factory=Filters)
    sort: str = "similarity"


def combine(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The normalised weighted sum of unit vectors (``InvalidRequest`` when it cancels out)."""
    total = np.zeros_like(np.asarray(vectors[0], dtype=np.float64))
    for vec, weight in zip(vectors, weights, strict=True):
        total += weight * np.asarray(vec, dtype=np.float64)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InvalidRequest("the parts of this query cancel each other out; change their weights")
    return (total / norm).astype(np.float32)


def date_bounds(after: str | None, before: str | None) -> tuple[str | None, str | None]:
    """``--after``/``--before`` (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, both inclusive) as
    wall-clock bounds: the first instant of ``after``, the first instant after ``before``."""
    lo = _start(after, "--after") if after else None
    hi = _end(before, "--before") if before else None
    if lo and hi and lo >= hi:
        raise InvalidRequest(f"--after {after} is not before --before {before}: no date can pass both")
    return lo, hi


def _parse(text: str, option: str) -> tuple[int, int | None, int | None]:
    m = _DATE.match(text.strip())
    if m is None:
        raise InvalidRequest(f"{option} takes a date as YYYY, YYYY-MM or YYYY-MM-DD, not {text!r}")
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        date(year, int(month or 1), int(day or 1))
    except ValueError:
        raise InvalidRequest(f"{option}: {text!r} is not a date") from None
    return year, int(month) if month else None, int(day) if day else None


def _start(text: str, option: str) -> str:
    year, month, day = _parse(text, option)
    return date(year, month or 1, day or 1).isoformat() + "T00:00:00"


def _end(text: str, option: str) -> str:
    year, month, day = _parse(text, option)
    if month is None:
        nxt = date(year + 1, 1, 1)
    elif day is None:
        nxt = date(year + (month == 12), month % 12 + 1, 1)
    else:
        nxt = date.fromordinal(date(year, month, day).toordinal() + 1)
    return nxt.isoformat() + "T00:00:00"


def listing(db: ImageDatabase, query: SearchQuery) -> list[SearchHit]:
    """A search without a query (``--person Ana`` alone): the images that pass the filters, newest
    first (``sort="oldest"``: oldest first), those without a date last, by id; the first ``num``.
    With words (``--words TEXT``) and the default sort: best text match first (bm25). There is
    nothing to be similar to: ``similarity`` is 0. A video comes once (its first moment listed)."""
    ids = db.matching(query.filters)
    found = db.details(ids)
    words = query.filters.words
    if words is not None and query.sort == "similarity":
        order = [i for i in words_store(db).rank_by_words(words, list(found)) if i in found]
    else:
        dated = sorted((d.info.taken_local, i) for i, d in found.items() if d.info.taken_local)
        if query.sort != "oldest":
            dated.reverse()
        undated = sorted((i for i, d in found.items() if not d.info.taken_local), reverse=True)
        order = [i for _, i in dated] + undated
    hits = (
        SearchHit(found[i].label, found[i].path, 0.0, found[i].info, found[i].size, i, found[i].host)
        for i in order
    )
    return once_per_video(hits)[: query.num]
