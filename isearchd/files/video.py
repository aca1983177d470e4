"""Reading videos: which frames to index, decoded cheaply, and what the container says of itself.

``read_video(source, limits, side)`` opens a video file (or uploaded bytes) with PyAV (FFmpeg's
libraries inside its wheels) and returns its frames to index, each with its time ``at`` in seconds
from the start, plus the video's duration, size, creation time and position. Frames are chosen
like this (``FramePicker`` holds the rule, with no I/O, so it is tested on its own):

1. Only keyframes are decoded: the other packets are read from the file but never reach the
   decoder. A keyframe closer than ``MIN_GAP_S`` to the previous decoded one is not decoded either
   (MJPEG and other all-intra videos have nothing but keyframes).
2. Each decoded keyframe is shrunk by FFmpeg's scaler to a 32x18 grey ``signature``; a mean
   absolute difference to the previous keyframe's of at least ``SCENE_CHANGE`` is a scene change,
   and that keyframe is kept. Encoders put keyframes at cuts, so cuts are seen at once.
3. At least one frame every ``interval`` seconds: the last keyframe before the interval would run
   out is kept; where keyframes themselves are further apart, the missing moments are decoded by
   seeking to the keyframe before them and decoding on to that moment (the only full decodes).
4. At most ``max_frames``: a video longer than ``max_frames x interval`` is not read through; it is
   sampled at ``max_frames`` evenly spaced moments, one seek and one keyframe decode each, so a
   10-hour video costs ``max_frames`` keyframe decodes. Otherwise the kept frames are thinned
   evenly to ``max_frames`` (the first is always kept).

Kept frames are scaled by FFmpeg straight to the model's input size (shorter side ``side``): a
kept 1080p frame is never converted to a full-size RGB picture. They are then turned upright by the
stream's display matrix (a phone's portrait video is stored landscape with a quarter turn to show
it by), so the model sees what the viewer sees; the video's width and height are as displayed. The
scene-change signatures are not turned: a turn changes no difference between two of them.

``frame_at`` (the frame shown at a moment: a seek, then a decode on to it) and ``picture`` (a
decoded frame scaled and turned upright) are ``isearchd.files.videoframe``'s, shared with the web
page; what the container says of when and where it was filmed is ``isearchd.files.videometa``.

Failures become ``BadImage`` with a one-line reason: no video stream ("an audio file?"), a file
FFmpeg cannot open (truncated MP4 whose index is missing, not a video), no frame decodable, or a
file that takes longer than ``limits.time_limit`` seconds (checked between packets, so a damaged
file that makes the decoder crawl is stopped). A damaged packet in the middle is skipped.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from isearchd.errors import BadImage
from isearchd.files import videometa
from isearchd.files.videoframe import frame_at, picture, quarter_turns, stream_start

log = logging.getLogger(__name__)

# Mean absolute difference (0-1) between the 32x18 grey signatures of two consecutive keyframes
# that counts as a scene change. A cut between two shots differs by 0.15-0.5; a pan or a person
# walking through the picture by 0.02-0.08 (the synthetic scenes of the tests differ by >0.2).
SCENE_CHANGE = 0.10
# Keyframes closer than this to the previous decoded one are not decoded (all-intra video: MJPEG
# at 30 fps would otherwise decode every frame; 2 a second is enough to see every scene).
MIN_GAP_S = 0.5
# A video whose last decodable keyframe is this much (or the interval, or a tenth) before the end
# its header gives is reported as truncated.
TRUNCATED_S = 5.0
# The grey signature's size: 576 bytes, compared in microseconds.
SIGNATURE_SIZE = (32, 18)
# Frames to keep in memory before the kept ones are thinned (bounds a video cut every second).
_KEEP_FACTOR = 2


@dataclass(frozen=True)
class VideoLimits:
    """``[video]`` settings: the most seconds between indexed frames, the most frames per video,
    and the most seconds reading one video may take."""

    interval: float = 10.0
    max_frames: int = 200
    time_limit: float = 300.0


@dataclass(frozen=True)
class Frame:
    at: float  # seconds from the start of the video
    picture: Image.Image  # RGB, upright, shorter side as asked


@dataclass(frozen=True)
class Video:
    duration: float
    width: int | None
    height: int | None
    created: datetime | None  # aware when the container says the time zone (UTC for "creation_time")
    local: bool  # ``created`` is the wall-clock time where it was filmed (Apple's creationdate)
    lat: float | None
    lon: float | None
    frames: list[Frame] = field(default_factory=list)
    keyframes_decoded: int = 0
    frames_decoded: int = 0


class FramePicker:
    """The frame choice of steps 2 and 3, on keyframes offered in time order: ``offer`` returns
    which to keep now, ``"prev"`` (the keyframe offered before) and/or ``"this"``."""

    def __init__(self, interval: float, scene_change: float = SCENE_CHANGE) -> None:
        self.interval = interval
        self.scene_change = scene_change
        self.last_kept: float | None = None
        self._prev: tuple[float, np.ndarray, bool] | None = None  # (at, signature, kept)

    def offer(self, at: float, signature: np.ndarray) -> list[str]:
        keep: list[str] = []
        prev = self._prev
        if prev is None:
            keep.append("this")
        else:
            p_at, p_sig, p_kept = prev
            assert self.last_kept is not None
            if not p_kept and at - self.last_kept > self.interval and p_at > self.last_kept:
                keep.append("prev")  # the last keyframe before the interval runs out
                self.last_kept = p_at
            changed = difference(p_sig, signature) >= self.scene_change
            if changed or at - self.last_kept >= self.interval:
                keep.append("this")
        if "this" in keep:
            self.last_kept = at
        self._prev = (at, signature, "this" in keep)
        return keep


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two grey signatures, 0 (same) to 1."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0


def gaps(kept: list[float], duration: float, interval: float) -> list[float]:
    """The moments to decode so that no two indexed frames (nor the last and the end) are more
    than ``interval`` apart (step 3's seeks)."""
    targets: list[float] = []
    edges = [*sorted(kept), max(duration, kept[-1] if kept else 0.0)]
    for a, b in itertools.pairwise(edges):
        t = a + interval
        while t < b - 1e-6 and b - a > interval:
            targets.append(round(t, 3))
            t += interval
    return targets


def thin(items: list[Any], most: int) -> list[Any]:
    """At most ``most`` of ``items``, evenly spaced, the first kept."""
    if len(items) <= most:
        return list(items)
    if most <= 1:
        return items[:1]
    step = (len(items) - 1) / (most - 1)
    return [items[round(i * step)] for i in range(most)]


def samples(duration: float, most: int) -> list[float]:
    """Step 4's evenly spaced moments in a long video."""
    return [round(i * duration / most, 3) for i in range(most)]


def read_video(
    source: str | Path | bytes,
    limits: VideoLimits,
    side: int,
    *,
    name: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[], object] | None = None,
) -> Video:
    """The frames to index of the video in ``source`` (a path or the file's bytes) and what the
    container says; ``BadImage`` with a one-line reason when it cannot be read.

    ``pause`` is called before each keyframe is decoded: the indexer's waits there while a search
    computes (``QueryGate.wait_clear``), so a long video yields the cores as a photo does between
    files. Time spent in it does not count against ``limits.time_limit``."""
    import av

    label = name or (str(source) if not isinstance(source, bytes) else "<video>")
    deadline = clock() + limits.time_limit
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")
    except av.FFmpegError as e:
        raise BadImage(label, f"not a readable video ({_why(e)})") from e
    except OSError as e:
        raise BadImage(label, f"cannot read file ({e.strerror or e})") from e
    with container:
        if not container.streams.video:
            what = "an audio-only file?" if container.streams.audio else "damaged, or not a video"
            raise BadImage(label, f"no video stream ({what})")
        reader = _Reader(container, container.streams.video[0], limits, side, label, deadline, clock)
        reader.pause = pause
        try:
            return reader.read()
        except av.FFmpegError as e:
            raise BadImage(label, f"cannot decode the video ({_why(e)})") from e


