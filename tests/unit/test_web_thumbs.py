"""The thumbnail cache's bound: beyond ``max_bytes`` the least recently used are removed; the
square a face crop cuts; and a video's picture at its moment and when its file may be served."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isearchd.errors import NotFound
from isearchd.files.video import VideoLimits, read_video
from isearchd.messages import ImageInfo
from isearchd.web.thumbs import EVICT_TO, Thumbnails
from isearchd.web.videos import frame_at, frame_key, served_video
from tests.fixtures.shapes import COLOURS
from tests.fixtures.videos import Scene, mean_difference, write_video


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


def _video_row(video: Path, at: float, /, **changes: object) -> ImageInfo:
    """The daemon's ``image_info`` of a video frame's row, as the indexer stores it."""
    st = video.stat()
    fields: dict[str, object] = {
        "id": 7, "label": f"{video}\x00{at:.3f}", "path": str(video), "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns, "hash": f"{'ab' * 16}@{at:.3f}", "type": "video", "at": at,
        "duration": 6.0,
    }  # fmt: skip
    return ImageInfo(**{**fields, **changes})  # type: ignore[arg-type]


def _share(picture: Image.Image, colour: str) -> float:
    pixels = np.asarray(picture.convert("RGB"), dtype=np.int32).reshape(-1, 3)
    return float((((pixels - np.array(COLOURS[colour])) ** 2).sum(axis=1) < 60**2).mean())


def test_a_video_s_picture_is_the_frame_at_the_row_s_moment(tmp_path: Path) -> None:
    # the encoder's own keyframes (one at the start): the moment is decoded on from there
    scenes = [Scene("red", "circle", 3), Scene("blue", "square", 3)]
    path = write_video(tmp_path / "two.mp4", scenes, gop=None)
    start, later = frame_at(_video_row(path, 0.0)), frame_at(_video_row(path, 4.0), longest=64)
    assert start is not None and later is not None
    assert start.size == (128, 128) and later.size == (64, 64)
    assert _share(start, "red") > 0.01 and _share(start, "blue") == 0
    assert _share(later, "blue") > 0.01 and _share(later, "red") == 0
    assert frame_key(_video_row(path, 4.0)) == f"{'ab' * 16}-4000" != frame_key(_video_row(path, 0.0))


def test_a_phone_s_video_shows_the_picture_it_was_indexed_by(tmp_path: Path) -> None:
    # a portrait video stored sideways: the page's picture of each indexed moment is the model's,
    # upright, the same frame (only the bound on its size differs)
    scenes = [Scene("red", "circle", 2), Scene("blue", "square", 2)]
    path = write_video(tmp_path / "phone.mov", scenes, rotation=-90)
    video = read_video(path, VideoLimits(interval=1), side=64)
    assert len(video.frames) == 4
    for frame in video.frames:
        shown = frame_at(_video_row(path, frame.at), longest=80)
        assert shown is not None and shown.size == frame.picture.size == (64, 80)
        assert mean_difference(shown, frame.picture) < 1, frame.at


def test_a_video_is_served_only_as_it_was_indexed(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.webm", [Scene("green", "star", 1)])
    row = _video_row(path, 0.0)
    assert served_video(row)[0] == str(path) and served_video(row)[2] == "video/webm"
    elsewhere = tmp_path / "clip.flv"
    elsewhere.write_bytes(path.read_bytes())
    for refused in (
        _video_row(path, 0.0, type="png"),  # a photo
        _video_row(path, 0.0, host="laptop"),  # another machine's video, whatever is here
        _video_row(path, 0.0, bytes=row.bytes + 1),  # changed since it was indexed
        _video_row(path, 0.0, mtime_ns=row.mtime_ns + 1),
        _video_row(elsewhere, 0.0),  # not a video's extension
        _video_row(path, 0.0, path=str(tmp_path / "gone.webm")),
    ):
        with pytest.raises(NotFound):
            served_video(refused)
        assert frame_at(refused) is None
