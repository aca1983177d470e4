"""Thumbnails and full images for the web page, from the indexed files on the daemon's machine.

A picture is only ever read from the path the catalog holds for an image id, and only served
when the file still holds the indexed image: same size and modification time, and (whenever it
is read) the same content hash. Anything else (a file gone, changed, unreadable, or an image
that was sent as bytes over TCP and has no file here) is ``None``: the page shows a placeholder.

Thumbnails are WebP, ``THUMB_SIDE`` px on the long side, EXIF orientation applied (a camera RAW
file's: from its embedded preview, ``isearchd.files.raw``), made on first
request in a small worker pool (never in the threads that answer searches) and kept on disk
below the data home, keyed by content hash (copies of a photo share one), at most ``max_bytes``
in all: beyond it the oldest are removed. A deleted cache is simply made again. Face crops
(``isearchd.web.faces``) are made in the same pool and kept in the same cache.

A video's row (a frame: ``isearchd.web.videos``) shows the picture at its moment: its thumbnail
is that frame, keyed by the video's content hash and the moment, and its full image that frame as
JPEG; both are read only while the video's size and modification time are the indexed ones.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from isearchd.errors import BadImage
from isearchd.files.images import NotRegularFile, content_hash, load_image, open_regular
from isearchd.messages import ImageInfo
from isearchd.web.videos import VIDEO_TYPE, frame_at, frame_key

log = logging.getLogger(__name__)

THUMB_SIDE = 256
THUMB_QUALITY = 80
# The largest file served whole (bigger ones show a placeholder in the large view).
MAX_SERVED_BYTES = 256 * 1024 * 1024
# A camera RAW file's large view is its embedded preview when the preview's shorter side is at
# least this (most cameras embed 1,080 px or more), else its half-size demosaic. Its thumbnail
# is made from the preview whenever that is THUMB_SIDE or more.
RAW_VIEW_SIDE = 1000
# Formats browsers show as they are; the others (HEIC, TIFF, RAW) are served converted to JPEG.
WEB_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
             "avif": "image/avif", "bmp": "image/bmp"}  # fmt: skip
# A thumbnail read again after this long is marked as used (its mtime), for the eviction order.
TOUCH_AFTER_S = 24 * 3600
EVICT_TO = 0.9  # of max_bytes, once it is exceeded


class Thumbnails:
    def __init__(self, folder: Path, max_bytes: int, workers: int = 2) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbs")
        self._lock = threading.Lock()
        self._pending: dict[str, Future[bytes | None]] = {}
        self._total: int | None = None  # bytes in the cache, counted on first write

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.webp"

    # -- thumbnails ------------------------------------------------------------------------------

    async def thumbnail(self, image: ImageInfo) -> bytes | None:
        """The WebP thumbnail of an image (``Client.image_info``), or None (placeholder)."""
        if image.type == VIDEO_TYPE:
            key = frame_key(image)
            if key is None or not unchanged(image):
                return None
            return await self.cached(key, lambda: _frame_thumbnail(image))
        if image.hash is None or not unchanged(image):
            return None
        return await self.cached(image.hash, lambda: self._make(image))

    async def cached(self, key: str, make: Callable[[], bytes | None]) -> bytes | None:
        """The picture kept under ``key`` (it starts with a content hash); else ``make``'s, made
        in the worker pool (once, however many ask at the same time) and kept (None: not kept)."""
        cached = self._file(key)
        try:
            data = cached.read_bytes()
            if time.time() - cached.stat().st_mtime > TOUCH_AFTER_S:
                os.utime(cached)
            return data
        except OSError:
            pass
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                future = self._pool.submit(self._keep, key, make)
                self._pending[key] = future
                future.add_done_callback(lambda _f: self._forget(key))
        return await asyncio.wrap_future(future)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def _keep(self, key: str, make: Callable[[], bytes | None]) -> bytes | None:
        made = make()
        if made is not None:
            self._store(key, made)
        return made

    def _make(self, image: ImageInfo) -> bytes | None:
        data = read_indexed(image)
        if data is None:
            return None
        try:
            picture = load_image(data, min_side=THUMB_SIDE, name=image.path)
        except BadImage as e:
            log.info("no thumbnail for %s: %s", image.path, e.message)
            return None
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        return webp(picture)

    def _store(self, digest: str, thumb: bytes) -> None:
        target = self._file(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = target.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(thumb)
            tmp.replace(target)
        except OSError as e:  # a full or read-only disk: serve it anyway, just do not keep it
            log.warning("cannot keep a thumbnail in %s: %s", self.folder, e.strerror or e)
            return
        with self._lock:
            if self._total is None:
                self._total = self.size()
            else:
                self._total += len(thumb)
            over = self._total > self.max_bytes
        if over:
            self.evict()

    def size(self) -> int:
        """Bytes the cache holds on disk now."""
        return sum(f.stat().st_size for f in self.folder.glob("*/*.webp") if f.is_file())

    def evict(self) -> None:
        """Remove the least recently used thumbnails until the cache is below its bound."""
        entries = []
        for f in self.folder.glob("*/*.webp"):
            try:
                st = f.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, f))
        total = sum(size for _, size, _ in entries)
        entries.sort()
        for _, size, f in entries:
            if total <= self.max_bytes * EVICT_TO:
                break
            f.unlink(missing_ok=True)
            total -= size
        with self._lock:
            self._total = total

    # -- full images -----------------------------------------------------------------------------

    async def full(self, image: ImageInfo) -> tuple[bytes, str] | None:
        """The image's file as a browser can show it: ``(bytes, media type)``, or None (the
        worker's read checks size, modification time and content hash)."""
        return await asyncio.wrap_future(self._pool.submit(self._full, image))

    def _full(self, image: ImageInfo) -> tuple[bytes, str] | None:
        if image.type == VIDEO_TYPE:  # the picture at the row's moment
            frame = frame_at(image)
            return None if frame is None else (jpeg(frame), "image/jpeg")
        data = read_indexed(image)
        if data is None:
            return None
        kind = WEB_TYPES.get(image.type or "")
        if kind is not None:
            return data, kind
        try:  # HEIC, TIFF, RAW: what browsers cannot show, converted once per view
            picture = load_image(data, min_side=1 << 16, name=image.path, preview_side=RAW_VIEW_SIDE)
        except BadImage:
            return None
        return jpeg(picture), "image/jpeg"


def _frame_thumbnail(image: ImageInfo) -> bytes | None:
    frame = frame_at(image, THUMB_SIDE)
    return None if frame is None else webp(frame)


def webp(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=THUMB_QUALITY, method=4)
    return out.getvalue()


def jpeg(picture: Image.Image) -> bytes:
    """The large view's picture of what browsers cannot show as it is."""
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def unchanged(image: ImageInfo) -> bool:
    """Whether the image's file is still as it was indexed (size and modification time)."""
    try:
        st = Path(image.path).stat()
    except (OSError, ValueError):
        return False
    return st.st_size == image.bytes and st.st_mtime_ns == image.mtime_ns


def read_indexed(image: ImageInfo) -> bytes | None:
    """The file's bytes when they are exactly the indexed image's (its content hash)."""
    if image.bytes is None or image.bytes > MAX_SERVED_BYTES:
        return None
    try:
        fp, st = open_regular(image.path)
    except (OSError, ValueError, NotRegularFile):
        return None
    with fp:
        if st.st_size != image.bytes or st.st_mtime_ns != image.mtime_ns:
            return None
        data = fp.read(MAX_SERVED_BYTES + 1)
    if content_hash(data) != image.hash:
        return None
    return data
