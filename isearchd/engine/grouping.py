"""Grouping faces into people: which person each new face joins, and which faces form new people.

Pure numpy, no I/O: the store reads the input and applies the plan (``Database.grouping_input``
and ``apply_grouping``, ``isearchd.store.people_db``), checking every move again against what
changed meanwhile:

    got = db.grouping_input()
    plan = plan_grouping(got.unassigned, got.people, got.rejects)
    db.apply_grouping(plan.joins, plan.new_people, min_faces=MIN_FACES)

Descriptors are dlib's 128-d face descriptors, compared by Euclidean distance (two faces of one
person are typically closer than 0.5). The plan, for the faces no person holds yet:

1. Joins. A face joins the person whose nearest face is closest, if that distance is at most
   ``max_distance`` and the user has not said that this face is not that person (a reject). Joins
   are decided against the persons as given: faces joining in one plan do not attract others in
   it, so no face's fate depends on the order the faces are listed in.
2. New people. The faces left are clustered by average linkage (the distance of two groups is the
   mean distance of their faces) up to ``max_distance``; each cluster of at least ``min_faces``
   faces becomes a new person. Smaller clusters stay unassigned: they may form a person later,
   when more photos of them arrive.

Determinism (the plan depends only on the input *sets*, never on their order; a test permutes
them). Every input is sorted by face id (and persons by id) before any arithmetic, so the same
set gives the same floating-point numbers. Ties (exact ties of the computed distances): a face
equally near two persons joins the lowest person id; pairs of groups are ordered by (distance,
lower id, higher id), a group's id being its smallest face id; new persons are listed by their
smallest face id, their faces ascending.

Size. Nothing is O(n²) in memory over all faces:

- Joins: distances in blocks of ``BLOCK`` faces by ``BLOCK`` person faces, reduced at once to
  the nearest face per person.
- Average linkage only ever merges groups that have a pair of faces within ``max_distance`` (a
  mean is never below its minimum), so it runs separately inside each connected component of the
  graph "within ``max_distance``", which is found first in ``BLOCK`` x ``BLOCK`` tiles (union-find
  over the tiles' edges; no edge list is kept). A component smaller than ``min_faces`` is left as
  it is.
- Inside a component of m faces, the nearest-neighbour chain algorithm: O(m²) time and one m x m
  float64 matrix. It makes the same merges as taking the pairs globally in (distance, lower id,
  higher id) order, because average linkage is reducible (a merged group is never nearer to a
  third than the nearer of its two parts); tests check it against that greedy rule (with exact
  ties: copies of faces, points on a grid) and against scipy. A group whose nearest other group
  is farther than ``max_distance`` is final.
- A component larger than ``COMPONENT_MAX`` faces (thousands of photos of one child, or a crowd
  of similar faces chained together) is cut in two at the median of its principal axis, each half
  clustered on its own (cut again while too large), and the two halves' clusters then merged by
  the same average linkage, starting from those clusters instead of single faces (their mean
  distances summed in tiles; at most ``COMPONENT_MAX`` of the largest take part, the rest stay as
  they are). A face that average linkage over the whole component would have put in another
  cluster can stay where its half put it, so the result is close to, not always equal to, full
  average linkage; one person's faces split by the cut come together again in the merge (a test
  cuts synthetic people's components twice: precision 1.0, recall >= 0.95).

Measured (``benchmarks/bench_grouping.py``; Intel Xeon, 2 cores, numpy 2.4 with OpenBLAS; peak is
what numpy allocated above the input): synthetic faces of 10 identities (Gaussian around random
centres; within one identity 0.31-0.47 apart, between 0.76-1.08), none held by a person yet:
5,000 faces in 0.47 s (42 MB), 20,000 in 2.8 s (99 MB: a 2,000-face component's float64 matrix
and the tiles); 5,000 new faces joining 10 persons that hold 20,000: 0.28 s (56 MB); one person
in 8,000 photos (a component cut in halves and merged again): 1.5 s (108 MB). Pairwise precision
and recall 1.0 in all four (the harder, overlapping cases are in tests/unit/test_grouping.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["COMPONENT_MAX", "MAX_DISTANCE", "MIN_FACES", "Plan", "plan_grouping"]

# dlib's own rule of thumb: two descriptors closer than 0.6 are the same person; 0.5 trades a
# little recall for fewer strangers merged (a wrong merge costs the user more than a split).
MAX_DISTANCE = 0.5
# A new person needs this many faces: two look-alike faces are too often two people.
MIN_FACES = 3
# Tile side for the blocked distance computations: a 2,000 x 2,000 float32 tile is 16 MB.
BLOCK = 2000
# Largest component clustered as one (its float64 matrix: 3,000² x 8 bytes = 72 MB).
COMPONENT_MAX = 3000

# The graph's radius is this much wider than the clustering's, so that float32 rounding can never
# drop a pair the float64 clustering would merge (a wider graph only makes components coarser).
_SLACK = 1e-4

FaceSet = tuple[np.ndarray, np.ndarray]  # (ids int64 (n,), descriptors float32 (n, d))


@dataclass(frozen=True)
class Plan:
    """What grouping proposes: ``joins`` face id -> person id; ``new_people``: the faces of each
    new person (ascending), the persons ordered by their smallest face id."""

    joins: dict[int, int]
    new_people: list[list[int]]


def plan_grouping(
    unassigned: FaceSet,
    people: Mapping[int, FaceSet],
    rejects: Mapping[int, Collection[int]] | None = None,
    *,
    max_distance: float = MAX_DISTANCE,
    min_faces: int = MIN_FACES,
) -> Plan:
    """The plan for the faces ``unassigned`` (ids, descriptors: faces no person holds and the
    user did not pin), given each person's faces (person id -> (face ids, descriptors)) and the
    rejects (face id -> person ids that face must not join). See the module docstring."""
    if max_distance <= 0 or min_faces < 1:
        raise ValueError("max_distance must be positive and min_faces at least 1")
    ids, vectors = _sorted(*unassigned)
    if len(ids) == 0:
        return Plan({}, [])
    joined = _joins(ids, vectors, people, rejects or {}, max_distance)
    left = np.array([i not in joined for i in ids.tolist()], dtype=bool)
    clusters = _cluster(ids[left], vectors[left], max_distance, min_faces)
    return Plan(joined, sorted((c for c in clusters if len(c) >= min_faces), key=lambda c: c[0]))


def _sorted(ids: np.ndarray | Sequence[int], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"{len(ids)} face ids but descriptors of shape {vectors.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("face ids must be unique")
    order = np.argsort(ids, kind="stable")
    return ids[order], np.ascontiguousarray(vectors[order])


def _sq_distances(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a2[:, None]
    d2 += b2[None, :]
    return np.maximum(d2, 0.0, out=d2)


# -- 1. joins --------------------------------------------------------------------------------------


def _joins(
    ids: np.ndarray,
    vectors: np.ndarray,
    people: Mapping[int, FaceSet],
    rejects: Mapping[int, Collection[int]],
    max_distance: float,
) -> dict[int, int]:
    person_ids = sorted(p for p, (f, _) in people.items() if len(f))
    if not person_ids:
        return {}
    held = [_sorted(*people[p]) for p in person_ids]
    matrix = np.concatenate([v for _, v in held])
    owner = np.repeat(np.arange(len(person_ids)), [len(f) for f, _ in held])  # column -> person index
    column_of = {p: k for k, p in enumerate(person_ids)}
    m2 = np.einsum("ij,ij->i", matrix, matrix)
    joins: dict[int, int] = {}
    for start in range(0, len(ids), BLOCK):
        rows = vectors[start : start + BLOCK]
        r2 = np.einsum("ij,ij->i", rows, rows)
        best = np.full((len(rows), len(person_ids)), np.inf, dtype=np.float32)
        for col in range(0, len(matrix), BLOCK):
            d2 = _sq_distances(rows, matrix[col : col + BLOCK], r2, m2[col : col + BLOCK])
            who = owner[col : col + BLOCK]
            starts = _starts(who)
            segment = np.minimum.reduceat(d2, starts, axis=1)
            best[:, who[starts]] = np.minimum(best[:, who[starts]], segment)
        for offset, face in enumerate(ids[start : start + BLOCK].tolist()):
            for person in rejects.get(face, ()):
                if person in column_of:
                    best[offset, column_of[person]] = np.inf
        nearest = np.argmin(best, axis=1)  # first of equals: the lowest person id
        near = best[np.arange(len(rows)), nearest] <= np.float32(max_distance) ** 2
        for offset in np.flatnonzero(near).tolist():
            joins[int(ids[start + offset])] = person_ids[int(nearest[offset])]
    return joins


# -- 2. new people -------------------------------------------------------------------------------


def _starts(labels: np.ndarray) -> np.ndarray:
    """Where each run of equal labels starts."""
    return np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])


def _cluster(ids: np.ndarray, vectors: np.ndarray, radius: float, min_faces: int) -> list[list[int]]:
    """Average-linkage clusters (lists of face ids, ascending) of at least ``min_faces`` faces."""
    out: list[list[int]] = []
    for part in _components(vectors, radius):
        if len(part) < min_faces:
            continue
        for members in _linkage(vectors, part, radius):
            if len(members) >= min_faces:
                out.append(sorted(int(i) for i in ids[members]))
    return out


def _components(vectors: np.ndarray, radius: float) -> list[np.ndarray]:
    """Connected components of the graph "within ``radius``", as ascending row indices, ordered
    by their first row."""
    n = len(vectors)
    if n == 0:
        return []
    parent = np.arange(n)
    v2 = np.einsum("ij,ij->i", vectors, vectors)
    limit = np.float32(radius * (1 + _SLACK)) ** 2
    for r in range(0, n, BLOCK):
        for c in range(r, n, BLOCK):
            tile = (slice(r, r + BLOCK), slice(c, c + BLOCK))
            adjacent = _sq_distances(vectors[tile[0]], vectors[tile[1]], v2[tile[0]], v2[tile[1]]) <= limit
            if adjacent.any():
                _union_tile(parent, adjacent, r, c)
    roots = _compress(parent)
    order = np.argsort(roots, kind="stable")
    return sorted(np.split(order, _starts(roots[order])[1:]), key=lambda part: int(part[0]))


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent
        parent[:] = up


def _union_tile(parent: np.ndarray, adjacent: np.ndarray, r: int, c: int) -> None:
    """Join the components of every pair marked in ``adjacent`` (rows from ``r``, columns from
    ``c``): each side's root is hooked to the smallest root across its edges until none differ."""
    rows = np.arange(r, r + adjacent.shape[0])
    cols = np.arange(c, c + adjacent.shape[1])
    big = len(parent)
    while True:
        _compress(parent)
        row_root, col_root = parent[rows], parent[cols]
        if not (adjacent & (row_root[:, None] != col_root[None, :])).any():
            return
        across_rows = np.where(adjacent, col_root[None, :], big).min(axis=1)
        across_cols = np.where(adjacent, row_root[:, None], big).min(axis=0)
        for roots, other in ((row_root, across_rows), (col_root, across_cols)):
            lower = other < roots
            np.minimum.at(parent, roots[lower], other[lower])


