"""``Model``: a loaded CLIP that turns pictures and text into unit vectors.

One object per loaded model. It owns the preprocessing (from the model's own config, so the
two cannot drift), the tokenizer call and the towers; it computes in float32 under
``torch.inference_mode`` (no autocast: a file compared with itself is exactly 100 %).

Thread safety: any number of threads may call ``embed_images``/``embed_texts`` at once.
Preprocessing runs in the caller's thread; the forward passes are serialised by a
``PriorityLock`` (the towers use all of torch's intra-op threads anyway): indexing
(``embed_images(..., background=True)``) takes it per slice of ``BACKGROUND_RUN`` images, and a
query waiting for it goes before the next slice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from isearchd.files.images import to_rgb
from isearchd.models.base import EmbeddingModel, check_texts
from isearchd.models.exports import file_sha256, weights_id
from isearchd.models.preprocess import preprocess
from isearchd.models.priority import PriorityLock
from isearchd.models.towers import Towers

__all__ = ["Model", "file_sha256"]

log = logging.getLogger(__name__)

# Images per forward pass when indexing (``background=True``): a query waits for at most one.
# 8 as ONNX Runtime's slices; on CPU torch's output for an image can move by ~1e-7 with the
# number of images in its pass (measured, ViT-45LY: 1 or 2 vs 8), as it already did with the
# size of an indexing batch (the last batch of an add is smaller).
BACKGROUND_RUN = 8


class Model(EmbeddingModel):
    """A loaded model. Build it with ``isearchd.models.load_model``."""

    def __init__(
        self,
        *,
        key: str,
        towers: Towers,
        dim: int,
        image_size: int,
        context_length: int,
        weights_path: Path | None,
        device: torch.device,
    ) -> None:
        self._key = key
        self._towers = towers
        self._dim = dim
        self._image_size = image_size
        self._context_length = context_length
        self._weights_path = weights_path
        self._device = device
        self._weights_id: str | None = None
        self._lock = PriorityLock()  # serialises forward passes; queries first
        self._id_lock = threading.Lock()  # guards the lazily computed weights_id

    def __repr__(self) -> str:
        return f"Model(key={self._key!r}, dim={self._dim}, image_size={self._image_size})"

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def towers(self) -> Towers:
        """The network itself (for exporters and benchmarks); ``encode_image``/``encode_text``."""
        return self._towers

    @property
    def num_parameters(self) -> int:
        """Parameters actually held (a pruned model counts only what it kept)."""
        if isinstance(self._towers, nn.Module):
            return sum(p.numel() for p in self._towers.parameters())
        return 0

    @property
    def weights_id(self) -> str:
        """First 16 hex digits of the weights file's sha256 (computed on first use, then remembered)."""
        with self._id_lock:
            if self._weights_id is None:
                self._weights_id = weights_id(self._weights_path) if self._weights_path else "none"
            return self._weights_id

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One picture (any Pillow mode) as the normalised (3, size, size) tensor the model sees."""
        return preprocess(to_rgb(image), self._image_size)

    def embed_images(self, images: Sequence[Image.Image], *, background: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per image.

        ``background=True`` (indexing): queries waiting for the model go first, between slices
        of the batch.
        """
        if not images:
            return np.zeros((0, self._dim), dtype=np.float32)
        batch = torch.stack([self.preprocess(img) for img in images])
        return self.embed_pixels(batch, background=background)

    def embed_pixels(self, batch: torch.Tensor, *, background: bool = False) -> np.ndarray:
        """Embeddings of an already preprocessed (n, 3, size, size) batch."""
        if not background:
            with self._lock.foreground(), torch.inference_mode():
                return _to_numpy(self._towers.encode_image(batch.to(self._device, torch.float32)))
        outputs = []
        for start in range(0, len(batch), BACKGROUND_RUN):
            with self._lock.background(), torch.inference_mode():
                chunk = batch[start : start + BACKGROUND_RUN].to(self._device, torch.float32)
                outputs.append(_to_numpy(self._towers.encode_image(chunk)))
        return np.concatenate(outputs) if outputs else np.zeros((0, self._dim), dtype=np.float32)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP tokens, (n, context length); longer texts are truncated, empty ones refused."""
        check_texts(texts)
        return open_clip.tokenize(list(texts), context_length=self._context_length)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        tokens = self.tokenize(texts)
        with self._lock.foreground(), torch.inference_mode():
            features = self._towers.encode_text(tokens.to(self._device))
            return _to_numpy(features)


def _to_numpy(features: torch.Tensor) -> np.ndarray:
    normalised = F.normalize(features.float(), dim=-1)
    return np.ascontiguousarray(normalised.cpu().numpy(), dtype=np.float32)
