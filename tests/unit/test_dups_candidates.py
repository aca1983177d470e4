"""Duplicate candidates from the vector index (large databases) group exactly what the exact scan
groups: the planted copies, not the look-alikes, and only images below the folder asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from isearchd.engine import dups
from isearchd.store import Database, ImageRecord, PhotoInfo, SavePolicy
from isearchd.store.looks import COLOUR_GRID, Look

DIM = 32
N = 3000
PAIRS = 60
RULES = dups.DupRules()


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def planted_db(home: Path) -> tuple[Database, set[frozenset[str]]]:
    """N random images below /a and /b; PAIRS copies (cosine ~0.99, hash 1-6 bits away, half
    size) and PAIRS look-alikes (as close, another hash); the last 10 copies in the other folder."""
    rng = np.random.default_rng(3)
    vecs = unit(rng.standard_normal((N, DIM)))
    phash = rng.integers(0, 2**64, N, dtype=np.uint64)
    colours = rng.integers(0, 256, (N, COLOUR_GRID * COLOUR_GRID * 3), dtype=np.int64)
    size = np.tile([1600, 1200], (N, 1))
    orig, copy, alike = np.split(rng.choice(N, 3 * PAIRS, replace=False), 3)
    vecs[copy] = unit(vecs[orig] + 0.1 * unit(rng.standard_normal((PAIRS, DIM))))
    vecs[alike] = unit(vecs[orig] + 0.1 * unit(rng.standard_normal((PAIRS, DIM))))
    for c, o in zip(copy, orig, strict=True):
        phash[c] = phash[o] ^ np.uint64(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(1, 7)))))
    colours[copy] = np.clip(colours[orig] + rng.integers(-3, 4, colours[orig].shape), 0, 255)
    size[copy] = size[orig] // 2
    folder = np.where(np.arange(N) % 2 == 0, "/a", "/b")
    folder[copy[-10:]] = np.where(folder[orig[-10:]] == "/a", "/b", "/a")
    labels = [f"{folder[i]}/{i:05d}.jpg" for i in range(N)]
    db = Database.open(home, "t", model_key="ViT-8Y", dim=DIM, save_policy=SavePolicy(background=False))
    db.add([
        ImageRecord(
            labels[i], labels[i], 1000 + i, 1, f"h{i}", vecs[i],
            PhotoInfo(width=int(size[i][0]), height=int(size[i][1])),
            Look(int(phash[i]), bytes(colours[i].astype(np.uint8).tolist())),
        )
        for i in range(N)
    ])  # fmt: skip
    return db, {frozenset((labels[o], labels[c])) for o, c in zip(orig, copy, strict=True)}


@pytest.mark.parametrize("exact_max", [0, N])
def test_graph_and_exact_candidates_find_the_planted_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_max: int
) -> None:
    monkeypatch.setattr(dups, "EXACT_MAX", exact_max)  # 0: every database takes the graph path
    if exact_max == 0:
        monkeypatch.setattr(dups, "candidate_pairs", None)  # the exact scan must not run
    db, planted = planted_db(tmp_path)
    try:
        groups = dups.find_groups(db, dups.DupRules())
        assert {frozenset(im.label for im in g.images) for g in groups} == planted
        assert all(g.images[0].label == g.keep for g in groups)
        assert all(g.images[0].width == 1600 and g.images[1].width == 800 for g in groups)
        below_a = {frozenset(im.label for im in g.images) for g in dups.find_groups(db, RULES, "/a")}
        assert below_a == {p for p in planted if all(label.startswith("/a/") for label in p)}
        assert 0 < len(below_a) < len(planted)
    finally:
        db.close()
