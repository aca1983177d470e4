"""Which catalog ids the vector index holds live: one byte per id, not a Python set.

Catalog ids are dense and never reused (AUTOINCREMENT), so a flag array indexed by id costs one
byte per id ever given out. The set of ints it replaces cost ~70 bytes per image, and building
it while reconciling on open (lists of row tuples, a set of the index's labels) left the
daemon ~170 bytes per image above the hnswlib index itself, in pymalloc arenas that the
long-lived ints kept from being freed (measured: 102,000 images, dim 512, a fresh process: the
store's growth over the bare index 17 MB, of which the set 7 MB; benchmarks/bench_growth.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

GROWTH = 1.5  # the flag array grows geometrically with the largest id (a copy per growth)


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    arr = ids if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)
    arr = np.unique(arr.astype(np.int64, copy=False))
    if len(arr) and arr[0] < 0:
        raise ValueError(f"catalog ids are positive, got {int(arr[0])}")
    return arr


class LiveIds:
    """A set of non-negative ids backed by a flag array. Not thread-safe: the index's lock guards it."""

    def __init__(self, ids: Iterable[int] | np.ndarray = ()) -> None:
        self._flags = np.zeros(0, dtype=np.bool_)
        self._count = 0
        self.add(ids)

    def add(self, ids: Iterable[int] | np.ndarray) -> None:
        arr = _as_ids(ids)
        if not len(arr):
            return
        top = int(arr[-1]) + 1
        if top > len(self._flags):
            grown = np.zeros(max(top, int(len(self._flags) * GROWTH)), dtype=np.bool_)
            grown[: len(self._flags)] = self._flags
            self._flags = grown
        self._count += int(len(arr) - np.count_nonzero(self._flags[arr]))
        self._flags[arr] = True

    def discard(self, ids: Iterable[int] | np.ndarray) -> None:
        arr = _as_ids(ids)
        arr = arr[arr < len(self._flags)]
        self._count -= int(np.count_nonzero(self._flags[arr]))
        self._flags[arr] = False

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """For each of ``ids``, whether it is live."""
        arr = np.asarray(ids, dtype=np.int64)
        inside = (arr >= 0) & (arr < len(self._flags))
        out = np.zeros(len(arr), dtype=np.bool_)
        out[inside] = self._flags[arr[inside]]
        return out

    def array(self) -> np.ndarray:
        """The live ids, ascending (int64)."""
        return np.flatnonzero(self._flags).astype(np.int64, copy=False)

    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, int | np.integer) or not 0 <= ident < len(self._flags):
            return False
        return bool(self._flags[ident])

    def __len__(self) -> int:
        return self._count
