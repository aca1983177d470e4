"""Which files are images ImgSearch indexes: by name, before anything is read.

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
