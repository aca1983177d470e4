"""How an image looks, without the model: its perceptual hash and colour signature, computed from
decoded pixels at add time, and filled in the background for images added before they existed.

``look_of(image)``:

- ``phash``: the DCT perceptual hash (Zauner's pHash, as ``imagehash.phash`` computes it): the
  picture in grey at 32x32, its 2-D DCT-II, the 8x8 lowest frequencies, one bit each for "above
  their median". Resizing, re-encoding, small crops and brightness changes move few of the 64
  bits; a different picture moves about half.
- ``colours``: the mean RGB of a 4x4 grid. pHash is grey-level: the same shape in another colour
  has the same hash, and this is what tells them apart.

Images added before looks existed get theirs from ``passes.LooksPass``, in the background.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from isearchd.files.images import load_image
from isearchd.store.looks import COLOUR_GRID, Look

log = logging.getLogger(__name__)

_HASH_INPUT = 32  # side of the grey picture the DCT sees
_HASH_SIDE = 8  # 8x8 low frequencies = 64 bits
# Shorter side decoded for a look alone (the looks pass, reused vectors): JPEGs decode at 1/8 scale
# down to it, so a look costs a few ms even for a 24 MP photo.
LOOK_MIN_SIDE = 64


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
