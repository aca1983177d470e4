"""Groups of near-duplicate images: candidates from the model, confirmed without it.

1. Candidates: each image's ``DupRules.neighbours`` nearest images by the model's vectors whose
   similarity is at least ``min_similarity``: exact cosine in blocks of ``BLOCK_ROWS`` up to
   ``EXACT_MAX`` images, above that one batched search of the database's vector index (graph,
   approximate: it can miss a copy, rarely; ``benchmarks/bench_dups.py`` measures it). This is the
   only part that rests on the model: it decides which pairs are looked at, never that a pair
   is a copy.
2. Confirmation, by what the pixels say (``isearchd.engine.looks``): perceptual hashes within
   ``max_hamming`` bits (resizes, re-encodes, format changes, small crops and brightness changes
   stay within it; another picture differs in about half of the 64 bits), colour signatures
   within ``max_colour`` (pHash is grey-level: the same shape in another colour has the same
   hash) and aspect ratios within ``max_aspect``. An image without a look yet (the background
   has not hashed it) is never confirmed. All pairs are checked at once (``confirmed_pairs``).
3. Groups are the transitive closures of confirmed pairs (union-find). Each proposes the image to
   keep: the most pixels, then the largest file at equal pixels (an original rather than a
   re-encode), then the oldest time taken, then the first label; ``reason`` says which decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from isearchd.errors import InvalidRequest
from isearchd.messages import DupGroup, DupImage
from isearchd.store.looks import COLOUR_GRID
from isearchd.store.videos import VIDEO_TYPE

if TYPE_CHECKING:
    from isearchd.store import Detail, ImageDatabase

# Rows of the similarity matrix computed at once: BLOCK_ROWS x n float32, 10 MB at EXACT_MAX images.
BLOCK_ROWS = 256
# Up to this many images the candidates are exact (every image against every other, O(n^2));
# above, one batched search of the vector index finds them. On 2 loaded cores the exact scan took
# 1.1 s at 5k and 3.5 s at 10k (~6 minutes at 100k by extrapolation); the whole grouping with
# the graph 1.7 s at 10k and 21-33 s at 100k (benchmarks/bench_dups.py): they cross near 5k.
EXACT_MAX = 5_000
COLOUR_BYTES = COLOUR_GRID * COLOUR_GRID * 3


@dataclass(frozen=True)
class DupRules:
    """What makes two images duplicates. Defaults chosen on the planted copies of
    ``tests/integration/test_dups.py`` (real photographs), see the README's "Finding duplicates"."""

    min_similarity: float = 90.0  # percent: model candidates
    neighbours: int = 30  # candidates per image: at 10, the tiny test model missed the PNG copies
    # of one photo (recall 0.86); at 30 it finds them all (test_dups). A candidate costs ~2 µs.
    max_hamming: int = 12  # of 64 pHash bits
    max_colour: float = 12.0  # mean absolute difference of the 4x4 RGB means, 0-255, after
    # removing each picture's overall brightness
    max_aspect: float = 0.04  # relative difference of width/height


def check_rules(rules: DupRules) -> None:
    if not 0 <= rules.min_similarity <= 100:
        raise InvalidRequest(
            f"the minimum similarity is a percentage between 0 and 100, not {rules.min_similarity}"
        )


def _photo(detail: Detail | None) -> Detail | None:
    """A photo's details; None for a video's frame: videos are never duplicates (their frames
    would pair with their own neighbouring moments, and a video is not a copy of a photo)."""
    return None if detail is None or detail.info.type == VIDEO_TYPE else detail


