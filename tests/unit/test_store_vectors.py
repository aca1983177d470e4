"""VectorIndex directly: the graph search among allowed ids (the path of large filtered searches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from isearchd.store.synthetic import clustered
from isearchd.store.vectors import VectorIndex, rank


def test_search_among_finds_the_nearest_allowed_and_live(tmp_path: Path) -> None:
    data, image_q, text_q = clustered(3_000, 32, 20, seed=5)
    ids = np.arange(1, len(data) + 1)
    index = VectorIndex.empty(tmp_path, 32, "test")
    index.add(ids.tolist(), data, existing=())
    deleted = ids[::10]
    index.delete(deleted.tolist())
    allowed = ids[ids % 3 != 0]
    ok = allowed[~np.isin(allowed, deleted)]
    found = total = 0
    for q in np.concatenate([image_q, text_q]):
        hits = index.search_among(q, 10, allowed)
        assert all(h.id in set(ok.tolist()) for h in hits)
        want = {h.id for h in rank(q, 10, ok, data[ok - 1])}
        found += len({h.id for h in hits} & want)
        total += len(want)
    assert found / total >= 0.95
    assert len(index) == len(ids) - len(deleted)
    assert index.ids() == set(ids.tolist()) - set(deleted.tolist())
