"""The two stores behind ``isearchd.store.interface.Store``, for tests that must hold for both:
the embedded store in a temporary data home, and Qdrant in qdrant-client's local mode (a folder,
no server) as the machine "alpha"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from isearchd.store import EmbeddedStore, ImageRecord, SavePolicy, Store
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_store import QdrantStore

BACKENDS = ("embedded", "qdrant")
DIM = 32


def make_store(kind: str, tmp_path: Path, host: str = "alpha") -> Store:
    if kind == "embedded":
        return EmbeddedStore(tmp_path / "home", SavePolicy(background=False))
    return QdrantStore(QdrantLink.connect(f"qdrant://{tmp_path}/qdrant"), host=host)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(vecs: np.ndarray, prefix: str = "/photos", start: int = 0) -> list[ImageRecord]:
    return [
        ImageRecord(
            f"{prefix}/{start + i:05d}.jpg", f"{prefix}/{start + i:05d}.jpg", 1000 + i, 7, f"h{start + i}", v
        )
        for i, v in enumerate(vecs)
    ]