def _linkage(vectors: np.ndarray, part: np.ndarray, radius: float) -> list[np.ndarray]:
    """Average-linkage clusters of the rows ``part`` (ascending), as arrays of rows. Over
    ``COMPONENT_MAX`` rows: each half on its own, then the two halves' clusters merged."""
    if len(part) <= COMPONENT_MAX:
        return [np.sort(part[members]) for members in _average_linkage(vectors[part], radius)]
    groups = [group for half in _halves(vectors, part) for group in _linkage(vectors, half, radius)]
    return _remerge(vectors, groups, radius)


def _halves(vectors: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``part`` cut in two at the median of its principal axis (sign fixed, ties by row)."""
    x = vectors[part].astype(np.float64)
    x -= x.mean(axis=0)
    axis = np.linalg.eigh(x.T @ x)[1][:, -1]
    axis *= np.sign(axis[np.argmax(np.abs(axis))]) or 1.0
    order = np.lexsort((part, x @ axis))
    half = len(part) // 2
    return np.sort(part[order[:half]]), np.sort(part[order[half:]])


def _remerge(vectors: np.ndarray, groups: list[np.ndarray], radius: float) -> list[np.ndarray]:
    """Average linkage that starts from ``groups`` instead of single faces (the
    ``COMPONENT_MAX`` largest of them; the others stay as they are)."""
    by_size = sorted(range(len(groups)), key=lambda k: (-len(groups[k]), int(groups[k][0])))
    chosen = sorted((groups[k] for k in by_size[:COMPONENT_MAX]), key=lambda g: int(g[0]))
    sizes = np.array([len(g) for g in chosen], dtype=np.float64)
    dist = _group_sums(vectors, chosen) / np.outer(sizes, sizes)
    np.fill_diagonal(dist, np.inf)
    merged = _nn_chain(dist, sizes, radius)
    kept = [groups[k] for k in by_size[COMPONENT_MAX:]]
    return [np.sort(np.concatenate([chosen[k] for k in members])) for members in merged] + kept


def _group_sums(vectors: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """The sum of the distances between the faces of each two groups (K x K), in tiles."""
    rows = np.concatenate(groups)
    label = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    x = vectors[rows]
    x2 = np.einsum("ij,ij->i", x, x)
    sums = np.zeros((len(groups), len(groups)))
    for r in range(0, len(rows), BLOCK):
        for c in range(r, len(rows), BLOCK):
            a, b = slice(r, r + BLOCK), slice(c, c + BLOCK)
            d = np.sqrt(_sq_distances(x[a], x[b], x2[a], x2[b]).astype(np.float64))
            ra, cb = _starts(label[a]), _starts(label[b])
            part = np.add.reduceat(np.add.reduceat(d, ra, axis=0), cb, axis=1)
            sums[np.ix_(label[a][ra], label[b][cb])] += part
            if c != r:
                sums[np.ix_(label[b][cb], label[a][ra])] += part.T
    return sums


def _average_linkage(vectors: np.ndarray, radius: float) -> list[list[int]]:
    """Average-linkage clusters (row indices) of ``vectors`` cut at ``radius``."""
    v = vectors.astype(np.float64)
    v2 = np.einsum("ij,ij->i", v, v)
    dist = np.sqrt(_sq_distances(v, v, v2, v2))
    np.fill_diagonal(dist, np.inf)
    return _nn_chain(dist, np.ones(len(v)), radius)


def _nn_chain(dist: np.ndarray, size: np.ndarray, radius: float) -> list[list[int]]:
    """The nearest-neighbour chain over groups of ``size`` faces with mean distances ``dist``
    (overwritten); groups are known by their slot, slots in face-id order. A group's nearest other
    group is the lowest in (distance, slot), ``argmin``'s first of equals, so pairs compare by
    (distance, lower id, higher id) and the chain always ends at a reciprocal pair."""
    members: list[list[int]] = [[k] for k in range(len(size))]
    active = np.ones(len(size), dtype=bool)
    done: list[list[int]] = []
    chain: list[int] = []
    while True:
        if not chain:
            live = np.flatnonzero(active)
            if len(live) == 0:
                return done
            chain.append(int(live[0]))
        top = chain[-1]
        nearest = int(np.argmin(dist[top]))
        if dist[top, nearest] > radius:  # final (only ever the chain's first: pushes are <= radius)
            done.append(members[top])
            _retire(dist, active, top)
            chain.pop()
        elif len(chain) > 1 and nearest == chain[-2]:
            del chain[-2:]
            low, high = min(top, nearest), max(top, nearest)
            merged = (size[low] * dist[low] + size[high] * dist[high]) / (size[low] + size[high])
            dist[low, :] = merged
            dist[:, low] = merged
            dist[low, low] = np.inf
            size[low] += size[high]
            members[low] += members[high]
            _retire(dist, active, high)
        else:
            chain.append(nearest)


def _retire(dist: np.ndarray, active: np.ndarray, k: int) -> None:
    dist[k, :] = np.inf
    dist[:, k] = np.inf
    active[k] = False
