"""Face crops for the web page's People view: a square around a face, cut from the indexed photo.

A crop is a thumbnail like the others (``isearchd.web.thumbs``): made on first request in the
thumbnails' worker pool, from the path the catalog holds and only while the file still holds the
indexed image (same size, time and content hash), kept in the same cache (keyed by the content
hash and the box: copies of a photo share their crops) and ``None`` (a placeholder) otherwise.

The box is in the photo's own pixels after EXIF orientation (as the faces analysis stores it), so
the picture is decoded as thumbnails decode it (orientation applied), at the smallest JPEG draft
scale that still gives the crop ``FACE_SIDE`` pixels, and the box is scaled to what was decoded.
"""

from __future__ import annotations

import logging
import math

from PIL import Image

from isearchd.errors import BadImage
from isearchd.files.images import load_image
from isearchd.messages import FaceLocation, ImageInfo
from isearchd.web.thumbs import Thumbnails, read_indexed, unchanged, webp

log = logging.getLogger(__name__)

__all__ = ["FACE_MARGIN", "FACE_SIDE", "crop_square", "face_crop", "face_key"]

FACE_SIDE = 160  # px: a crop's side (the People view shows them at 120-160 CSS px)
# Added around the box on each side, as a share of its larger side: the detector's box is tight
# (brows to chin), so hair and chin show and a face is recognisable at a glance.
FACE_MARGIN = 0.3
# No draft decoding at all: a photo whose size the catalog does not know.
_FULL = 1 << 16

Box = tuple[int, int, int, int]


def face_key(location: FaceLocation) -> str | None:
    """The crop's cache key (content hash and box); None for an image without a hash."""
    if location.image.hash is None:
        return None
    left, top, width, height = location.box
    return f"{location.image.hash}-{left}-{top}-{width}-{height}"


async def face_crop(thumbs: Thumbnails, location: FaceLocation) -> bytes | None:
    """The WebP crop of a face (``FaceLocation`` from the ``face`` op), or None (placeholder)."""
    key = face_key(location)
    if key is None or not unchanged(location.image):
        return None
    return await thumbs.cached(key, lambda: _cut(location.image, location.box))


def crop_square(box: Box, size: tuple[int, int]) -> Box:
    """The square to cut for ``box`` (left, top, width, height) in a picture of ``size``: the box
    widened by ``FACE_MARGIN`` on every side, centred on it, moved (and at worst shrunk) to fit
    the picture. Returned as left, top, right, bottom."""
    left, top, width, height = box
    pic_w, pic_h = size
    side = min(round(max(width, height) * (1 + 2 * FACE_MARGIN)), pic_w, pic_h)
    x = min(max(round(left + width / 2 - side / 2), 0), pic_w - side)
    y = min(max(round(top + height / 2 - side / 2), 0), pic_h - side)
    return x, y, x + side, y + side


def _decode_side(image: ImageInfo, box: Box) -> int:
    """The smallest shorter side to decode at so that the crop still has ``FACE_SIDE`` pixels."""
    if not image.width or not image.height:
        return _FULL
    crop_side = max(box[2], box[3]) * (1 + 2 * FACE_MARGIN)
    return max(1, math.ceil(FACE_SIDE * min(image.width, image.height) / max(crop_side, 1)))


def _cut(image: ImageInfo, box: Box) -> bytes | None:
    data = read_indexed(image)
    if data is None:
        return None
    try:
        picture = load_image(data, min_side=_decode_side(image, box), name=image.path)
    except BadImage as e:
        log.info("no face crop from %s: %s", image.path, e.message)
        return None
    scale_x = picture.width / image.width if image.width else 1.0
    scale_y = picture.height / image.height if image.height else 1.0
    scaled = (
        round(box[0] * scale_x),
        round(box[1] * scale_y),
        round(box[2] * scale_x),
        round(box[3] * scale_y),
    )
    face = picture.crop(crop_square(scaled, picture.size))
    face.thumbnail((FACE_SIDE, FACE_SIDE), Image.Resampling.LANCZOS)
    return webp(face)
