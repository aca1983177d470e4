"""A video in the add pipeline: its frames decoded and fitted for the model, and its rows.

The indexer (``isearchd.engine.indexer``) hands a video file here in its decode pool: the file is
hashed in chunks (a video is never read into memory whole, unless a remote client sent its
bytes), its frames are chosen and decoded (``isearchd.files.video``) and each is fitted to the
model's input there, in parallel, like a photo. ``video_records`` then turns the embedded frames
into the video's rows (``isearchd.store.videos``): the first under the video's label, the others
under frame labels, each with its ``at``, the video's ``duration`` and ``type`` "video".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from isearchd.engine.looks import look_of
from isearchd.engine.photometa import PhotoMeta, from_mtime
from isearchd.files.video import VideoLimits, read_video
from isearchd.files.videometa import taken
from isearchd.store.videos import VIDEO_TYPE, frame_label

if TYPE_CHECKING:
    from PIL import Image

    from isearchd.store import ImageRecord
    from isearchd.store.looks import Look
    from isearchd.store.metadata import PhotoInfo

# Bytes read at a time while hashing a video file (the hash of a 1 GB video: ~1 s).
HASH_CHUNK = 1 << 20


class Fitter(Protocol):
    @property
    def image_size(self) -> int: ...

    def fit_image(self, image: Image.Image) -> Image.Image: ...


@dataclass(frozen=True)
class VideoFrames:
    """A video's frames ready for the model: (at, fitted picture, look) each, and what the
    container says (``meta``: taken, size, position, type video, duration)."""

    frames: list[tuple[float, Any, Look]]
    meta: PhotoMeta


def hash_file(fh: IO[bytes]) -> str:
    """``isearchd.files.images.content_hash`` of a file's bytes, read in chunks."""
    digest = hashlib.blake2b(digest_size=16)
    while chunk := fh.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def video_frames(
    source: str | bytes, mtime_ns: int, limits: VideoLimits, model: Fitter, name: str,
    pause: Callable[[], object] | None = None,
) -> VideoFrames:  # fmt: skip
    """Decode and fit the frames to index of the video at ``source`` (a path, or its bytes);
    ``BadImage`` when it cannot be read. ``pause``: called before each keyframe's decode (the
    query gate's wait, so searches go first within a long video too)."""
    video = read_video(source, limits, model.image_size, name=name, pause=pause)
    frames = [(f.at, model.fit_image(f.picture), look_of(f.picture)) for f in video.frames]
    when = taken(video.created, video.local)
    if when is None:
        moment, local = from_mtime(mtime_ns)
        source_name = "mtime"
    else:
        moment, local = when
        source_name = "video"
    meta = PhotoMeta(
        taken=moment, taken_local=local, taken_source=source_name, width=video.width, height=video.height,
        lat=video.lat, lon=video.lon, type=VIDEO_TYPE, duration=video.duration,
    )  # fmt: skip
    return VideoFrames(frames, meta)


def video_records(
    label: str, path: str, size: int, mtime_ns: int, digest: str, frames: VideoFrames,
    vectors: list[np.ndarray | None], info: PhotoInfo | None,
) -> list[ImageRecord]:  # fmt: skip
    """The rows of a video whose frames were embedded (``vectors[i]`` None: that frame failed)."""
    from isearchd.store import ImageRecord

    records = []
    for i, ((at, _, look), vec) in enumerate(zip(frames.frames, vectors, strict=True)):
        if vec is None:
            continue
        records.append(
            ImageRecord(
                label=label if i == 0 else frame_label(label, at),
                path=path,
                size=size,
                mtime_ns=mtime_ns,
                content_hash=digest if i == 0 else f"{digest}@{at:.3f}",
                vector=np.asarray(vec, dtype=np.float32),
                info=replace(info, at=at) if info is not None else None,
                look=look,
            )
        )
    if records and records[0].label != label:  # the first frame failed: the next one stands in
        records[0] = replace(records[0], label=label, content_hash=digest)
    return records
