"""A camera's RAW+JPEG pair is one photo: searches show it once, as the JPEG (or HEIC).

Cameras in RAW+JPEG mode (and phones saving DNG beside HEIC) write ``IMG_0001.CR2`` and
``IMG_0001.JPG`` side by side. Both are indexed (either may be deleted later, and each alone is
a result), and they embed almost alike, so without this a search would list every such photo
twice. Pairs are found among the results, not stored:

1. a RAW hit and a JPEG/HEIC hit (``DEVELOPED_EXTENSIONS``) with the same folder and the same
   stem (the name without its extension) are one photo: the JPEG stays, at its own rank and
   similarity, with ``raw`` set to the RAW's path; the RAW hit leaves the list;
2. a JPEG/HEIC hit of the results whose RAW did not come up gets ``raw`` when a RAW file of the
   same stem, in lower- or upper-case extension, is indexed in the database *and* still on disk:
   one catalog query for all the results' candidate names together, then a ``stat`` only for
   the names the catalog holds (a ``stat`` per candidate, 24 per result, made every search slow
   while an add kept the interpreter busy: each gives the interpreter lock up and waits for it);
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
    raws_beside: Callable[[list[str]], dict[str, str]],
    once: Callable[[list[SearchHit]], list[SearchHit]] = list,
) -> list[SearchHit]:
    """The first ``num`` results of ``fetch(k)`` (the store's top ``k``) with RAW+JPEG pairs
    folded into one (``fold``), after ``once`` (each video once: ``videohits.once_per_video``),
    and ``raw`` set on the results whose RAW is beside them (``with_raws``)."""
    k = num + LOOKAHEAD
    while True:
        pool = fetch(k)
        hits = fold(once(pool))
        if len(hits) >= num or len(pool) < k:
            return with_raws(hits[:num], raws_beside)
        k *= 2


def fold(hits: list[SearchHit]) -> list[SearchHit]:
    """``hits`` (best first) with each RAW that has its JPEG/HEIC among them folded into it: the
    first such JPEG/HEIC gets the RAW's path as ``raw``."""
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
    return [
        replace(hit, raw=raw_of[i]) if i in raw_of else hit for i, hit in enumerate(hits) if i not in folded
    ]


def with_raws(hits: list[SearchHit], raws_beside: Callable[[list[str]], dict[str, str]]) -> list[SearchHit]:
    """``hits`` with ``raw`` set on this machine's JPEG/HEIC hits that have none yet and whose RAW
    ``raws_beside`` finds (asked once, for all of them; the first hit of a stem only)."""
    asking: dict[str, int] = {}
    seen: set[tuple[str | None, str, str]] = set()
    for i, hit in enumerate(hits):
        key, suffix = _key(hit)
        if suffix not in DEVELOPED_EXTENSIONS or key in seen:
            continue
        seen.add(key)
        if hit.raw is None and hit.host is None:
            asking[hit.path] = i
    found = raws_beside(list(asking)) if asking else {}
    return [replace(hit, raw=found[hit.path]) if hit.path in found and i == asking.get(hit.path) else hit
            for i, hit in enumerate(hits)]  # fmt: skip


def raws_beside_in(db: ImageDatabase) -> Callable[[list[str]], dict[str, str]]:
    """``raws_beside`` for ``with_raws``: for each path, the RAW file of the same stem beside it
    that is indexed in ``db`` (one look-up for all) and on disk."""

    def raws_beside(paths: list[str]) -> dict[str, str]:
        candidates = {path: _raw_names(path) for path in paths}
        indexed = db.indexed_paths([name for names in candidates.values() for name in names])
        found: dict[str, str] = {}
        for path, names in candidates.items():
            raw = next((n for n in names if n in indexed and _is_file(n)), None)
            if raw is not None:
                found[path] = raw
        return found

    return raws_beside


def _raw_names(path: str) -> list[str]:
    """The names a RAW file beside ``path`` would have: its stem with each RAW extension, in
    lower and upper case."""
    stem = os.path.splitext(path)[0]  # noqa: PTH122 (keeps the folder: a path, not a name)
    return [stem + s for suffix in _RAW_SUFFIXES for s in (suffix, suffix.upper())]


def _key(hit: SearchHit) -> tuple[tuple[str | None, str, str], str]:
    """(machine, folder, stem) of a hit's file, and its extension in lower case."""
    p = Path(hit.path)
    return (hit.host, str(p.parent), p.stem), p.suffix.lower()


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


__all__ = ["LOOKAHEAD", "fold", "raws_beside_in", "top_folded", "with_raws"]
