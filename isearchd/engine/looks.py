"""How an image looks, without the model: its perceptual hash and colour signature, computed from
decoded pixels at add time, and filled in the background for images added before they existed.

``look_of(image)``:

- ``phash``: the DCT perceptual hash (Zauner's pHash, as ``imagehash.phash`` computes it): the
  picture in grey at 32x32, its 2-D DCT-II, the 8x8 lowest frequencies, one bit each for "above
  their median". Resizing, re-encoding, small crops and brightness changes move few of the 64
  bits; a different picture moves about half.
- ``colours``: the mean RGB of a 4x4 grid. pHash is grey-level: the same shape in another colour
  has the same hash, and this is what tells them apart.

``look_backfill`` decodes each such image once (at a reduced scale for large JPEGs), ``CHUNK``
images a job in the engine's one queue. A file that is gone, or that was sent as bytes by a TCP
client before looks existed, is marked unreadable (it is never grouped; re-add it to hash it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from isearchd.engine.backfill import Backfill
from isearchd.errors import BadImage
from isearchd.files.images import load_image
from isearchd.store import ImageDatabase
from isearchd.store.looks import COLOUR_GRID, Look

if TYPE_CHECKING:
    from isearchd.engine.jobqueue import JobQueue

log = logging.getLogger(__name__)

_HASH_INPUT = 32  # side of the grey picture the DCT sees
_HASH_SIDE = 8  # 8x8 low frequencies = 64 bits
# Shorter side decoded for a look alone (the backfill, reused vectors): JPEGs decode at 1/8 scale
# down to it, so a look costs a few ms even for a 24 MP photo.
LOOK_MIN_SIDE = 64
# Images per backfill job: decoding 50 photos takes ~1 s on 2 cores, so an add waits at most that.
CHUNK = 50


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


_DCT = _dct_matrix(_HASH_INPUT)


def look_of(image: Image.Image) -> Look:
    """The perceptual hash and colour signature of a decoded RGB picture."""
    small = image.convert("L").resize((_HASH_INPUT, _HASH_INPUT), Image.Resampling.LANCZOS)
    grey = np.asarray(small, dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:_HASH_SIDE, :_HASH_SIDE]
    bits = (low > np.median(low)).ravel()
    phash = int(sum(1 << i for i, bit in enumerate(bits) if bit))
    rgb = image.convert("RGB").resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX)
    return Look(phash, np.asarray(rgb, dtype=np.uint8).tobytes())


def look_of_file(source: str | bytes, name: str | None = None) -> Look:
    """Decode ``source`` (a path or the file's bytes) at a small scale and compute its look."""
    return look_of(load_image(source, min_side=LOOK_MIN_SIDE, name=name))


def look_backfill(jobs: JobQueue) -> Backfill:
    """Looks for images added before they existed: each decoded once, at a small scale."""

    def step(db: ImageDatabase, chunk: int) -> tuple[int, int]:
        looks: list[tuple[int, Look | None]] = []
        for ident, path in db.unknown_looks(chunk):
            try:
                looks.append((ident, look_of_file(path)))
            except BadImage as e:
                log.info("no look for %s: %s", path, e)
                looks.append((ident, None))
        db.store_looks(looks)
        return len(looks), sum(look is None for _, look in looks)

    return Backfill(jobs, "hashing for dups", lambda db: db.count_unknown_looks(), step, CHUNK)
