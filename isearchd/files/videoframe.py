"""A video's frame at a moment, as a picture: shared by the indexer (``isearchd.files.video``) and
the web page (``isearchd.web.videos``), so a video's thumbnail is the picture the model saw.

``frame_at`` seeks to the keyframe at or before a moment and decodes on to it; ``picture`` scales a
decoded frame with FFmpeg (a 4K frame is never copied whole) and turns it upright by the stream's
display matrix (a phone's portrait video is stored landscape with a quarter turn to show it by).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

__all__ = ["frame_at", "picture", "quarter_turns", "stream_start"]

# A display matrix's rotation (counter-clockwise degrees, as FFmpeg gives it) rounded to quarter
# turns, and how Pillow makes each turn (lossless, unlike a rotation by an angle).
_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def quarter_turns(rotation: float) -> int:
    """How many quarter turns counter-clockwise show a frame upright (0-3), from its display
    matrix's ``rotation`` (PyAV's ``VideoFrame.rotation``: -90 for a phone held upright)."""
    return round(rotation / 90) % 4


def picture(frame: Any, *, short_side: int | None = None, long_side: int | None = None) -> Image.Image:
    """``frame`` (a decoded PyAV frame) as an upright RGB picture, shrunk so that its shorter side
    is at most ``short_side`` and its longer at most ``long_side`` (None: no bound).

    FFmpeg scales it while converting it to RGB, so a 4K frame is never copied whole; the turn
    comes after, on the small picture (the bounds hold either way round)."""
    w, h = frame.width, frame.height
    scale = min(
        short_side / max(1, min(w, h)) if short_side is not None else 1.0,
        long_side / max(1, w, h) if long_side is not None else 1.0,
    )
    if scale < 1:
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    image: Image.Image = frame.to_image(width=w, height=h)
    image = image.convert("RGB") if image.mode != "RGB" else image
    turn = _TURNS.get(quarter_turns(frame.rotation))
    return image.transpose(turn) if turn is not None else image


def stream_start(stream: Any) -> float:
    """The time of the stream's first frame in seconds: what frame times are counted from."""
    tb = stream.time_base
    return float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0


def frame_at(
    container: Any, stream: Any, t: float, *, keyframe: bool = False, most: int | None = None,
    frames: Callable[[], Iterable[Any]] | None = None,
) -> Any | None:  # fmt: skip
    """The decoded frame shown ``t`` seconds from the start of ``stream``: a seek to the keyframe
    at or before it, then decoded on to ``t`` (``keyframe``: that keyframe itself). Past ``most``
    frames decoded, or at the end of the stream, the last decoded one stands in.

    ``frames`` gives the decoded frames after the seek (default: PyAV's ``container.decode``; the
    indexer's skips damaged packets and keeps to its time limit). None when the seek fails (a file
    without an index or a time base) or nothing decodes."""
    import av

    start = stream_start(stream)
    if not stream.time_base:
        return None
    try:
        container.seek(int((t + start) / stream.time_base), stream=stream, backward=True)
    except av.FFmpegError as e:
        log.debug("%s: cannot seek to %.1f s (%s)", container.name, t, e)
        return None
    stream.codec_context.flush_buffers()
    found = None
    decoded = frames() if frames is not None else container.decode(stream)
    for i, frame in enumerate(decoded, start=1):
        if frame.time is None:
            continue
        found = frame
        if keyframe or float(frame.time) - start >= t - 0.001 or (most is not None and i >= most):
            break
    return found
