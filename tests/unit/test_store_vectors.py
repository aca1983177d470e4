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


def test_search_width_grows_with_the_index_and_stays_bounded() -> None:
    """Up to EF_SCALE_ROWS rows the tuned efs; beyond, in proportion (recall at 1M needs ~10x,
    bench_growth.py), never above EF_MAX."""
    from isearchd.store.vectors import EF_FAR, EF_MAX, EF_SCALE_ROWS, EF_SEARCH, scaled_ef

    assert scaled_ef(EF_SEARCH, 1_000) == EF_SEARCH
    assert scaled_ef(EF_FAR, EF_SCALE_ROWS) == EF_FAR
    assert scaled_ef(EF_SEARCH, 10 * EF_SCALE_ROWS) == 10 * EF_SEARCH
    assert scaled_ef(EF_FAR, 10 * EF_SCALE_ROWS) == 10 * EF_FAR
    assert scaled_ef(EF_FAR, 1000 * EF_SCALE_ROWS) == EF_MAX
