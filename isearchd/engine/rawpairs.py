"""A camera's RAW+JPEG pair is one photo: searches show it once, as the JPEG (or HEIC).

Cameras in RAW+JPEG mode (and phones saving DNG beside HEIC) write ``IMG_0001.CR2`` and
``IMG_0001.JPG`` side by side. Both are indexed (either may be deleted later, and each alone is
a result), and they embed almost alike, so without this a search would list every such photo
twice. Pairs are found among the results, not stored:

1. a RAW hit and a JPEG/HEIC hit (``DEVELOPED_EXTENSIONS``) with the same folder and the same
   stem (the name without its extension) are one photo: the JPEG stays, at its own rank and
   similarity, with ``raw`` set to the RAW's path; the RAW hit leaves the list;
2. a JPEG/HEIC hit whose RAW did not come up gets ``raw`` when a RAW file of the same stem, in
   lower- or upper-case extension, is beside it on disk *and* indexed in the database (two
   ``stat``s per RAW extension, then one catalog look-up for a file that exists);
3. a RAW hit whose JPEG did not come up (filtered out, or ranked far below) stays, as itself.

So that pairs do not leave a search short, ``top_folded`` asks the store for ``LOOKAHEAD`` more
results than wanted, and twice as many again while pairs still leave it short. Images another
machine indexed (``host`` set) are paired among the results only: their files are not here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from isearchd.files.formats import DEVELOPED_EXTENSIONS, RAW_EXTENSIONS
from isearchd.store import ImageDatabase, SearchHit

# Results asked for beyond ``num``, so that folding pairs rarely needs a second search. A pair
# removes one result, so 16 covers 16 pairs among the top results; the store's search costs
# about the same for k and k + 16.
LOOKAHEAD = 16

_RAW_SUFFIXES = tuple(sorted(RAW_EXTENSIONS))


def top_folded(
    fetch: Callable[[int], list[SearchHit]],
    num: int,
    raw_beside: Callable[[str], str | None],
    once: Callable[[list[SearchHit]], list[SearchHit]] = list,
) -> list[SearchHit]:
    """The first ``num`` results of ``fetch(k)`` (the store's top ``k``) with RAW+JPEG pairs
    folded into one (``fold``), after ``once`` (each video once: ``videohits.once_per_video``)."""
    k = num + LOOKAHEAD
    while True:
        pool = fetch(k)
        hits = fold(once(pool), raw_beside)
        if len(hits) >= num or len(pool) < k:
            return hits[:num]
        k *= 2


def fold(hits: list[SearchHit], raw_beside: Callable[[str], str | None]) -> list[SearchHit]:
    """``hits`` (best first) with each RAW that has its JPEG/HEIC among them folded into it, and
    ``raw`` set on the JPEG/HEIC hits that have a RAW (``raw_beside``: the indexed RAW beside a
    file of this machine, or None)."""
    developed: dict[tuple[str | None, str, str], int] = {}
    for i, hit in enumerate(hits):
        key, suffix = _key(hit)
        if suffix in DEVELOPED_EXTENSIONS:
            developed.setdefault(key, i)
    raw_of: dict[int, str] = {}
    folded: set[int] = set()
    for i, hit in enumerate(hits):
        key, suffix = _key(hit)
        if suffix in RAW_EXTENSIONS and key in developed:
            raw_of.setdefault(developed[key], hit.path)
            folded.add(i)
    out: list[SearchHit] = []
    for i, hit in enumerate(hits):
        if i in folded:
            continue
        raw = raw_of.get(i)
        if raw is None and hit.host is None and developed.get(_key(hit)[0]) == i:
            raw = raw_beside(hit.path)
        out.append(replace(hit, raw=raw) if raw is not None else hit)
    return out


def raw_beside_in(db: ImageDatabase) -> Callable[[str], str | None]:
    """``raw_beside`` for ``fold``: the RAW file of the same stem beside ``path`` that is on disk
    and indexed in ``db``."""

    def raw_beside(path: str) -> str | None:
        stem = os.path.splitext(path)[0]  # noqa: PTH122 (keeps the folder: a path, not a name)
        for suffix in _RAW_SUFFIXES:
            for candidate in (stem + suffix, stem + suffix.upper()):
                if _is_file(candidate) and any(r.path == candidate for r in db.records(candidate)):
                    return candidate
        return None

    return raw_beside


def _key(hit: SearchHit) -> tuple[tuple[str | None, str, str], str]:
    """(machine, folder, stem) of a hit's file, and its extension in lower case."""
    p = Path(hit.path)
    return (hit.host, str(p.parent), p.stem), p.suffix.lower()


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


__all__ = ["LOOKAHEAD", "fold", "raw_beside_in", "top_folded"]
