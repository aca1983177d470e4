"""Groups of near-duplicate images: candidates from the model, confirmed without it.

1. Candidates: each image's ``DupRules.neighbours`` nearest images by the model's vectors (exact
   cosine, in blocks of ``BLOCK_ROWS``) whose similarity is at least ``min_similarity``. This is
   the only part that rests on the model: it decides which pairs are looked at, never that a
   pair is a copy.
2. Confirmation, by what the pixels say (``isearchd.engine.looks``): perceptual hashes within
   ``max_hamming`` bits (resizes, re-encodes, format changes, small crops and brightness changes
   stay within it; another picture differs in about half of the 64 bits), colour signatures
   within ``max_colour`` (pHash is grey-level: the same shape in another colour has the same
   hash) and aspect ratios within ``max_aspect``. An image without a look yet (the background
   has not hashed it) is never confirmed.
3. Groups are the transitive closures of confirmed pairs (union-find). Each proposes the image to
   keep: the most pixels, then the largest file at equal pixels (an original rather than a
   re-encode), then the oldest time taken, then the first label; ``reason`` says which decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from isearchd.errors import InvalidRequest

if TYPE_CHECKING:
    from isearchd.store import Database, PhotoInfo
    from isearchd.store.looks import Look

# Rows of the similarity matrix computed at once: BLOCK_ROWS x n float32, 100 MB at 100k images.
BLOCK_ROWS = 256


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


@dataclass(frozen=True)
class DupImage:
    label: str
    path: str
    similarity: float  # to the kept image, percent (the kept image: 100.0)
    width: int | None
    height: int | None
    bytes: int
    taken: str | None


@dataclass(frozen=True)
class DupGroup:
    images: list[DupImage]  # the one to keep first
    reason: str

    @property
    def keep(self) -> DupImage:
        return self.images[0]


def check_rules(rules: DupRules) -> None:
    if not 0 <= rules.min_similarity <= 100:
        raise InvalidRequest(
            f"the minimum similarity is a percentage between 0 and 100, not {rules.min_similarity}"
        )


def find_groups(db: Database, rules: DupRules, path_prefix: str | None = None) -> list[DupGroup]:
    """The duplicate groups of ``db`` (or of its images below ``path_prefix``), largest first."""
    check_rules(rules)
    ids, matrix = db.vectors_below(path_prefix)
    pairs = candidate_pairs(matrix, rules.neighbours, rules.min_similarity / 100.0)
    if not pairs:
        return []
    rows = sorted({i for pair in pairs for i in pair})
    details = db.details([int(ids[r]) for r in rows])
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        da, db_ = details.get(int(ids[a])), details.get(int(ids[b]))
        if da is None or db_ is None:
            continue
        if confirmed(da[2], da[4], db_[2], db_[4], rules):
            parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for r in rows:
        members.setdefault(root(r), []).append(r)
    groups = []
    for rs in members.values():
        if len(rs) < 2:
            continue
        ranked = sorted(rs, key=lambda r: _keep_key(details[int(ids[r])]))
        keep = ranked[0]
        images = []
        for r in ranked:
            label, path, info, size, _ = details[int(ids[r])]
            cos = float(np.dot(matrix[keep], matrix[r]))
            sim = round(min(100.0, max(0.0, cos * 100.0)), 1)
            images.append(DupImage(label, path, sim, info.width, info.height, size, info.taken))
        groups.append(DupGroup(images, _reason(details[int(ids[keep])], details[int(ids[ranked[1]])])))
    groups.sort(key=lambda g: (-len(g.images), g.keep.label))
    return groups


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


def confirmed(ia: PhotoInfo, la: Look | None, ib: PhotoInfo, lb: Look | None, rules: DupRules) -> bool:
    """Whether two images' pixels agree that one is a copy of the other."""
    if la is None or lb is None:
        return False
    if (la.phash ^ lb.phash).bit_count() > rules.max_hamming:
        return False
    if colour_distance(la.colours, lb.colours) > rules.max_colour:
        return False
    if ia.width and ia.height and ib.width and ib.height:
        ra, rb = ia.width / ia.height, ib.width / ib.height
        if abs(ra - rb) / max(ra, rb) > rules.max_aspect:
            return False
    return True


def colour_distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two colour signatures, each less its own overall mean."""
    x = np.frombuffer(a, dtype=np.uint8).astype(np.float64)
    y = np.frombuffer(b, dtype=np.uint8).astype(np.float64)
    return float(np.mean(np.abs((x - x.mean()) - (y - y.mean()))))


_Detail = tuple[str, str, "PhotoInfo", int, "Look | None"]


def _pixels(d: _Detail) -> int:
    return (d[2].width or 0) * (d[2].height or 0)


def _keep_key(d: _Detail) -> tuple[int, int, str, str]:
    return (-_pixels(d), -d[3], d[2].taken or "\uffff", d[0])


def _reason(keep: _Detail, runner_up: _Detail) -> str:
    """Why ``keep`` was ranked before the next best image of its group."""
    if _pixels(keep) > _pixels(runner_up):
        return f"the most pixels ({keep[2].width}x{keep[2].height})"
    if keep[3] > runner_up[3]:
        return f"the most pixels; the largest file at that size ({keep[3]} bytes: the least re-encoded)"
    if (keep[2].taken or "\uffff") < (runner_up[2].taken or "\uffff"):
        return f"the same pixels and bytes as others; taken first ({keep[2].taken})"
    return "the same pixels, bytes and date as others; first by name"
