"""What every loaded model shares, whichever backend runs it (torch or ONNX Runtime).

Torch-free on purpose: the ONNX Runtime model imports it in a daemon that never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from isearchd.errors import InvalidRequest
from isearchd.files.images import to_rgb
from isearchd.models.preprocess import fit


def check_texts(texts: Sequence[str]) -> None:
    """Refuse what cannot be a text query: non-strings and empty or whitespace-only text.

    Over-long text is not an error: the tokenizer truncates it to the context length.
    """
    for text in texts:
        if not isinstance(text, str):
            raise InvalidRequest(f"text query must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InvalidRequest("text query is empty")


class EmbeddingModel:
    """The read-only facts the engine and the store rely on; subclasses set the attributes."""

    _key: str
    _dim: int
    _image_size: int
    _context_length: int

    @property
    def key(self) -> str:
        """Registry key, or ``custom:<file name>`` for a custom checkpoint; ``+int8`` for int8."""
        return self._key

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._dim

    @property
    def image_size(self) -> int:
        """Side of the square the model sees (preprocessing resizes and crops to it)."""
        return self._image_size

    @property
    def context_length(self) -> int:
        """Token positions of the text tower (77 for CLIP)."""
        return self._context_length

    def fit_image(self, image: Image.Image) -> Image.Image:
        """The picture as the model will see it before normalisation: RGB, resized and cropped
        to ``image_size``. ``embed_images`` of a fitted picture gives the same embedding as of
        the original, and skips that work (the indexer fits in its decode threads)."""
        return fit(to_rgb(image), self._image_size)
