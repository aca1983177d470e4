"""Decoding image files into RGB pictures the model can embed.

``load_image`` is the one way ImgSearch turns a file (or uploaded bytes) into pixels. It

- applies the EXIF orientation, so a phone photo taken upright is embedded upright (HEIF: its
  own rotation and mirror instead, see ``_apply_orientation``);
- converts every Pillow mode to 8-bit RGB (``to_rgb``): palette, transparency, CMYK, 16/32-bit
  integer and float grayscale, 1-bit;
- decodes large JPEGs at a reduced scale (``Image.draft``: libjpeg's DCT scaling, 1/2, 1/4 or
  1/8) when the picture is much larger than the model's input, keeping the shorter side at least
  ``min_side`` so the model's own resize still has full-resolution input to work from;
- refuses decompression bombs from the header, before any pixel is decoded;
- turns every failure into ``BadImage(name, reason)`` with a short reason a user can act on.

Transparent pixels are composited over a fixed white background (``BACKGROUND``), the way a
viewer shows a transparent PNG on a page: the embedding then does not depend on whatever colour
happens to be stored under fully transparent pixels.

Formats: Pillow's own (JPEG, PNG, BMP, WebP, GIF, TIFF; AVIF in Pillow's wheels from 11.3 on),
HEIF/HEIC through pillow-heif's Pillow plugin, which ``load_image`` registers on its first call
(``register_heif_opener``), never at import, and camera RAW files (told by their name's
extension) through LibRaw: their embedded JPEG preview decoded as a JPEG, or a half-size
demosaic (``isearchd.files.raw``).

That registration is the one change made to global Pillow state. Nothing here touches its limits
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``): truncated files stay errors and
the pixel bound is our own.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import stat
import threading
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from isearchd.errors import BadImage
from isearchd.files.formats import IMAGE_EXTENSIONS, is_image_name, is_raw_name
from isearchd.files.raw import RawError, read_raw, transpose

log = logging.getLogger(__name__)

# The largest picture we decode, in pixels. A full decode costs 3-4 bytes per pixel (this bound:
# ~360 MB as RGBA), and a tiny file can claim any size in its header (a 40000x40000 PNG of one
# colour compresses to a few kB). The value equals Pillow's own default warning threshold, so
# Pillow's DecompressionBombWarning only ever fires for pictures we refuse anyway: the outcome is
# the same whether warnings are errors (tests) or not (daemon). Still above every common camera
# (a 61 MP full-frame sensor, 9504x6336), below 100 MP medium format.
MAX_PIXELS = 89_478_485

# Decode a JPEG at reduced scale only when its shorter side is at least this many times
# ``min_side``: below that the saving is small (at most 1/2 scale) and not worth the quality cost.
DRAFT_MIN_RATIO = 2

# Formats decoded by libjpeg, which can scale while decoding (MPO: phones' multi-picture JPEG).
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})

# Composited under transparent pixels; fixed, so the same file always embeds the same way.
BACKGROUND = (255, 255, 255)

_MAGIC = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_FORMAT_NAMES = {"MPO": "JPEG", "WEBP": "WebP"}  # Pillow format -> the name users know

# ISO base media file brands (the ``ftyp`` box) that name a HEIF or an AVIF file. ``mif1`` and
# ``msf1`` are generic: the compatible brands that follow say which codec.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)

# Formats whose decoder already applies the container's own rotation and mirror (HEIF's irot and
# imir boxes; pillow-heif's Pillow format name is "HEIF" for .heic and .heif alike).
_SELF_ORIENTING_FORMATS = frozenset({"HEIF"})

# Formats whose Pillow plugin wraps a library (libheif, libavif) with more to say about a file it
# cannot open than Pillow's "cannot identify image file".
_CONTAINER_FORMATS = frozenset({"HEIF", "AVIF"})

_heif_lock = threading.Lock()
_heif_registered = False


def register_heif_opener() -> None:
    """Let Pillow open HEIF/HEIC files (pillow-heif's plugin): once per process, thread-safe.

    Pillow's own plugins are loaded first so that its AVIF plugin is asked before pillow-heif's:
    both accept the generic ``mif1`` brand, and pillow-heif 1.x has no AV1 decoder. Should
    pillow-heif be unusable (missing, or its library fails to load), other formats still decode
    and HEIF files fail as unsupported.
    """
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if _heif_registered:
            return
        Image.init()
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError as e:  # pillow-heif defers its C library's ImportError to the first use
            log.warning("HEIC/HEIF images cannot be decoded: pillow-heif is not usable (%s)", e)
        _heif_registered = True


def load_image(
    source: str | Path | bytes,
    *,
    min_side: int = 224,
    name: str | None = None,
    preview_side: int | None = None,
) -> Image.Image:
    """Decode ``source`` (a file path or the file's bytes) into an 8-bit RGB image.

    ``min_side`` is the smallest shorter side the caller needs (the model's input size): large
    JPEGs are decoded at reduced scale down to, but never below, it. ``name`` labels the source in
    errors (default: the path, or ``"image data"`` for bytes); a name (or path) with a camera RAW
    extension is decoded as RAW, from its embedded preview when the preview's shorter side is at
    least ``preview_side`` (default ``min_side``), else by a half-size demosaic.

    Raises ``BadImage(name, reason)`` for anything that is not a decodable picture: missing or
    empty file, unknown format, truncated or corrupt data, more than ``MAX_PIXELS`` pixels.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "image data"
        data = bytes(source)
        if not data:
            raise BadImage(label, "empty file")
        if is_raw_name(label):
            return _decode_raw(data, label, min_side, preview_side or min_side)
        return _decode(io.BytesIO(data), label, min_side)

    label = name or str(source)
    with _open_image_file(source, label) as fp:
        if is_raw_name(label):
            return _decode_raw(fp.read(), label, min_side, preview_side or min_side)
        return _decode(fp, label, min_side)


def _decode_raw(data: bytes, label: str, min_side: int, preview_side: int) -> Image.Image:
    """A camera RAW file: its preview decoded as a JPEG and turned upright, or its demosaic. A
    preview whose header reads but whose pixels do not is passed over for the demosaic."""
    try:
        got = read_raw(data, label, preview_side=preview_side)
        if got.preview is not None:
            try:
                return transpose(_decode(io.BytesIO(got.preview), label, min_side), got.orientation)
            except BadImage as e:
                log.info("%s: embedded preview unusable (%s); demosaicing", label, e.reason)
                got = read_raw(data, label, preview_side=1 << 30)
    except RawError as e:
        raise BadImage(label, e.reason) from None
    assert got.pixels is not None  # read_raw gives a preview or pixels
    return Image.fromarray(got.pixels)  # H x W x 3 uint8: mode RGB


def read_image_file(path: str | Path, *, name: str | None = None) -> bytes:
    """The bytes of an image file, with ``load_image``'s one-line errors (``BadImage``) for a
    missing, empty, unreadable or special file."""
    label = name or str(path)
    with _open_image_file(path, label) as fp:
        return fp.read()


def _open_image_file(path: str | Path, label: str) -> IO[bytes]:
    try:
        fp, st = open_regular(Path(path))
    except NotRegularFile as e:
        raise BadImage(label, e.reason) from None
    except FileNotFoundError:
        raise BadImage(label, "file not found") from None
    except IsADirectoryError:
        raise BadImage(label, "is a directory, not an image file") from None
    except PermissionError:
        raise BadImage(label, "permission denied") from None
    except OSError as e:
        raise BadImage(label, f"cannot read file ({e.strerror or e})") from None
    if st.st_size == 0:
        fp.close()
        raise BadImage(label, "empty file")
    return fp


class NotRegularFile(OSError):
    """A name that is a FIFO, socket or device, not a file (reading it could block forever)."""

    reason = "not a regular file (a FIFO, socket or device)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(errno.EINVAL, self.reason, os.fspath(path))


def content_hash(data: bytes) -> str:
    """The catalog's content hash of a file's bytes (blake2b-128, hex): what finds duplicates at
    add and proves that a file still holds the image that was indexed."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def open_regular(path: str | os.PathLike[str]) -> tuple[IO[bytes], os.stat_result]:
    """``path`` opened for reading, with its ``fstat``; ``NotRegularFile`` for anything but a file.

    Opened with ``O_NONBLOCK``, so a FIFO that has an image's name (or took a file's place) is
    refused instead of blocking the reader; other ``OSError``s as ``open`` raises them.
    """
    fp = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    try:
        st = os.fstat(fp.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path)
    except BaseException:
        fp.close()
        raise
    return fp, st


def _decode(fp: IO[bytes], label: str, min_side: int) -> Image.Image:
    register_heif_opener()
    try:
        img = Image.open(fp)
    except UnidentifiedImageError:
        sniffed = _sniff_format(fp)
        if sniffed in _CONTAINER_FORMATS:
            raise BadImage(label, _container_reason(fp, sniffed)) from None
        if sniffed != "image":  # the magic bytes say what it is, Pillow cannot read this variant
            raise BadImage(label, f"unsupported or corrupt {sniffed}") from None
        raise BadImage(label, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as e:
        raise BadImage(label, f"image too large: {_bomb_reason(str(e))}") from None
    except Image.DecompressionBombWarning as e:  # raised only where warnings are errors
        raise BadImage(label, f"image too large: {_bomb_reason(str(e))}") from None
    except Exception as e:  # any other header parser failure
        raise BadImage(label, _reason(_sniff_format(fp), e)) from None
    fmt = _FORMAT_NAMES.get(img.format or "", img.format or "image")
    if fmt in _CONTAINER_FORMATS and _bmff_truncated(fp):
        img.close()
        raise BadImage(label, f"truncated {fmt}")
    with img:
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise BadImage(
                label, f"image too large: {width}x{height} pixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"
            )
        if width < 1 or height < 1:
            raise BadImage(label, f"invalid {fmt} (size {width}x{height})")
        try:
            if img.format in _DRAFT_FORMATS and min(width, height) >= DRAFT_MIN_RATIO * min_side:
                # libjpeg picks the largest 1/2^k scale keeping both sides >= min_side
                img.draft("RGB", (min_side, min_side))
            img.load()
        except Image.DecompressionBombError as e:
            raise BadImage(label, f"image too large: {_bomb_reason(str(e))}") from None
        except Exception as e:
            raise BadImage(label, _reason(fmt, e)) from None
        oriented = _apply_orientation(img, label)
        try:
            return to_rgb(oriented)
        except Exception as e:
            raise BadImage(label, f"cannot convert {fmt} mode {oriented.mode} to RGB ({e})") from None


def _sniff_format(fp: IO[bytes]) -> str:
    """The format named by the file's magic bytes, for errors raised before Pillow knows it."""
    try:
        fp.seek(0)
        head = fp.read(64)
    except (OSError, ValueError):
        return "image"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":  # box size, "ftyp", major brand, minor version, compatible brands
        end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return "image"


def _container_reason(fp: IO[bytes], fmt: str) -> str:
    """Why the plugin for a HEIF or AVIF file refused it. ``Image.open`` keeps only "cannot
    identify"; libheif and libavif say more ("Unexpected end of file", "BMFF parsing failed")."""
    opener = Image.OPEN.get(fmt)
    if opener is not None:
        try:
            fp.seek(0)
            opener[0](fp, "").close()  # header only: nothing is decoded
        except Exception as e:
            return _reason(fmt, e)
    return f"unsupported or corrupt {fmt}"


def _bmff_truncated(fp: IO[bytes]) -> bool:
    """Whether a HEIF/AVIF file ends inside one of its top-level boxes (ISO BMFF: ftyp, meta,
    mdat...), i.e. the file was cut short.

    The project's rule for every format is that a truncated file is refused, not shown partly
    decoded. libheif does not hold to it on its own: from pillow-heif 1.9 a HEIF missing the last
    bytes of its ``mdat`` box decodes (the missing tail is filled in), while 1.8 refused it. Box
    sizes make the rule exact and independent of the library: a box that claims more bytes than
    the file holds means the file is incomplete. A size of 0 means "to the end of the file".
    """
    try:
        end = fp.seek(0, io.SEEK_END)
        pos = 0
        while pos + 8 <= end:
            fp.seek(pos)
            header = fp.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1:  # a 64-bit size follows the type
                if len(header) < 16:
                    return True
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                return False
            if size < 8:  # not a box size: corrupt, which the decoder reports in its own words
                return False
            pos += size
        return pos > end
    except (OSError, ValueError):
        return False


def _apply_orientation(img: Image.Image, label: str) -> Image.Image:
    """Rotate/flip by the EXIF orientation tag. Broken EXIF costs the rotation, not the image.

    HEIF is the exception: libheif has already applied the file's own rotation and mirror (irot,
    imir), which the format makes authoritative over EXIF. iPhones write both, the same turn twice,
    so following EXIF too would rotate the picture twice. (pillow-heif also resets the EXIF tag to 1
    on open; this does not depend on that.) AVIF needs no exception: Pillow does not apply irot and
    imir while decoding but reports them as the EXIF orientation, in place of the file's own tag.
    """
    if img.format in _SELF_ORIENTING_FORMATS:
        return img.copy()  # the caller closes ``img``
    try:
        return ImageOps.exif_transpose(img)
    except Exception as e:
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", label, e)
        return img.copy()  # the caller closes ``img``


# How decoders say the data stopped early: Pillow, libjpeg, libheif, libavif.
_TRUNCATION_HINTS = ("truncated", "premature end", "end of file", "insufficient input data")


def _reason(fmt: str, e: Exception) -> str:
    """A short human reason for a Pillow decode failure."""
    text = " ".join(str(e).split())  # one line: libheif's messages can end in a newline
    low = text.lower()
    if isinstance(e, EOFError) or any(t in low for t in _TRUNCATION_HINTS):
        return f"truncated {fmt}"
    if isinstance(e, MemoryError):
        return f"out of memory decoding {fmt}"
    if "decoder" in low and "not available" in low:
        return f"unsupported {fmt} variant ({text})"
    if "compression" in low or "unsupported" in low or "not supported" in low:
        return f"unsupported {fmt} variant ({text})"
    if text:
        return f"corrupt {fmt} ({text})"
    return f"corrupt {fmt} ({type(e).__name__})"


def _bomb_reason(message: str) -> str:
    """Pillow's bomb messages give the pixel count only: "Image size (N pixels) exceeds ..."."""
    for word in message.replace("(", " ").split():
        if word.isdigit():
            return f"{int(word) / 1e6:.1f} megapixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"
    return f"more than {MAX_PIXELS / 1e6:.1f} megapixels"


def reduced(image: Image.Image, side: int) -> Image.Image:
    """A copy of ``image`` whose shorter side is at most ``side`` (the analyses' picture)."""
    width, height = image.size
    scale = side / min(width, height)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; the input is not modified.

    - transparency (RGBA, LA, PA, RGBa, La, or a palette/grey/RGB image with a transparent colour):
      composited over the fixed white ``BACKGROUND``;
    - 16-bit grayscale (I;16, I;16L, I;16B, I;16N): scaled from 0..65535 to 0..255;
    - 32-bit integer ``I``: values within 0..65535 (a 16-bit picture widened by Pillow) are scaled as
      16-bit, anything else is stretched from its own minimum..maximum;
    - float ``F``: values within 0..1 are scaled by 255, anything else stretched from min..max;
    - CMYK, YCbCr, LAB, HSV, P, L, 1: Pillow's conversion.
    """
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_wide_to_8bit(img)).convert("RGB")  # 2-D uint8: mode L
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        if mode == "La":  # premultiplied grey+alpha: Pillow converts it to LA only
            img = img.convert("LA")
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")


def _wide_to_8bit(img: Image.Image) -> np.ndarray:
    """16/32-bit integer or float grayscale pixels as uint8, scaled by the format's range."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    sixteen_bit = img.mode.startswith("I;16") or (
        img.mode == "I" and arr.size > 0 and int(arr.min()) >= 0 and int(arr.max()) <= 65535
    )
    if sixteen_bit:
        scaled = arr.astype(np.float32) / 257.0
    elif img.mode == "F" and arr.size and float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0:
        scaled = arr.astype(np.float32) * 255.0
    else:
        wide = arr.astype(np.float64)
        lo, hi = (float(wide.min()), float(wide.max())) if wide.size else (0.0, 0.0)
        scaled = (wide - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(wide)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


__all__ = ["BACKGROUND", "IMAGE_EXTENSIONS", "MAX_PIXELS", "is_image_name", "load_image", "to_rgb"]
