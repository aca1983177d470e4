"""What a photo says about itself: when it was taken, its size, where, and its file type.

``read_metadata(data, mtime_ns)`` parses only the header of bytes already in memory (Pillow reads
the EXIF block without decoding pixels), so it costs well under a millisecond beside the decode.

- Taken time: EXIF ``DateTimeOriginal`` (else ``DateTimeDigitized``, else ``DateTime``) with its
  ``OffsetTime*`` where the camera wrote one; without EXIF, the file's modification time in the
  daemon's local time zone. ``taken_source`` says which (``exif`` or ``mtime``). Dates filter and
  sort on the wall-clock time where the photo was taken (``taken_local``), which is what a person
  means by "photos from July 2019".
- Width and height after EXIF orientation (a portrait photo stored sideways is portrait).
- GPS position (decimal degrees) when present and plausible; the place it falls in is looked up
  offline (``isearchd.places``).
- File type: the format Pillow recognises (``jpeg``, ``png``, ``webp``, ``heif``...), not the
  name's extension; ``raw`` for camera RAW files, which are told by their name (``name=``): many
  are TIFF files that Pillow would read as a small TIFF. Their EXIF comes from the RAW's header or
  its embedded JPEG (``isearchd.files.raw.raw_exif``), their size from LibRaw.
"""

from __future__ import annotations

import io
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image, UnidentifiedImageError

from isearchd.engine.places import Gazetteer
from isearchd.errors import InvalidRequest
from isearchd.files.formats import VIDEO_EXTENSIONS, is_raw_name
from isearchd.files.images import register_heif_opener
from isearchd.files.raw import RawError, raw_exif, raw_size
from isearchd.store.metadata import PhotoInfo
from isearchd.store.videos import PHOTO_TYPE, VIDEO_TYPE

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_ORIGINAL = 0x9011
_OFFSET_DIGITIZED = 0x9012
_OFFSET = 0x9010
_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
# Cameras with an unset clock write 0000:00:00 or 1970-ish dates; ignore dates before photography
# was digital-consumer plausible for a taken time read from EXIF.
_MIN_EXIF_YEAR = 1900

# Pillow's format names mapped to the short type names users filter by (`--type jpg,heic`).
TYPE_NAMES = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
              "TIFF": "tiff", "HEIF": "heic", "AVIF": "avif"}  # fmt: skip
# The type of every camera RAW file (CR2, NEF, DNG...): `--type raw`.
RAW_TYPE = "raw"
# What users type for a type and what it means.
TYPE_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heif": "heic", "hif": "heic"}


@dataclass(frozen=True)
class PhotoMeta:
    taken: str  # ISO 8601; with its UTC offset when known
    taken_local: str  # wall-clock "YYYY-MM-DDTHH:MM:SS" where it was taken (filters, sorting)
    taken_source: str  # "exif" or "mtime"
    width: int | None = None
    height: int | None = None
    lat: float | None = None
    lon: float | None = None
    type: str | None = None
    duration: float | None = None  # a video's length (``isearchd.engine.videoframes``)


def from_mtime(mtime_ns: int) -> tuple[str, str]:
    """(taken, taken_local) for a file's modification time, in this machine's time zone."""
    local = datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
    local = local.replace(microsecond=0)
    return local.isoformat(), local.replace(tzinfo=None).isoformat()


def read_metadata(data: bytes, mtime_ns: int, name: str | None = None) -> PhotoMeta:
    """Metadata of the image in ``data`` (``name``: its file name, which tells a camera RAW file);
    never raises for a bad or foreign header (it falls back to the modification time and leaves
    what it cannot read as None)."""
    mtime_taken, mtime_local = from_mtime(mtime_ns)
    if name is not None and is_raw_name(name):
        return _raw_metadata(data, mtime_taken, mtime_local)
    register_heif_opener()  # metadata may be read before anything was decoded in this process
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = TYPE_NAMES.get(img.format or "", (img.format or "").lower() or None)
            width, height = img.size
            exif = Image.Exif() if _png_without_exif(fmt, data) else img.getexif()
            orientation = exif.get(_ORIENTATION)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            taken = _exif_taken(exif)
            lat, lon = _exif_gps(exif)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, TypeError, KeyError,
            ZeroDivisionError, AttributeError, IndexError):  # fmt: skip
        # a header Pillow cannot parse: the decoder reports the file; metadata is best effort
        log.debug("no metadata readable", exc_info=True)
        return PhotoMeta(mtime_taken, mtime_local, "mtime")
    if taken is None:
        return PhotoMeta(mtime_taken, mtime_local, "mtime", width, height, lat, lon, fmt)
    return PhotoMeta(taken[0], taken[1], "exif", width, height, lat, lon, fmt)


