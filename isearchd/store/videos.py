"""How a video is stored: one entry per indexed frame, all under the video's label.

A video's first frame is stored under the video's own label (its path, or its file name), like a
photo: change detection, watch's reconcile and ``get`` see the video through it. Each further
frame is stored under ``<label>\\x00<at>`` (``frame_label``): no file name can hold a NUL, so a
frame's label never meets a real file's, and a video's frames are one range of labels
(``frame_range``), next to it in the label index. Every frame row has the video's path, size,
mtime and the hash of the video's bytes (a further frame's with ``@<at>`` appended, so no photo
ever reuses a frame's vector), and the frame's ``at`` and the video's ``duration`` in its
metadata (``type`` "video").

The stores keep a video whole: deleting a label deletes its frames; adding a video's first
frame (``records.owns_frames``) replaces the frames stored before that the add does not write
again (a changed video leaves no stale moments behind); a rename or folder move takes the frames
along (``moved_label``). What users are told counts files, a video once (``files_among``): the
image count, and what a delete or a move did; ``count()`` and an add count rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from isearchd.files.names import to_db

FRAME_MARK = "\x00"
VIDEO_TYPE = "video"  # the ``type`` of a video's rows (photos: their format, "jpeg", "png"...)
PHOTO_TYPE = "photo"  # a filter word: every type but video


def frame_label(label: str, at: float) -> str:
    """The label of the frame ``at`` seconds into the video labelled ``label``."""
    return f"{label}{FRAME_MARK}{at:.3f}"


def video_label(label: str) -> str:
    """The label of the video a frame belongs to (a photo's or a video's own label: itself)."""
    return label.split(FRAME_MARK, 1)[0]


def is_frame_label(label: str) -> bool:
    return FRAME_MARK in label


def files_among(labels: Iterable[str]) -> int:
    """How many files these rows' labels are: a video's further frames count with it."""
    return sum(not is_frame_label(label) for label in labels)


def frame_range(label: str) -> tuple[bytes, bytes]:
    """The stored labels of ``label``'s frames are exactly those in ``(low, high)``."""
    low = to_db(label + FRAME_MARK)
    return low, low[:-1] + b"\x01"


def m009_videos(db: sqlite_utils.Database) -> None:
    # Why: a video is indexed as several frames; a search returns it at its best frame's time
    # (``at``, seconds) with the video's length (``duration``). Both NULL on photos.
    db.execute("ALTER TABLE images ADD COLUMN at REAL")
    db.execute("ALTER TABLE images ADD COLUMN duration REAL")
