"""Grouping faces into people (``isearchd.engine.grouping``): identities recovered, rejects and
min_faces honoured, ties to the lowest id, the same plan whatever the input order, and average
linkage checked against scipy and against the greedy rule it claims to follow."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage

from isearchd.engine import grouping
from isearchd.engine.grouping import Plan, plan_grouping
from isearchd.store.synthetic import synthetic_faces

DIM = 128


def pair_scores(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall of ``labels`` (-1: not grouped) against ``truth``."""
    same_truth = truth[:, None] == truth[None, :]
    same_found = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    upper = np.triu(np.ones_like(same_truth), 1)
    tp = (same_truth & same_found & upper).sum()
    return tp / max(1, (same_found & upper).sum()), tp / max(1, (same_truth & upper).sum())


def labels_of(plan: Plan, ids: np.ndarray, people: dict[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each face's group: its person (joined or already held) or its new person, -1 for none."""
    where = {int(f): p for p, (held, _) in people.items() for f in held}
    where |= plan.joins
    for k, group in enumerate(plan.new_people):
        where |= {f: 10_000 + k for f in group}
    return np.array([where.get(int(f), -1) for f in ids])


def point(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    v = rng.standard_normal(DIM)
    return (scale * v / np.linalg.norm(v)).astype(np.float32)


def faces(*vectors: np.ndarray, start: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(start, start + len(vectors), dtype=np.int64), np.stack(vectors).astype(np.float32)


EMPTY = faces(np.zeros(DIM, np.float32))[0][:0], np.zeros((0, DIM), np.float32)

# -- identities ----------------------------------------------------------------------------------


def test_synthetic_identities_are_recovered_as_new_people() -> None:
    truth, vectors = synthetic_faces(1500, identities=10, seed=3)
    ids = np.arange(100, 100 + len(truth))
    plan = plan_grouping((ids, vectors), {})
    assert plan.joins == {}
    precision, recall = pair_scores(truth, labels_of(plan, ids, {}))
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert len(plan.new_people) == 10
    assert [g[0] for g in plan.new_people] == sorted(g[0] for g in plan.new_people)
    assert all(g == sorted(g) for g in plan.new_people)


def test_new_faces_join_the_people_they_belong_to() -> None:
    truth, vectors = synthetic_faces(1200, identities=8, seed=5)
    ids = np.arange(1, len(truth) + 1)
    held = np.arange(len(truth)) < 600  # the first half already grouped, one person per identity
    people = {int(p) + 1: (ids[held & (truth == p)], vectors[held & (truth == p)]) for p in range(8)}
    plan = plan_grouping((ids[~held], vectors[~held]), people)
    assert plan.new_people == []
    assert len(plan.joins) >= 0.95 * (~held).sum()
    assert all(
        plan.joins[int(f)] == int(t) + 1
        for f, t in zip(ids[~held], truth[~held], strict=True)
        if f in plan.joins
    )


def test_faces_joining_in_one_plan_do_not_attract_others() -> None:
    rng = np.random.default_rng(0)
    centre, step = point(rng, 0.6), point(rng, 0.3)
    person = {7: faces(centre, start=1)}
    near, beyond = centre + step * 1.4, centre + step * 2.6  # 0.42 and 0.78 from the person
    plan = plan_grouping(faces(near, beyond, start=10), person, min_faces=3)
    assert plan == Plan({10: 7}, [])


# -- rules ---------------------------------------------------------------------------------------


def test_a_rejected_face_never_joins_that_person() -> None:
    rng = np.random.default_rng(1)
    face = point(rng, 0.6)
    people = {1: faces(face + point(rng, 0.25), start=1), 2: faces(face + point(rng, 0.4), start=2)}
    new = faces(face, start=10)
    assert plan_grouping(new, people).joins == {10: 1}
    assert plan_grouping(new, people, {10: {1}}).joins == {10: 2}
    assert plan_grouping(new, people, {10: {1, 2}}).joins == {}
    assert plan_grouping(new, people, {11: {1}, 10: {99}}).joins == {10: 1}


def test_min_faces_decides_what_becomes_a_new_person() -> None:
    rng = np.random.default_rng(2)
    pair, trio = point(rng, 0.6), point(rng, 0.6)
    jitter = [0.01 * point(rng) for _ in range(5)]
    unassigned = faces(
        pair + jitter[0], pair + jitter[1], trio + jitter[2], trio + jitter[3], trio + jitter[4]
    )
    assert plan_grouping(unassigned, {}).new_people == [[3, 4, 5]]
    assert plan_grouping(unassigned, {}, min_faces=2).new_people == [[1, 2], [3, 4, 5]]
    assert plan_grouping(unassigned, {}, min_faces=4).new_people == []
    assert plan_grouping(EMPTY, {}) == Plan({}, [])


def test_a_face_equally_near_two_persons_joins_the_lower_id() -> None:
    rng = np.random.default_rng(4)
    centre = point(rng, 0.6)
    face = centre + point(rng, 0.3)
    for first, second in ((5, 3), (3, 5)):
        people = {first: faces(centre.copy(), start=1), second: faces(centre.copy(), start=2)}
        assert plan_grouping(faces(face, start=10), people).joins == {10: 3}
    people = {9: faces(centre, start=1), 4: faces(face + point(rng, 0.4), start=2)}
    assert plan_grouping(faces(face, start=10), people).joins == {10: 9}  # the nearest, not the lowest


def test_joins_respect_max_distance() -> None:
    rng = np.random.default_rng(6)
    centre, step = point(rng, 0.6), point(rng, 1.0)
    people = {1: faces(centre, start=1)}
    assert plan_grouping(faces(centre + 0.49 * step, start=5), people).joins == {5: 1}
    assert plan_grouping(faces(centre + 0.51 * step, start=5), people).joins == {}
    assert plan_grouping(faces(centre + 0.51 * step, start=5), people, max_distance=0.6).joins == {5: 1}


# -- order independence --------------------------------------------------------------------------


Scene = tuple[tuple[np.ndarray, np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    """Free faces and up to three persons of three faces, from a few identities, with exact
    copies of some faces (ties) and ids in any order."""
    n, persons, copies = draw(st.integers(0, 40)), draw(st.integers(0, 3)), draw(st.integers(0, 6))
    _, base = synthetic_faces(
        n + 3 * persons, identities=draw(st.integers(1, 5)), seed=draw(st.integers(0, 2**32 - 1))
    )
    vectors = np.concatenate([base, base[: min(copies, n)]])
    ids = np.array(draw(st.permutations(range(1, len(vectors) + 1))), dtype=np.int64)
    people = {}
    for p in range(persons):
        held = slice(n + 3 * p, n + 3 * p + 3)
        people[draw(st.integers(1, 50)) * 10 + p] = (ids[held], vectors[held])
    free = np.r_[0:n, n + 3 * persons : len(vectors)]
    return (ids[free], vectors[free]), people


@settings(max_examples=30, deadline=None, derandomize=True)
@given(scene=scenes(), data=st.data())
def test_the_plan_does_not_depend_on_the_input_order(scene: Scene, data: st.DataObject) -> None:
    (ids, vectors), people = scene
    rejects = {int(f): {p} for f, p in zip(ids[::3], itertools.cycle(people or [0]), strict=False)}
    plan = plan_grouping((ids, vectors), people, rejects, min_faces=2)
    order = np.array(data.draw(st.permutations(range(len(ids)))), dtype=np.int64)
    shuffled = {}
    for p in data.draw(st.permutations(sorted(people))):
        held, held_vectors = people[p]
        inner = np.array(data.draw(st.permutations(range(len(held)))), dtype=np.int64)
        shuffled[p] = (held[inner], held_vectors[inner])
    backwards = {f: set(r) for f, r in reversed(rejects.items())}
    assert plan_grouping((ids[order], vectors[order]), shuffled, backwards, min_faces=2) == plan


# -- average linkage, checked --------------------------------------------------------------------


def greedy_average_linkage(vectors: np.ndarray, radius: float) -> list[list[int]]:
    """The rule as the docstring states it, naively: merge the pair of groups lowest in (mean
    distance, lower id, higher id) while that distance is within ``radius``."""
    d = np.linalg.norm(vectors[:, None].astype(np.float64) - vectors[None, :], axis=2)
    groups = {k: [k] for k in range(len(vectors))}
    while len(groups) > 1:
        best = min(
            (float(d[np.ix_(groups[a], groups[b])].mean()), a, b)
            for a, b in itertools.combinations(sorted(groups), 2)
        )
        if best[0] > radius:
            break
        _, a, b = best
        groups[a] = sorted(groups[a] + groups.pop(b))
    return sorted(groups.values())


def as_partition(clusters: list[list[int]]) -> list[list[int]]:
    return sorted(sorted(c) for c in clusters)


@pytest.mark.parametrize("seed", range(6))
def test_average_linkage_matches_scipy(seed: int) -> None:
    _, vectors = synthetic_faces(300, identities=6, seed=seed)
    rng = np.random.default_rng(seed)
    vectors = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * 0.03  # overlapping people
    found = as_partition(grouping._average_linkage(vectors, 0.5))
    labels = fcluster(linkage(vectors.astype(np.float64), method="average"), t=0.5, criterion="distance")
    assert found == as_partition([list(np.flatnonzero(labels == k)) for k in np.unique(labels)])
    plan = plan_grouping((np.arange(300), vectors), {}, min_faces=1)
    assert as_partition(plan.new_people) == found


@pytest.mark.parametrize("seed", range(8))
def test_average_linkage_follows_the_greedy_rule_even_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    _, base = synthetic_faces(12, identities=3, seed=seed)
    vectors = base[rng.integers(0, len(base), 24)]  # many exact copies: ties everywhere
    vectors[::5] += 0.2 * rng.standard_normal((len(vectors[::5]), DIM)).astype(np.float32) / np.sqrt(DIM)
    assert as_partition(grouping._average_linkage(vectors, 0.5)) == greedy_average_linkage(vectors, 0.5)


@pytest.mark.parametrize("seed", range(20))
def test_average_linkage_follows_the_greedy_rule_on_a_lattice(seed: int) -> None:
    """Points on a 0.2 grid: many pairs at exactly the same distance."""
    points = np.random.default_rng(seed).integers(0, 3, (10, 2)).astype(np.float32) * 0.2
    vectors = np.zeros((10, DIM), np.float32)
    vectors[:, :2] = points
    assert as_partition(grouping._average_linkage(vectors, 0.5)) == greedy_average_linkage(vectors, 0.5)


def test_tiles_and_oversized_components_give_the_same_people(monkeypatch: pytest.MonkeyPatch) -> None:
    truth, vectors = synthetic_faces(900, identities=4, seed=9)
    ids = np.arange(900)
    whole = plan_grouping((ids, vectors), {})
    assert len(whole.new_people) == 4
    monkeypatch.setattr(grouping, "BLOCK", 64)  # components found across many tiles: the same
    assert plan_grouping((ids, vectors), {}) == whole
    monkeypatch.setattr(grouping, "COMPONENT_MAX", 60)  # every person's component is cut, twice
    cut = plan_grouping((ids, vectors), {})
    precision, recall = pair_scores(truth, labels_of(cut, ids, {}))
    assert precision == 1.0 and recall >= 0.95, (precision, recall)
    assert plan_grouping((ids[::-1], vectors[::-1]), {}) == cut
    copies = np.repeat(vectors[:1], 250, axis=0)  # one face 250 times: cut by id, merged again
    assert plan_grouping((np.arange(250), copies), {}).new_people == [list(range(250))]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        plan_grouping((np.array([1, 1]), np.zeros((2, DIM), np.float32)), {})
    with pytest.raises(ValueError, match="descriptors"):
        plan_grouping((np.array([1, 2]), np.zeros((3, DIM), np.float32)), {})
    with pytest.raises(ValueError, match="max_distance"):
        plan_grouping(EMPTY, {}, max_distance=0)