def _raw_metadata(data: bytes, mtime_taken: str, mtime_local: str) -> PhotoMeta:
    """A camera RAW file's date and position from its EXIF, its size (upright) from LibRaw."""
    try:
        exif = raw_exif(data)
        taken = _exif_taken(exif)
        lat, lon = _exif_gps(exif)
    except (ValueError, TypeError, KeyError, ZeroDivisionError, AttributeError, IndexError, OSError):
        log.debug("no metadata readable in RAW file", exc_info=True)
        taken, (lat, lon) = None, (None, None)
    try:
        size = raw_size(data)
    except RawError:
        size = None  # a header cut short (the metadata pass reads the whole file then)
    width, height = size if size is not None else (None, None)
    if taken is None:
        return PhotoMeta(mtime_taken, mtime_local, "mtime", width, height, lat, lon, RAW_TYPE)
    return PhotoMeta(taken[0], taken[1], "exif", width, height, lat, lon, RAW_TYPE)


def _png_without_exif(fmt: str | None, data: bytes) -> bool:
    """A PNG with neither an eXIf chunk nor a "Raw profile type exif" text chunk has no EXIF:
    Pillow's ``getexif`` would decode the whole image to look behind the pixels for one (as long
    as the decode itself: ~40 ms for a 1080p PNG, benchmarks/bench_stages.py)."""
    return fmt == "png" and b"eXIf" not in data and b"Raw profile type exif" not in data


def _exif_taken(exif: Image.Exif) -> tuple[str, str] | None:
    sub: dict[int, Any] = {}
    try:
        sub = dict(exif.get_ifd(_EXIF_IFD))
    except (KeyError, ValueError, TypeError, OSError):
        sub = {}
    for tag, offset_tag in (
        (_DATETIME_ORIGINAL, _OFFSET_ORIGINAL),
        (_DATETIME_DIGITIZED, _OFFSET_DIGITIZED),
    ):
        parsed = _parse_exif_date(sub.get(tag), sub.get(offset_tag) or sub.get(_OFFSET))
        if parsed is not None:
            return parsed
    return _parse_exif_date(exif.get(_DATETIME), sub.get(_OFFSET))


def _parse_exif_date(value: Any, offset: Any) -> tuple[str, str] | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _EXIF_DATE.match(value.strip().strip("\x00"))
    if m is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    if local.year < _MIN_EXIF_YEAR:
        return None
    wall = local.isoformat()
    if isinstance(offset, bytes):
        offset = offset.decode("ascii", "replace")
    om = _OFFSET_RE.match(offset.strip().strip("\x00")) if isinstance(offset, str) else None
    if om is None:
        return wall, wall
    sign = -1 if om.group(1) == "-" else 1
    delta = timedelta(hours=int(om.group(2)), minutes=int(om.group(3)))
    if delta > timedelta(hours=14):
        return wall, wall
    return local.replace(tzinfo=timezone(sign * delta)).isoformat(), wall


def _exif_gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    try:
        gps = dict(exif.get_ifd(_GPS_IFD))
    except (KeyError, ValueError, TypeError, OSError):
        return None, None
    lat = _degrees(gps.get(2), gps.get(1), "S")
    lon = _degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    if lat == 0 and lon == 0:  # "null island": an unset GPS block, not a place
        return None, None
    return round(lat, 6), round(lon, 6)


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(v) for v in (d, m, s)):
        return None
    deg = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper().startswith(negative):
        deg = -deg
    return deg


def normalise_type(name: str) -> str:
    """A user's type name (``jpg``, ``.HEIC``, ``mp4``) as the catalog stores it (``jpeg``,
    ``heic``, ``video``; ``photo``: every type but video); ``InvalidRequest`` for a type no image
    of ours can have."""
    key = name.strip().lower().lstrip(".")
    known = sorted({*TYPE_NAMES.values(), RAW_TYPE, VIDEO_TYPE, PHOTO_TYPE})
    kind = TYPE_ALIASES.get(key, key)
    if "." + kind in VIDEO_EXTENSIONS:
        kind = VIDEO_TYPE  # videos are one type, whatever their container
    if kind not in known:
        raise InvalidRequest(
            f"unknown image type {name!r}; known types: {', '.join(known)} (jpg, tif, heif, mp4... too)"
        )
    return kind


def photo_infos(metas: list[PhotoMeta | None], places: Gazetteer | None) -> list[PhotoInfo | None]:
    """What the catalog stores for each photo, with the places of those that have a position
    (looked up together: one call into the gazetteer per batch)."""
    located = [i for i, m in enumerate(metas) if m is not None and m.lat is not None and m.lon is not None]
    found: dict[int, Any] = {}
    if located and places is not None:
        try:
            names = places.places([(metas[i].lat, metas[i].lon) for i in located])  # type: ignore[union-attr,misc]
            found = dict(zip(located, names, strict=True))
        except Exception:  # a broken gazetteer must not fail the add: the position is kept
            log.exception("place look-up failed; positions are stored without place names")
    out: list[PhotoInfo | None] = []
    for i, m in enumerate(metas):
        if m is None:
            out.append(None)
            continue
        place = found.get(i)
        out.append(
            PhotoInfo(
                taken=m.taken,
                taken_local=m.taken_local,
                taken_source=m.taken_source,
                width=m.width,
                height=m.height,
                lat=m.lat,
                lon=m.lon,
                city=place.city if place else None,
                region=place.region if place else None,
                country=place.country if place else None,
                type=m.type,
                duration=m.duration,
            )
        )
    return out