def find_groups(db: ImageDatabase, rules: DupRules, path_prefix: str | None = None) -> list[DupGroup]:
    """The duplicate groups of ``db`` (or of its images below ``path_prefix``), largest first."""
    check_rules(rules)
    ids, matrix = db.vectors_below(path_prefix)
    min_cos = rules.min_similarity / 100.0
    pairs = None
    if len(ids) > EXACT_MAX:
        pairs = graph_pairs(db, ids, rules.neighbours, min_cos)
    if pairs is None:
        pairs = np.asarray(candidate_pairs(matrix, rules.neighbours, min_cos), dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return []
    rows = np.unique(pairs)
    details = db.details([int(ids[r]) for r in rows])
    photos = [_photo(details.get(int(ids[r]))) for r in rows]
    ok = confirmed_pairs(photos, np.searchsorted(rows, pairs), rules)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs[ok].tolist():
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for r in rows.tolist():
        members.setdefault(root(r), []).append(r)
    groups = []
    for rs in members.values():
        if len(rs) < 2:
            continue
        ranked = sorted(rs, key=lambda r: _keep_key(details[int(ids[r])]))
        keep = ranked[0]
        images = []
        for r in ranked:
            d = details[int(ids[r])]
            cos = float(np.dot(matrix[keep], matrix[r]))
            sim = round(min(100.0, max(0.0, cos * 100.0)), 1)
            images.append(
                DupImage(label=d.label, path=d.path, similarity=sim, width=d.info.width, height=d.info.height,
                         bytes=d.size, taken=d.info.taken, id=int(ids[r]))
            )  # fmt: skip
        reason = _reason(details[int(ids[keep])], details[int(ids[ranked[1]])])
        groups.append(DupGroup(keep=images[0].label, reason=reason, images=images))
    groups.sort(key=lambda g: (-len(g.images), g.keep))
    return groups


def graph_pairs(db: ImageDatabase, ids: np.ndarray, k: int, min_cos: float) -> np.ndarray | None:
    """As ``candidate_pairs`` (an ``(m, 2)`` array of rows), from the database's vector index:
    each image's ``k`` nearest by graph search (approximate), those outside ``ids`` left out.
    None when the index cannot answer (the caller scans exactly)."""
    found = db.neighbours(ids, k + 1)  # itself is usually the first
    if found is None:
        return None
    labels, cosines = found
    order = np.argsort(ids)
    pos = np.searchsorted(ids, labels, sorter=order).clip(0, len(ids) - 1)
    rows = order[pos]
    keep = (ids[rows] == labels) & (cosines >= min_cos)
    a = np.repeat(np.arange(len(ids)), labels.shape[1])[keep.ravel()]
    b = rows.ravel()[keep.ravel()]
    a, b = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(np.stack([a, b], axis=1)[a != b], axis=0)
    return pairs.astype(np.int64)


def candidate_pairs(matrix: np.ndarray, k: int, min_cos: float) -> list[tuple[int, int]]:
    """Row pairs ``(a, b)``, ``a < b``, where one is among the other's ``k`` nearest rows with
    cosine >= ``min_cos`` (rows are unit vectors)."""
    n = len(matrix)
    k = min(k, n - 1)
    pairs: set[tuple[int, int]] = set()
    if k < 1:
        return []
    for start in range(0, n, BLOCK_ROWS):
        scores = matrix[start : start + BLOCK_ROWS] @ matrix.T
        for i, row in enumerate(scores):
            row[start + i] = -np.inf  # not its own neighbour
            top = np.argpartition(-row, k - 1)[:k]
            for j in top[row[top] >= min_cos]:
                a, b = start + i, int(j)
                pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def confirmed_pairs(details: list[Detail | None], pairs: np.ndarray, rules: DupRules) -> np.ndarray:
    """Which ``pairs`` (rows of ``details``) the pixels confirm as copies: a boolean mask. Hashes
    within ``max_hamming`` bits, colour signatures (each less its own mean) within ``max_colour``,
    aspect ratios within ``max_aspect`` (unless a size is unknown); no look: never confirmed."""
    n = len(details)
    known = np.zeros(n, dtype=bool)
    phash = np.zeros(n, dtype=np.uint64)
    colours = np.zeros((n, COLOUR_BYTES), dtype=np.float64)
    aspect = np.full(n, np.nan)
    for i, d in enumerate(details):
        if d is None or d.look is None:
            continue
        known[i] = True
        phash[i] = d.look.phash
        colours[i] = np.frombuffer(d.look.colours, dtype=np.uint8)
        if d.info.width and d.info.height:
            aspect[i] = d.info.width / d.info.height
    colours -= colours.mean(axis=1, keepdims=True)
    a, b = pairs[:, 0], pairs[:, 1]
    ok = known[a] & known[b]
    ok &= np.bitwise_count(phash[a] ^ phash[b]) <= rules.max_hamming
    ok &= np.abs(colours[a] - colours[b]).mean(axis=1) <= rules.max_colour
    ra, rb = aspect[a], aspect[b]
    with np.errstate(invalid="ignore"):
        off = np.abs(ra - rb) / np.maximum(ra, rb) > rules.max_aspect  # NaN (no size): not off
    return ok & ~off


def _pixels(d: Detail) -> int:
    return (d.info.width or 0) * (d.info.height or 0)


def _keep_key(d: Detail) -> tuple[int, int, str, str]:
    return (-_pixels(d), -d.size, d.info.taken or "\uffff", d.label)


def _reason(keep: Detail, runner_up: Detail) -> str:
    """Why ``keep`` was ranked before the next best image of its group."""
    if _pixels(keep) > _pixels(runner_up):
        return f"the most pixels ({keep.info.width}x{keep.info.height})"
    if keep.size > runner_up.size:
        return f"the most pixels; the largest file at that size ({keep.size} bytes: the least re-encoded)"
    if (keep.info.taken or "\uffff") < (runner_up.info.taken or "\uffff"):
        return f"the same pixels and bytes as others; taken first ({keep.info.taken})"
    return "the same pixels, bytes and date as others; first by name"
