"""Clustered random vectors that behave like CLIP embeddings, for recall tests and benchmarks.

Images cluster around topics and share a common direction; text queries sit far from the images
(CLIP's "modality gap": their best match has a cosine of about 0.3, against about 0.86 for an
image query), which is what makes them hard for a graph index. Face descriptors cluster around
the people they show (``synthetic_faces``). Never used by the daemon.
"""

from __future__ import annotations

import numpy as np

TOPICS = 200


def normalised(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, image-like queries, text-like queries), all L2-normalised float32, deterministic."""
    rng = np.random.default_rng(seed)
    image_mean, text_mean = normalised(rng.standard_normal(dim)), normalised(rng.standard_normal(dim))
    centers = normalised(rng.standard_normal((TOPICS, dim)))
    members = rng.integers(0, len(centers), n)
    data = normalised(
        0.55 * image_mean + 0.6 * centers[members] + 0.55 * normalised(rng.standard_normal((n, dim)))
    )
    picks = rng.integers(0, n, n_queries)
    image_q = normalised(data[picks] + 0.6 * normalised(rng.standard_normal((n_queries, dim))))
    topics = rng.integers(0, len(centers), n_queries)
    text_q = normalised(
        0.8 * text_mean + 0.4 * centers[topics] + 0.7 * normalised(rng.standard_normal((n_queries, dim)))
    )
    return data, image_q, text_q


def synthetic_faces(
    n: int, identities: int = 10, seed: int = 0, dim: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(identity of each face, descriptors float32) of ``n`` faces of ``identities`` people, like
    dlib's 128-d descriptors compared by Euclidean distance: Gaussian around random centres of
    norm 0.6, so two faces of one person are 0.31-0.47 apart (median 0.38) and faces of two
    people 0.76-1.08 (median 0.93)."""
    rng = np.random.default_rng(seed)
    centres = 0.6 * normalised(rng.standard_normal((identities, dim)))
    who = rng.integers(0, identities, n)
    return who, (centres[who] + 0.024 * rng.standard_normal((n, dim))).astype(np.float32)
