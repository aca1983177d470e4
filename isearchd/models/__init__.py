"""The model layer: the 11 TinyCLIP models (and custom open_clip checkpoints) as embedders.

Usage: ``m = load_model("ViT-45LY")`` (weights from the cache, or ``weights="file.pt"``), then
``m.embed_images([pil_image])`` and ``m.embed_texts(["a red circle"])``: float32 arrays of
shape (n, ``m.dim``) with unit-length rows. ``load_model(..., backend="auto")`` runs the
towers on ONNX Runtime when it can (``backend.py``); importing this package does not import
torch, so a process that only uses the ONNX path never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from isearchd.models.backend import load_model
from isearchd.models.registry import DEFAULT_MODEL, MODELS, ModelSpec

if TYPE_CHECKING:
    from isearchd.models.model import Model
    from isearchd.models.onnx_model import OnnxModel

__all__ = ["DEFAULT_MODEL", "MODELS", "Model", "ModelSpec", "OnnxModel", "load_model"]


def __getattr__(name: str) -> Any:
    # The model classes are imported on first use: ``Model`` needs torch, ``OnnxModel`` onnxruntime.
    if name == "Model":
        from isearchd.models.model import Model

        return Model
    if name == "OnnxModel":
        from isearchd.models.onnx_model import OnnxModel

        return OnnxModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
