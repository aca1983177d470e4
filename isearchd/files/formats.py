"""Which files are images (and videos) ImgSearch indexes: by name, before anything is read.

A known extension in any case (``.HEIC`` from iPhones), on a name that is not hidden. Decoding
(``isearchd.files.images``) decides whether the bytes really are such an image.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"}
)


def is_image_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like an image we index: a known extension, any case, not hidden."""
    base = Path(name).name
    if not base or base.startswith("."):
        return False
    return Path(base).suffix.lower() in IMAGE_EXTENSIONS


# Videos are indexed as several frames each (``isearchd.files.video``); the containers phones and
# cameras write, and those FFmpeg's wheels in PyAV read as well.
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp"})


def is_video_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like a video we index: a known extension, any case, not hidden."""
    base = Path(name).name
    if not base or base.startswith("."):
        return False
    return Path(base).suffix.lower() in VIDEO_EXTENSIONS


def is_indexed_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is one ImgSearch indexes: an image or a video."""
    return is_image_name(name) or is_video_name(name)
