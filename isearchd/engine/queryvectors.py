"""What a search's parts are as vectors: texts (cached), images (the stored vector of a photo of
the library, else the model's), and images of the database (``like``); and comparing two images.

Every embedding a search computes holds the query gate, so an add's decode threads start no new
file meanwhile (``gate.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

import numpy as np

from isearchd.errors import InvalidRequest, NotFound
from isearchd.files.images import content_hash, load_image, read_image_file

if TYPE_CHECKING:
    from PIL import Image

    from isearchd.engine.gate import QueryGate
    from isearchd.engine.query import Term
    from isearchd.store import ImageDatabase

__all__ = ["TEXT_CACHE_SIZE", "EngineModel", "QueryVectors"]

# Text embeddings kept for repeated queries: 512 floats each, so 1024 entries cost ~2 MB.
TEXT_CACHE_SIZE = 1024


class EngineModel(Protocol):
    """A loaded model (``isearchd.models``). Thread-safe: searches call it from the connection
    threads while an add runs; ``background=True`` marks indexing, which waiting queries go
    ahead of (each model runs one inference at a time, queries first)."""

    @property
    def key(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    def fit_image(self, image: Image.Image) -> Image.Image: ...

    def embed_images(self, images: list[Image.Image], *, background: bool = False) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


class QueryVectors:
    """The model's side of a search: query vectors and comparisons (thread-safe)."""

    def __init__(self, model: EngineModel, gate: QueryGate, text_cache_size: int = TEXT_CACHE_SIZE) -> None:
        self.model = model
        self.gate = gate
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._text_lock = threading.Lock()

    def text_vector(self, text: str) -> np.ndarray:
        if not text.strip():
            raise InvalidRequest("the search text is empty")
        with self._text_lock:
            vec = self._text_cache.get(text)
            if vec is not None:
                self._text_cache.move_to_end(text)
                return vec
        with self.gate.query():
            vec = self.model.embed_texts([text])[0]
        with self._text_lock:
            self._text_cache[text] = vec
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return vec

    def image_vector(self, db: ImageDatabase, source: str | bytes, name: str | None = None) -> np.ndarray:
        """The embedding of a query image (a daemon-side path or bytes). When ``db`` holds a
        picture with the same bytes (a search by a photo of the library), its stored vector is
        the answer: the model computed exactly that vector when it was added."""
        with self.gate.query():
            if not isinstance(source, bytes):  # read once: hashed here, decoded below
                name, source = name or source, read_image_file(source, name=name)
            known = db.vector_for_hash(content_hash(source))
            if known is not None:
                return known
            image = load_image(source, min_side=self.model.image_size, name=name)
            return self.model.embed_images([image])[0]

    def term_vector(self, db: ImageDatabase, term: Term) -> np.ndarray:
        if term.text is not None:
            return self.text_vector(term.text)
        if term.image is not None:
            return self.image_vector(db, term.image, term.name)
        assert term.like is not None
        record = db.get(term.like)
        if record is None or record.vector is None:
            raise NotFound(
                f"{term.like} is not an image of database {db.name!r}; add it first, or search by the "
                "image file itself"
            )
        return record.vector

    def compare(
        self, a: str | bytes, b: str | bytes, *, a_name: str | None = None, b_name: str | None = None
    ) -> float:
        """Similarity of two images in percent, 0-100, one decimal (an image with itself: 100.0)."""
        with self.gate.query():
            img_a = load_image(a, min_side=self.model.image_size, name=a_name)
            img_b = load_image(b, min_side=self.model.image_size, name=b_name)
            vecs = self.model.embed_images([img_a, img_b])
        cos = float(np.dot(vecs[0].astype(np.float64), vecs[1].astype(np.float64)))
        return round(min(100.0, max(0.0, cos * 100.0)), 1)
