"""Camera RAW files (CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, DNG...) read through LibRaw (rawpy).

``read_raw(data, label, preview_side)`` gives what ``isearchd.files.images.load_image`` turns
into pixels, the cheapest way that is good enough:

1. the embedded JPEG preview (``extract_thumb``), when its shorter side is at least
   ``preview_side`` (the model's input): only LibRaw's header parse runs, the JPEG is decoded by
   libjpeg at reduced scale like any JPEG. Most cameras embed one of 1,600 px or more (CR2 and
   recent NEF/ARW a full-size one), so this is the common case: benchmarks/bench_raw.py;
2. otherwise (no preview, a small one, or one that does not decode) a half-size demosaic
   (``postprocess(half_size=True)``: one RGB pixel per 2x2 Bayer block, no interpolation; the
   camera's white balance, LibRaw's default brightness and sRGB gamma).

Orientation: the demosaic is turned by LibRaw (the RAW's own orientation, ``sizes.flip``). A
preview is turned by its own EXIF orientation tag when it has one (RAF previews carry the whole
EXIF); most previews have none (CR2, NEF, ARW, DNG) and are turned by the RAW's orientation.

Metadata (``raw_exif``): most RAW formats are TIFF files (CR2, NEF, NRW, ARW, SRF, SR2, PEF,
DNG; ORF and RW2 with their own magic number in place of TIFF's), whose first IFD holds the EXIF
and GPS blocks that ``isearchd.engine.photometa`` reads as for a JPEG. RAF embeds a JPEG with the
whole EXIF. CR3 is ISO media boxes: Canon's box inside ``moov`` holds the first IFD, the EXIF IFD
and the GPS IFD as three small TIFF files (CMT1, CMT2, CMT4), joined here into one EXIF.

Bad files: LibRaw's errors become one-line reasons (``RawError``). LibRaw runs in a thread of its
own with a time limit (``RAW_TIME_LIMIT`` s per file: a corrupt file must never hang an add); the
GIL is released while LibRaw works, so the wait is real. A LibRaw call cannot be interrupted: past
the limit its thread is left to finish alone (it is a daemon thread) and the file fails.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image

from isearchd.files.formats import RAW_EXTENSIONS

if TYPE_CHECKING:
    import rawpy

log = logging.getLogger(__name__)

# Seconds LibRaw may spend on one file (header, preview and demosaic together). A half-size
# demosaic of a 24 MP RAW takes ~0.15 s on one core here and the largest camera files (100+ MP)
# a few seconds, so only a file that sends LibRaw astray comes near it.
RAW_TIME_LIMIT = 30.0

# The largest half-size demosaic made, in output pixels (a 45 MP sensor gives ~11 MP). Bounds
# the memory a corrupt header claiming a huge sensor could make LibRaw ask for.
MAX_DEMOSAIC_PIXELS = 60_000_000

# LibRaw's orientation (``sizes.flip``) as the EXIF orientation tag that means the same turn.
_FLIP_TO_EXIF = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}

# EXIF orientation -> Pillow transpose (as ``ImageOps.exif_transpose``).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# TIFF-structured RAW formats whose magic number is not TIFF's (Olympus ORF, Panasonic RW2).
_TIFF_LIKE_MAGIC = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_RAF_MAGIC = b"FUJIFILMCCD-RAW"
_CR3_BRAND = b"ftypcrx "  # bytes 4-12 of a CR3 file
_CANON_BOX = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")  # the uuid box with the CMT boxes
# Canon's TIFF boxes in a CR3 -> where their tags go: the first IFD (None), the EXIF IFD, GPS IFD.
_CR3_TIFFS = {b"CMT1": None, b"CMT2": 0x8769, b"CMT4": 0x8825}

_T = TypeVar("_T")


class RawError(Exception):
    """A RAW file LibRaw cannot read; ``reason`` is the one line shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RawPicture:
    """What a RAW file gives: its embedded ``preview`` JPEG to decode and then turn by
    ``orientation`` (an EXIF orientation value; 1: already upright or turned by the JPEG's own
    tag), or the ``pixels`` of its demosaic, upright (H x W x 3, uint8)."""

    preview: bytes | None = None
    orientation: int = 1
    pixels: np.ndarray | None = None


