"""Search results with videos in them: each video once, at its best frame.

A video is stored as one row per indexed frame (``isearchd.store.videos``), so a search of the
vectors can return several moments of one video. ``once_per_video`` keeps each video's best
moment (the hits come best first), named by the video's own label, its time in ``info.at``.
The engine asks the store for more hits until ``num`` distinct results are found or the store has
no more (``rawpairs.top_folded``, which folds RAW+JPEG pairs in the same pass): a video's frames
never push photos out of the top ``num``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from isearchd.store.videos import is_frame_label, video_label

if TYPE_CHECKING:
    from isearchd.store import SearchHit


def once_per_video(hits: Iterable[SearchHit]) -> list[SearchHit]:
    """``hits`` (best first) with each video's later moments left out; a frame is named by its
    video's label."""
    seen: set[tuple[str | None, str]] = set()
    out: list[SearchHit] = []
    for hit in hits:
        key = (hit.host, video_label(hit.label))
        if key in seen:
            continue
        seen.add(key)
        out.append(replace(hit, label=key[1]) if is_frame_label(hit.label) else hit)
    return out
