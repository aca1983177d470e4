"""The model layer: the 11 TinyCLIP models (and custom open_clip checkpoints) as embedders.

Usage: ``m = load_model("ViT-45LY")`` (weights from the cache, or ``weights="file.pt"``), then
``m.embed_images([pil_image])`` and ``m.embed_texts(["a red circle"])``: float32 arrays of
shape (n, ``m.dim``) with unit-length rows.
"""

from isearchd.models.loader import load_model
from isearchd.models.model import Model
from isearchd.models.registry import DEFAULT_MODEL, MODELS, ModelSpec

__all__ = ["DEFAULT_MODEL", "MODELS", "Model", "ModelSpec", "load_model"]