def raw_format(name: str) -> str:
    """The format's name as users know it, from the file name (``IMG_1.cr2`` -> ``CR2``)."""
    suffix = Path(name).suffix.lower()
    return suffix[1:].upper() if suffix in RAW_EXTENSIONS else "RAW"


def read_raw(data: bytes, label: str, *, preview_side: int, time_limit: float = RAW_TIME_LIMIT) -> RawPicture:
    """The preview (when its shorter side is at least ``preview_side``) or the half-size demosaic
    of the RAW file in ``data``; ``RawError`` with a one-line reason for anything LibRaw cannot
    read, or past ``time_limit`` seconds."""
    fmt = raw_format(label)
    return _limited(lambda: _read(data, fmt, preview_side), time_limit, fmt)


def raw_preview(data: bytes, label: str, *, time_limit: float = RAW_TIME_LIMIT) -> bytes | None:
    """The largest embedded JPEG preview of a RAW file, as it is stored (no orientation applied),
    or None when it has none; ``RawError`` when LibRaw cannot read the file."""
    fmt = raw_format(label)

    def run() -> bytes | None:
        with _open(data, fmt) as raw:
            return _jpeg_thumb(raw)

    return _limited(run, time_limit, fmt)


def raw_exif(data: bytes) -> Image.Exif:
    """The EXIF of a RAW file's header (TIFF-based formats), else of its embedded JPEG (RAF); an
    empty ``Image.Exif`` when neither is readable. Reads only ``data`` (no LibRaw): the header
    alone (a file's first few hundred kB) is enough for most formats."""
    exif = Image.Exif()
    head = data[:4]
    try:
        if head in _TIFF_MAGIC:
            exif.load(data)
        elif head in _TIFF_LIKE_MAGIC:  # the same structure under another magic number
            exif.load((b"II*\x00" if head[:2] == b"II" else b"MM\x00*") + data[4:])
        elif data[4:12] == _CR3_BRAND:
            exif = _cr3_exif(data)
        elif data.startswith(_RAF_MAGIC):
            start = data.find(b"\xff\xd8\xff", len(_RAF_MAGIC))
            if start >= 0:
                with Image.open(io.BytesIO(data[start:])) as img:
                    exif = img.getexif()
    except Exception:  # best effort, as for any photo: a broken header costs the metadata only
        log.debug("no EXIF readable in RAW header", exc_info=True)
        return Image.Exif()
    return exif


def _cr3_exif(data: bytes) -> Image.Exif:
    """A CR3's EXIF: its CMT1 box as the first IFD, CMT2 and CMT4 as the EXIF and GPS IFDs, made
    into one TIFF structure (Pillow writes nested IFDs given as dicts) and read back."""
    tiffs: dict[bytes, bytes] = {}
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, start, stop in _boxes(data, body, end):
            if inner == b"uuid" and data[start : start + 16] == _CANON_BOX:
                tiffs = {k: data[b:e] for k, b, e in _boxes(data, start + 16, stop) if k in _CR3_TIFFS}
        break
    joined = Image.Exif()
    for box, ifd in _CR3_TIFFS.items():
        if box not in tiffs:
            continue
        if ifd is None:
            joined.load(tiffs[box])
        else:
            part = Image.Exif()
            part.load(tiffs[box])
            joined[ifd] = dict(part)
    exif = Image.Exif()
    if len(joined):
        exif.load(joined.tobytes())
    return exif


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The ISO media boxes from ``start`` to ``end``: (type, where its body starts, where it
    ends). Stops at the first box whose size does not fit."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        body = at + 8
        if size == 1 and at + 16 <= end:  # a 64-bit size follows the type
            size, body = struct.unpack_from(">Q", data, at + 8)[0], at + 16
        elif size == 0:  # the box runs to the end
            size = end - at
        if size < body - at or at + size > end:
            return
        yield kind, body, at + size
        at += size


def raw_size(data: bytes, *, time_limit: float = RAW_TIME_LIMIT) -> tuple[int, int]:
    """The developed picture's width and height, upright (LibRaw's header parse only)."""

    def run() -> tuple[int, int]:
        with _open(data, "RAW") as raw:
            sizes = raw.sizes
            width, height = int(sizes.width), int(sizes.height)
            return (height, width) if _FLIP_TO_EXIF.get(int(sizes.flip), 1) >= 5 else (width, height)

    return _limited(run, time_limit, "RAW")


