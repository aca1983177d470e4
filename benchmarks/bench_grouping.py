"""Grouping benchmark: time, peak memory and pairwise precision/recall of ``plan_grouping``.

Synthetic faces (``isearchd.store.synthetic.synthetic_faces``: 10 identities, within-identity
distances ~0.3-0.45, between ~0.8+) in four cases: 5,000 and 20,000 faces no person holds yet
(all become new people); 5,000 new faces joining 10 persons that already hold 20,000; and one
person photographed 8,000 times (a component over ``COMPONENT_MAX``: cut in halves, merged again).
Peak memory is what numpy allocated (tracemalloc), above the input.

``--labelled DIR`` adds the grouping of real faces: deepface's labelled test photos
(``tests/unit/dataset`` of serengil/deepface, as bench_faces.py reads them; the largest face of
each photo at 1920 px), grouped as the daemon groups them: photos arriving ``CHUNK`` at a time,
each chunk's free faces joining people or forming new ones, in the files' order and in
``ORDERS`` shuffled orders (the outcome must not depend on it). Pairwise precision and recall over
the labelled faces; a face left in no person counts against recall.

Usage: python benchmarks/bench_grouping.py [--labelled DIR] [--out benchmarks/results/grouping.json]
Not a test: numbers depend on the machine and its load; the script prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.engine.grouping import Plan, plan_grouping  # noqa: E402
from isearchd.store.synthetic import synthetic_faces  # noqa: E402


def scores(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall, counted per (truth, label) cell (no n² matrix)."""
    grouped = labels >= 0
    cells: dict[tuple[int, int], int] = {}
    for t, g in zip(truth[grouped].tolist(), labels[grouped].tolist(), strict=True):
        cells[t, g] = cells.get((t, g), 0) + 1
    pairs = lambda counts: sum(c * (c - 1) // 2 for c in counts)  # noqa: E731
    together = pairs(cells.values())
    found = pairs(np.bincount(labels[grouped]).tolist())
    true = pairs(np.bincount(truth).tolist())
    return together / max(1, found), together / max(1, true)


def labels(plan: Plan, ids: np.ndarray, held: dict[int, int]) -> np.ndarray:
    where = dict(held) | plan.joins
    for k, group in enumerate(plan.new_people):
        where |= {f: 1000 + k for f in group}
    return np.array([where.get(int(f), -1) for f in ids])


def run(name: str, truth: np.ndarray, vectors: np.ndarray, n_held: int) -> dict[str, object]:
    ids = np.arange(1, len(truth) + 1)
    free = np.arange(len(truth)) >= n_held
    people = {
        int(p): (ids[~free & (truth == p)], vectors[~free & (truth == p)]) for p in np.unique(truth[~free])
    }
    held = {int(f): int(t) for f, t in zip(ids[~free], truth[~free], strict=True)}
    tracemalloc.start()
    start = time.perf_counter()
    plan = plan_grouping((ids[free], vectors[free]), people)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    precision, recall = scores(truth, labels(plan, ids, held))
    row = {"case": name, "faces": int(free.sum()), "held": n_held, "seconds": round(seconds, 2),
           "peak_mb": round(peak / 2**20), "precision": round(precision, 4), "recall": round(recall, 4),
           "joins": len(plan.joins), "new_people": len(plan.new_people)}  # fmt: skip
    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


# the daemon's defaults: [people] max_distance (dlib_faces.MATCH_DISTANCE) and min_faces
DISTANCE = 0.35
CHUNK = 8  # photos per step, as the daemon's faces analysis reads them
ORDERS = 5


def labelled_faces(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(true person index, unit descriptor) of the largest face of each labelled photo."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_faces import labels as photo_labels
    from bench_faces import resized
    from PIL import Image

    from isearchd.models.dlib_faces import DlibFaceModels

    people, _ = photo_labels(folder)
    names = sorted({p for p in people.values()})
    models = DlibFaceModels()
    truth, vectors = [], []
    for photo in sorted(people, key=lambda n: (len(n), n)):
        with Image.open(folder / photo) as im:
            picture = resized(im.convert("RGB"), 1920)
        faces = models.detect(picture)
        if not faces:
            continue
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        truth.append(names.index(people[photo]))
        vectors.append(models.describe(picture, [largest])[0])
    models.close()
    return np.array(truth), np.array(vectors, dtype=np.float32)


def arriving(order: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each face's person (-1: none) after the faces arrived in ``order``, ``CHUNK`` at a time."""
    person = np.full(len(vectors), -1)
    ids = np.arange(len(vectors))
    for start in range(0, len(order), CHUNK):
        arrived = np.zeros(len(vectors), dtype=bool)
        arrived[order[: start + CHUNK]] = True
        free = arrived & (person < 0)
        held = {int(p): (ids[person == p], vectors[person == p]) for p in np.unique(person[person >= 0])}
        plan = plan_grouping((ids[free], vectors[free]), held, max_distance=DISTANCE, min_faces=3)
        for face, p in plan.joins.items():
            person[face] = p
        for group in plan.new_people:
            person[list(group)] = int(person.max()) + 1
    return person


def run_labelled(folder: Path) -> dict[str, object]:
    truth, vectors = labelled_faces(folder)
    rng = np.random.default_rng(7)
    orders = [np.arange(len(truth))] + [rng.permutation(len(truth)) for _ in range(ORDERS)]
    outcomes = []
    for order in orders:
        person = arriving(order, vectors)
        precision, recall = scores(truth, person)
        outcomes.append({"precision": round(precision, 4), "recall": round(recall, 4),
                         "people": len(set(person[person >= 0].tolist())),
                         "unassigned": int((person < 0).sum())})  # fmt: skip
    often = np.bincount(truth) >= 3  # people with at least min_faces photos
    kept = often[truth]
    person = arriving(np.arange(len(truth)), vectors)
    _, recall_often = scores(truth[kept], person[kept])
    row = {"faces": len(truth), "true_people": len(np.unique(truth)), "orders": outcomes,
           "recall_people_with_3_photos_or_more": round(recall_often, 4)}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labelled", type=Path, default=None, help="deepface's tests/unit/dataset")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "grouping.json")
    args = parser.parse_args()
    rows = []
    for n in (5000, 20000):
        truth, vectors = synthetic_faces(n, identities=10, seed=1)
        rows.append(run(f"{n} new", truth, vectors, 0))
    truth, vectors = synthetic_faces(25000, identities=10, seed=2)
    rows.append(run("5000 joining 20000", truth, vectors, 20000))
    truth, vectors = synthetic_faces(8000, identities=1, seed=3)
    rows.append(run("one person, 8000", truth, vectors, 0))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    result: dict[str, object] = {"cpu": cpu, "numpy": np.__version__, "python": platform.python_version(),
                                 "rows": rows}  # fmt: skip
    if args.labelled is not None:
        result["labelled"] = run_labelled(args.labelled)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