def _why(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).splitlines()[0][:200] if text else type(e).__name__


class _Reader:
    """One video being read (``read_video``): the container, its video stream and the clock."""

    def __init__(
        self, container: Any, stream: Any, limits: VideoLimits, side: int, label: str, deadline: float,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.container = container
        self.stream = stream
        self.limits = limits
        self.side = side
        self.label = label
        self.deadline = deadline
        self.clock = clock
        self.keyframes = 0
        self.decoded = 0
        self.turns = 0  # quarter turns that show a kept frame upright (``quarter_turns``)
        self.last_packet = 0.0  # the time of the last packet read (how far the file goes)
        self.start = stream_start(stream)
        self.pause: Callable[[], object] | None = None  # see ``read_video``
        stream.thread_type = "AUTO"

    def read(self) -> Video:
        duration = self._duration()
        frames: list[Frame]
        if duration > self.limits.max_frames * self.limits.interval:
            frames = self._sampled(duration)
        else:
            frames = self._keyframes()
            if not frames:
                raise BadImage(self.label, "no frame could be decoded (a damaged or empty video?)")
            self._check_complete(max(frames[-1].at, self.last_packet), duration)
            duration = max(duration, frames[-1].at)
            frames = self._filled(frames, duration)
        frames = thin(frames, self.limits.max_frames)
        if not frames:
            raise BadImage(self.label, "no frame could be decoded (a damaged or empty video?)")
        created, local = videometa.created(self.container.metadata)
        lat, lon = videometa.location(self.container.metadata)
        width, height = self._displayed_size()
        return Video(
            duration=round(duration, 3), width=width, height=height, created=created, local=local, lat=lat,
            lon=lon, frames=frames, keyframes_decoded=self.keyframes, frames_decoded=self.decoded,
        )  # fmt: skip

    def _displayed_size(self) -> tuple[int | None, int | None]:
        """The coded width and height, swapped when the frames are shown a quarter turn round."""
        ctx = self.stream.codec_context
        width, height = ctx.width or None, ctx.height or None
        return (height, width) if self.turns % 2 else (width, height)

    def _duration(self) -> float:
        if self.stream.duration is not None and self.stream.time_base:
            return float(self.stream.duration * self.stream.time_base)
        if self.container.duration is not None:
            return float(self.container.duration) / 1_000_000
        return 0.0

    def _check_complete(self, last: float, duration: float) -> None:
        """A video whose packets stop well before the end its header gives is truncated: it
        fails (with where it stops) rather than being indexed in part without a word."""
        if duration - last > max(TRUNCATED_S, self.limits.interval, 0.1 * duration):
            raise BadImage(self.label, f"truncated or damaged: it stops at {last:.1f} s of {duration:.1f} s")

    def _check_time(self) -> None:
        if self.clock() > self.deadline:
            raise BadImage(
                self.label, f"reading it took longer than {self.limits.time_limit:g} s ([video] time_limit)"
            )

    def _at(self, frame: Any) -> float | None:
        return None if frame.time is None else round(max(0.0, float(frame.time) - self.start), 3)

    def _kept(self, frame: Any) -> Frame:
        """A decoded frame to index: its moment and its picture, upright, at the model's size."""
        self.turns = quarter_turns(frame.rotation)
        return Frame(self._at(frame) or 0.0, picture(frame, short_side=self.side))

    def _decode(self, packet: Any) -> Iterator[Any]:
        """The frames of ``packet`` (None: flush); a damaged packet gives none."""
        import av

        if self.pause is not None and (packet is None or packet.is_keyframe):
            waited = self.clock()
            self.pause()
            self.deadline += self.clock() - waited
        self._check_time()
        try:
            frames = packet.decode() if packet is not None else self.stream.codec_context.decode(None)
        except av.error.InvalidDataError as e:
            log.debug("%s: damaged packet skipped (%s)", self.label, e)
            return
        for frame in frames:
            if frame.time_base is None:  # flushed out with no packet to take one from: time nan
                frame.time_base = self.stream.time_base
            yield frame

    def _keyframes(self) -> list[Frame]:
        """Steps 1-3 on the keyframes (reads the whole file, decodes its keyframes)."""
        picker = FramePicker(self.limits.interval)
        kept: list[Frame] = []
        prev: Any = None
        last_decoded = -math.inf
        packets = self.container.demux(self.stream)
        for packet in _packets(packets, self):
            if packet is not None and (not packet.is_keyframe or packet.size == 0):
                continue
            if packet is not None and packet.pts is not None and self.stream.time_base:
                t = float(packet.pts * self.stream.time_base) - self.start
                if t - last_decoded < MIN_GAP_S:
                    continue
                last_decoded = t
            for frame in self._decode(packet):
                at = self._at(frame)
                if at is None:
                    continue
                self.keyframes += 1
                self.decoded += 1
                signature = frame.reformat(*SIGNATURE_SIZE, format="gray").to_ndarray()
                for which in picker.offer(at, signature):
                    kept.append(self._kept(frame if which == "this" else prev))
                prev = frame
                if len(kept) >= _KEEP_FACTOR * self.limits.max_frames:
                    kept = thin(kept, self.limits.max_frames)
        return sorted(kept, key=lambda f: f.at)

    def _filled(self, kept: list[Frame], duration: float) -> list[Frame]:
        """Step 3's seeks: frames decoded at the moments keyframes do not cover."""
        targets = gaps([f.at for f in kept], duration, self.limits.interval)
        if not targets:
            return kept
        room = max(0, _KEEP_FACTOR * self.limits.max_frames - len(kept))
        found = [f for t in targets[:room] if (f := self._frame_at(t, any_frame=True)) is not None]
        return sorted({f.at: f for f in [*kept, *found]}.values(), key=lambda f: f.at)

    def _sampled(self, duration: float) -> list[Frame]:
        """Step 4: one keyframe at or before each of ``max_frames`` evenly spaced moments."""
        found: dict[float, Frame] = {}
        self.stream.codec_context.skip_frame = "NONKEY"  # after a seek: the keyframe, nothing else
        for t in samples(duration, self.limits.max_frames):
            frame = self._frame_at(t, any_frame=False)
            if frame is not None:
                found.setdefault(frame.at, frame)
        return sorted(found.values(), key=lambda f: f.at)

    def _frame_at(self, t: float, *, any_frame: bool) -> Frame | None:
        """The frame at ``t`` (``any_frame``: decoding on from the keyframe before it), or the
        keyframe at or before ``t``."""
        frame = frame_at(self.container, self.stream, t, keyframe=not any_frame, frames=self._decoded)
        if frame is None:
            return None
        if not any_frame:
            self.keyframes += 1
        return self._kept(frame)

    def _decoded(self) -> Iterator[Any]:
        """The frames decoded on from where the container stands, to the end of the stream."""
        for packet in _packets(self.container.demux(self.stream), self):
            for frame in self._decode(packet):
                self.decoded += 1
                yield frame


def _packets(packets: Iterator[Any], reader: _Reader) -> Iterator[Any]:
    """The demuxed packets, then None (flush the decoder); a damaged container stops the list."""
    import av

    while True:
        reader._check_time()
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.InvalidDataError as e:
            log.debug("%s: stops at damaged data (%s)", reader.label, e)
            break
        if packet.dts is None and packet.size == 0:
            continue  # the demuxer's own flush packet
        if packet.pts is not None and reader.stream.time_base:
            at = float(packet.pts * reader.stream.time_base) - reader.start
            reader.last_packet = max(reader.last_packet, at)
        yield packet
    yield None
