"""The thumbnail cache's bound: beyond ``max_bytes`` the least recently used are removed; and the
square a face crop cuts."""

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


def test_a_face_crop_is_a_square_around_the_face_inside_the_picture() -> None:
    from isearchd.web.faces import FACE_MARGIN, crop_square

    for box, size in (
        ((400, 300, 100, 120), (1920, 1080)),  # in the middle
        ((0, 0, 90, 100), (800, 600)),  # at a corner: moved inside, still square
        ((750, 550, 50, 50), (800, 600)),  # at the other corner
        ((10, 5, 300, 280), (320, 300)),  # as large as the picture: shrunk to fit
    ):
        left, top, right, bottom = crop_square(box, size)
        assert right - left == bottom - top > 0
        assert left >= 0 and top >= 0 and right <= size[0] and bottom <= size[1]
        side = min(round(max(box[2], box[3]) * (1 + 2 * FACE_MARGIN)), *size)
        assert right - left == side
        if side > max(box[2], box[3]):  # room for the face: all of it is in the crop
            assert left <= box[0] and top <= box[1]
            assert right >= box[0] + box[2] and bottom >= box[1] + box[3]
