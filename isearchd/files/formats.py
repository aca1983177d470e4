"""Which files are images (and videos) ImgSearch indexes: by name, before anything is read.

A known extension in any case (``.HEIC`` from iPhones), on a name that is not hidden. Decoding
(``isearchd.files.images``) decides whether the bytes really are such an image.
"""

from __future__ import annotations

import os
from pathlib import Path

# Camera RAW formats, read through LibRaw (``isearchd.files.raw``): Canon CR2/CR3, Nikon NEF/NRW,
# Sony ARW/SRF/SR2, Fujifilm RAF, Olympus ORF, Panasonic RW2, Pentax PEF, Adobe DNG.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef", ".dng"}
)
# What a camera writes beside a RAW file in RAW+JPEG mode (or a phone beside its DNG): the
# picture a RAW file is paired with and shown as (``isearchd.engine.rawpairs``).
DEVELOPED_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".hif"})

IMAGE_EXTENSIONS: frozenset[str] = (
    frozenset(
        {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"}
    )
    | RAW_EXTENSIONS
)


def is_image_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like an image we index: a known extension, any case, not hidden."""
    base = Path(name).name
    if not base or base.startswith("."):
        return False
    return Path(base).suffix.lower() in IMAGE_EXTENSIONS


def is_raw_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is a camera RAW file's (a RAW extension, any case)."""
    return Path(name).suffix.lower() in RAW_EXTENSIONS


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
