"""Search quality against brute force on 20,000 clustered vectors (dim 512, fixed seed).

Image-like queries sit near a stored vector (best cosine ~0.86); text-like queries sit in another
region of the sphere, as CLIP text embeddings do (the modality gap: best cosine ~0.3), where a
greedy graph search stops early unless it searches wider. The database is built once per module
(~10 s on 2 cores).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from isearchd.store import Database, ImageRecord, SavePolicy
from isearchd.store.synthetic import clustered

# Float results depend on the CPU's kernels (numpy, OpenBLAS): .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

N = 20_000
DIM = 512
K = 10
N_QUERIES = 200


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Database, np.ndarray, np.ndarray, np.ndarray]]:
    data, image_q, text_q = clustered(N, DIM, N_QUERIES)
    home = tmp_path_factory.mktemp("recall")
    db = Database.open(Path(home), "r", model_key="m", dim=DIM, save_policy=SavePolicy(background=False))
    for lo in range(0, N, 2000):
        db.add(
            [ImageRecord(f"/d/{i}", f"/d/{i}", 1, 1, f"h{i}", data[i]) for i in range(lo, min(N, lo + 2000))]
        )
    yield db, data, image_q, text_q
    db.close(save=False)


def recall_at_k(db: Database, data: np.ndarray, queries: np.ndarray) -> float:
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :K]
    found = 0
    for q, want in zip(queries, truth, strict=True):
        got = {int(h.label.rsplit("/", 1)[1]) for h in db.search(q, k=K)}
        found += len(got & {int(i) for i in want})
    return found / (len(queries) * K)


def test_query_kinds_are_what_they_claim(built: tuple[Database, np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, data, image_q, text_q = built
    assert 0.75 < float(np.mean((image_q @ data.T).max(axis=1))) < 0.95
    assert 0.25 < float(np.mean((text_q @ data.T).max(axis=1))) < 0.35


def test_recall_image_like(built: tuple[Database, np.ndarray, np.ndarray, np.ndarray]) -> None:
    db, data, image_q, _ = built
    assert recall_at_k(db, data, image_q) >= 0.98


def test_recall_text_like(built: tuple[Database, np.ndarray, np.ndarray, np.ndarray]) -> None:
    db, data, _, text_q = built
    assert recall_at_k(db, data, text_q) >= 0.95


def test_threshold_returns_k_when_more_than_k_pass(
    built: tuple[Database, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    db, data, _, text_q = built
    short = 0
    for q in text_q[:50]:
        sims = np.round(np.sort(q @ data.T)[::-1] * 100, 1)
        threshold = float(sims[K + 5])  # more than K images pass it
        hits = db.search(q, k=K, min_similarity=threshold)
        assert all(h.similarity >= threshold for h in hits)
        short += len(hits) < K
    assert short == 0
