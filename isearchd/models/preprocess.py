"""CLIP image preprocessing, equal to open_clip's evaluation transform for these models.

open_clip (and TinyCLIP) evaluate with ``Resize(size, bicubic)`` of the shorter side,
``CenterCrop(size)``, ``ToTensor()`` and ``Normalize(CLIP mean, CLIP std)``. This module does the
same steps with Pillow and numpy (same resize call, same crop offsets, same float32 arithmetic),
so the pixels match torchvision's bit for bit, without building a torchvision pipeline per call.
``preprocess_array`` is the torch-free form the ONNX Runtime path uses; ``preprocess`` wraps it
in a tensor for the torch path (torch is imported only there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

__all__ = ["CLIP_MEAN", "CLIP_STD", "fit", "preprocess", "preprocess_array"]

# OpenAI CLIP's normalisation, used by every TinyCLIP model.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int): shorter side to ``size``, longer side scaled and truncated."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def preprocess(
    image: Image.Image,
    size: int,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
) -> torch.Tensor:
    """An RGB image as a normalised float32 tensor of shape (3, size, size)."""
    import torch

    return torch.from_numpy(preprocess_array(image, size, mean, std))


def preprocess_array(
    image: Image.Image,
    size: int,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
) -> np.ndarray:
    """An RGB image as a normalised float32 array of shape (3, size, size)."""
    image = fit(image, size)
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    pixels -= np.asarray(mean, dtype=np.float32)
    pixels /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def fit(image: Image.Image, size: int) -> Image.Image:
    """An RGB image resized (shorter side to ``size``, bicubic) and centre-cropped to size x size.

    The costly part of preprocessing. A fitted image is left as it is by ``fit`` and so by
    ``preprocess_array``: fitting early (the indexer does, in its decode threads) changes no pixel.
    """
    if image.mode != "RGB":
        raise ValueError(f"preprocess expects an RGB image, got mode {image.mode!r}")
    width, height = image.size
    new_w, new_h = _resized_size(width, height, size)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    # torchvision's CenterCrop offsets (the resized image is never smaller than the crop).
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    if (new_w, new_h) != (size, size):
        image = image.crop((left, top, left + size, top + size))
    return image
