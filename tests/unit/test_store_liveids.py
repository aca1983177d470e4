"""LiveIds: the index's set of live catalog ids, one byte per id."""

from __future__ import annotations

import numpy as np
import pytest

from isearchd.store.liveids import LiveIds


def test_behaves_like_a_set_of_ids() -> None:
    rng = np.random.default_rng(3)
    live, model = LiveIds(), set()
    for _ in range(200):
        ids = rng.integers(0, 5_000, rng.integers(0, 40))
        if rng.random() < 0.6:
            live.add(ids)
            model.update(ids.tolist())
        else:
            live.discard(ids)
            model.difference_update(ids.tolist())
        assert len(live) == len(model)
    assert live.array().tolist() == sorted(model)
    probe = np.arange(-3, 5_200)
    assert live.mask(probe).tolist() == [int(i) in model for i in probe]
    assert all((i in live) == (i in model) for i in range(-3, 5_200, 7))


def test_duplicates_and_unknown_ids_keep_the_count() -> None:
    live = LiveIds([5, 5, 7])
    assert len(live) == 2
    live.add([7, 8, 8])
    live.discard([1, 10**6, 5, 5])
    assert len(live) == 2 and live.array().tolist() == [7, 8]
    assert "7" not in live and 7 in live and np.int64(8) in live


def test_negative_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        LiveIds([-1])
