"""Videos for the web page: the picture at a hit's moment, and which file ``/video`` may serve.

A video is indexed as one row per frame (the daemon's ``image_info`` of a frame's id has the
video's ``path``, ``bytes``, ``mtime_ns``, ``type`` "video" and the frame's ``at``). The page
shows that moment's picture as the thumbnail and the large view's picture (``frame_at``, used by
``isearchd.web.thumbs``) and plays the file itself from that moment (``served_video``, the
``/video/DB/ID`` route in ``isearchd.web.api``).

Both read only the path the catalog holds for the id, and only while the file is as it was indexed:
a regular file of the same size and modification time, indexed on this machine. Unlike a photo's,
a video's bytes are not hashed again (a 1 GB video takes ~1 s to hash, at every view): size and
time are the check. Anything else is ``None`` (a placeholder) or ``NotFound`` (a 404).
"""

from __future__ import annotations

import logging
import os
from pathlib import PurePosixPath
from typing import IO, Any

from PIL import Image

from isearchd.errors import NotFound
from isearchd.files import videoframe
from isearchd.files.images import NotRegularFile, open_regular
from isearchd.messages import ImageInfo

log = logging.getLogger(__name__)

__all__ = ["MEDIA_TYPES", "VIDEO_TYPE", "frame_at", "frame_key", "moment", "served_video"]

# What ``/video`` answers as each container's media type (by the file's extension, any case: the
# indexer takes the same extensions, ``isearchd.files.formats.VIDEO_EXTENSIONS``). Browsers play
# MP4/M4V (H.264), WebM and often MOV; MKV, AVI and 3GP rarely: the page then shows the frame.
MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
               ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".3gp": "video/3gpp"}  # fmt: skip
# Frames decoded at most from the keyframe before a moment on to the moment (a phone's keyframe
# interval of 1-2 s is 30-120 frames; 4 s at 60 fps: 240). Past it the last decoded frame is shown.
MAX_DECODED = 300
VIDEO_TYPE = "video"  # the ``type`` of a video's rows (``PhotoFacts``)


def moment(image: ImageInfo) -> float:
    """The frame's time in seconds from the start of the video (0 when the row does not say)."""
    return float(image.at) if isinstance(image.at, float | int) else 0.0


def frame_key(image: ImageInfo) -> str | None:
    """A video frame's thumbnail key: the video's content hash and the moment in milliseconds
    (None without a hash). A frame row's own hash carries ``@<at>`` after the video's; the first
    frame's is the video's alone, so the moment is always added here."""
    if image.hash is None:
        return None
    return f"{image.hash.split('@', 1)[0]}-{round(moment(image) * 1000)}"


def _open_unchanged(image: ImageInfo) -> tuple[IO[bytes], os.stat_result] | None:
    """The video's file, opened, while it is the indexed one (this machine's, a regular file, same
    size and modification time); None otherwise."""
    if image.type != VIDEO_TYPE or image.host is not None or not image.path.startswith("/"):
        return None
    if PurePosixPath(image.path).suffix.lower() not in MEDIA_TYPES:
        return None
    try:
        fp, st = open_regular(image.path)
    except (OSError, ValueError, NotRegularFile):
        return None
    if st.st_size != image.bytes or st.st_mtime_ns != image.mtime_ns:
        fp.close()
        return None
    return fp, st


def served_video(image: ImageInfo) -> tuple[str, os.stat_result, str]:
    """``(path, stat, media type)`` of the video an id names, to be served as it is (with range
    requests); ``NotFound`` for a photo, another machine's video, or a file gone or changed."""
    if image.type != VIDEO_TYPE:
        raise NotFound(f"image {image.id} is not a video")
    opened = _open_unchanged(image)
    if opened is None:
        raise NotFound(f"video {image.id} is no longer as it was indexed (moved, changed or deleted)")
    fp, st = opened
    fp.close()
    return image.path, st, MEDIA_TYPES[PurePosixPath(image.path).suffix.lower()]


def frame_at(image: ImageInfo, longest: int | None = None) -> Image.Image | None:
    """The video's picture at its row's moment (RGB, upright, at most ``longest`` px on its long
    side; None: as decoded), while the file is unchanged; None when it cannot be read."""
    import av

    opened = _open_unchanged(image)
    if opened is None:
        return None
    fp, _ = opened
    with fp:
        try:
            with av.open(fp, mode="r") as container:
                return _decode_at(container, moment(image), longest)
        except (av.FFmpegError, OSError, ValueError) as e:
            log.info("no picture of %s at %.1f s: %s", image.path, moment(image), e)
            return None


def _decode_at(container: Any, at: float, longest: int | None) -> Image.Image | None:
    """The picture at ``at`` seconds, as the indexer decodes and turns it (``isearchd.files.video``)."""
    if not container.streams.video:
        return None
    frame = videoframe.frame_at(container, container.streams.video[0], at, most=MAX_DECODED)
    return None if frame is None else videoframe.picture(frame, long_side=longest)