def transpose(img: Image.Image, orientation: int) -> Image.Image:
    """``img`` turned as the EXIF orientation value says (1 or unknown: unchanged)."""
    method = _TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


# -- LibRaw ---------------------------------------------------------------------------------------


def _read(data: bytes, fmt: str, preview_side: int) -> RawPicture:
    with _open(data, fmt) as raw:
        orientation = _FLIP_TO_EXIF.get(int(raw.sizes.flip), 1)
        preview = _jpeg_thumb(raw)
        if preview is not None:
            usable = _preview_orientation(preview, preview_side)
            if usable is not None:
                return RawPicture(preview=preview, orientation=orientation if usable == 1 else 1)
        return RawPicture(pixels=_demosaic(raw, fmt))


def _open(data: bytes, fmt: str) -> rawpy.RawPy:
    import rawpy

    try:
        return rawpy.imread(io.BytesIO(data))
    except Exception as e:
        raise RawError(_reason(fmt, e)) from None


def _jpeg_thumb(raw: rawpy.RawPy) -> bytes | None:
    """The embedded JPEG preview LibRaw picks (the largest), or None: no preview, a bitmap one
    (old cameras' uncompressed thumbnails are small anyway), or one LibRaw cannot read."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except Exception:  # LibRawNoThumbnailError, an unsupported or damaged thumbnail
        return None
    if thumb.format != rawpy.ThumbFormat.JPEG or not isinstance(thumb.data, bytes):
        return None
    return thumb.data


def _preview_orientation(jpeg: bytes, preview_side: int) -> int | None:
    """Whether a preview JPEG is big enough: None if not (or unreadable); else its own EXIF
    orientation value, 1 when it has none (the RAW's orientation then applies)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as img:  # the header only
            if min(img.size) < preview_side:
                return None
            own = img.getexif().get(0x0112)
    except Exception:
        return None
    return own if own in _TRANSPOSE else 1


def _demosaic(raw: rawpy.RawPy, fmt: str) -> np.ndarray:
    sizes = raw.sizes
    if (sizes.width // 2) * (sizes.height // 2) > MAX_DEMOSAIC_PIXELS:
        raise RawError(f"{fmt} too large: {sizes.width}x{sizes.height} pixels")
    try:
        pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except Exception as e:
        raise RawError(_reason(fmt, e)) from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise RawError(f"unsupported {fmt} variant (demosaic gave {pixels.shape})")
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _reason(fmt: str, e: BaseException) -> str:
    """A short reason for a LibRaw failure. LibRaw reports a file that ends early as an
    input/output error (it reads from memory here, so there is no other I/O to fail)."""
    import rawpy

    detail = e.args[0] if e.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    detail = " ".join(str(detail).split()) or type(e).__name__
    if isinstance(e, rawpy.LibRawIOError):
        return f"truncated or unreadable {fmt} (LibRaw: {detail})"
    if isinstance(e, rawpy.LibRawFileUnsupportedError):
        return f"not a {fmt} file LibRaw can read ({detail})"
    if isinstance(e, MemoryError | rawpy.LibRawUnsufficientMemoryError | rawpy.LibRawTooBigError):
        return f"out of memory decoding {fmt} ({detail})"
    return f"corrupt {fmt} (LibRaw: {detail})"


def _limited(fn: Callable[[], _T], seconds: float, fmt: str) -> _T:
    """``fn()`` in a daemon thread, waited for at most ``seconds``: ``RawError`` past that (the
    thread is left to finish alone: LibRaw cannot be stopped from outside)."""
    box: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:
            failure.append(e)

    worker = threading.Thread(target=run, name="raw-decode", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        log.warning("a %s file took LibRaw more than %.0f s; its thread is left to finish", fmt, seconds)
        raise RawError(f"{fmt} decoding took longer than {seconds:g} s (time limit)")
    if failure:
        raise failure[0]
    return box[0]


__all__ = [
    "RAW_TIME_LIMIT", "RawError", "RawPicture",
    "raw_exif", "raw_format", "raw_preview", "raw_size", "read_raw", "transpose",
]  # fmt: skip
