"""The thumbnail cache's bound: beyond ``max_bytes`` the least recently used are removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from isearchd.web.thumbs import EVICT_TO, Thumbnails


def test_the_cache_stays_within_its_bound_dropping_the_oldest(tmp_path: Path) -> None:
    cache = Thumbnails(tmp_path / "thumbs", max_bytes=10_000)
    try:
        digests = [f"{i:02x}" + "0" * 30 for i in range(12)]
        for i, digest in enumerate(digests):
            cache._store(digest, b"x" * 1_000)
            os.utime(cache._file(digest), (time.time() - 100 + i, time.time() - 100 + i))
        assert cache.size() <= 10_000
        kept = {f.stem for f in (tmp_path / "thumbs").glob("*/*.webp")}
        assert digests[-1] in kept and digests[0] not in kept  # the newest stay, the oldest go
        cache.evict()
        assert cache.size() <= 10_000 * EVICT_TO
    finally:
        cache.close()
