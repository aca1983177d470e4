"""Duplicate grouping benchmark: the time `isearch dups` takes on a large database, and whether it
finds the planted copies and nothing else.

Builds a database of N clustered vectors (default 100,000, dim 512) through ``Database.add``, each
image with a synthetic look (a random 64-bit perceptual hash and random colours) and a size. It
plants ``--pairs`` copies (a vector at cosine ~0.99 to its original, a hash 1-6 bits away,
colours within a few levels, the same aspect ratio at half the size) and as many look-alikes (a
vector as close, but another picture's hash and colours: model candidates the pixels must turn
down). Then it times ``find_groups`` (what the daemon runs for `isearch dups`) with the default
rules and checks: recall (planted copies found as a group of exactly those two images) and
unplanted groups (any other group; must be 0).

Usage: python benchmarks/bench_dups.py [--n 100000] [--pairs 1000] [--out benchmarks/results/dups.json]
Not a test: numbers depend on the machine and its load; the script prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.engine import dups  # noqa: E402
from isearchd.store import Database, ImageRecord, PhotoInfo, SavePolicy  # noqa: E402
from isearchd.store.looks import COLOUR_GRID, Look  # noqa: E402
from isearchd.store.synthetic import clustered, normalised  # noqa: E402

BATCH = 2000
COLOUR_BYTES = COLOUR_GRID * COLOUR_GRID * 3
SIZES = ((4032, 3024), (3024, 4032), (1920, 1080), (1600, 1200), (1080, 1080))


def synthetic(n: int, dim: int, pairs: int, seed: int) -> dict[str, np.ndarray]:
    """Vectors, hashes, colours and sizes of ``n`` images; rows ``copy[i]`` are copies of rows
    ``orig[i]``, rows ``alike[i]`` look-alikes of ``orig[i]`` (model-close, pixel-different)."""
    data = clustered(n, dim, 0, seed=seed)[0]
    rng = np.random.default_rng(seed + 1)
    phash = rng.integers(0, 2**64, n, dtype=np.uint64)
    colours = rng.integers(0, 256, (n, COLOUR_BYTES), dtype=np.int64)
    size = np.array(SIZES)[rng.integers(0, len(SIZES), n)]
    chosen = rng.choice(n, 3 * pairs, replace=False)
    orig, copy, alike = chosen[:pairs], chosen[pairs : 2 * pairs], chosen[2 * pairs :]
    close = normalised(data[orig] + 0.12 * normalised(rng.standard_normal((pairs, dim))))
    data[copy] = close
    data[alike] = normalised(data[orig] + 0.12 * normalised(rng.standard_normal((pairs, dim))))
    for r, o in zip(copy, orig, strict=True):
        flips = rng.choice(64, int(rng.integers(1, 7)), replace=False)
        phash[r] = phash[o] ^ np.uint64(sum(1 << int(b) for b in flips))
    colours[copy] = np.clip(colours[orig] + rng.integers(-3, 4, (pairs, COLOUR_BYTES)), 0, 255)
    size[copy] = size[orig] // 2
    return {"data": data, "phash": phash, "colours": colours, "size": size, "orig": orig, "copy": copy}


def build(home: Path, s: dict[str, np.ndarray]) -> Database:
    data = s["data"]
    db = Database.open(
        home, "bench", model_key="bench", dim=data.shape[1], save_policy=SavePolicy(background=False)
    )
    for lo in range(0, len(data), BATCH):
        db.add([
            ImageRecord(
                f"/b/{i:07d}.jpg", f"/b/{i:07d}.jpg", 100_000 + i, 1, f"h{i}", data[i],
                PhotoInfo(width=int(s["size"][i][0]), height=int(s["size"][i][1]), type="jpeg"),
                Look(int(s["phash"][i]), bytes(s["colours"][i].astype(np.uint8).tolist())),
            )
            for i in range(lo, min(len(data), lo + BATCH))
        ])  # fmt: skip
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dups.json"))
    args = ap.parse_args()
    s = synthetic(args.n, args.dim, args.pairs, seed=7)
    planted = {frozenset((int(o), int(c))) for o, c in zip(s["orig"], s["copy"], strict=True)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = build(Path(tmp), s)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        groups = dups.find_groups(db, dups.DupRules())
        group_s = time.perf_counter() - t0
        db.close()
    found = [frozenset(int(im.label[3:10]) for im in g.images) for g in groups]
    recall = len(planted & set(found)) / len(planted)
    unplanted = sum(1 for g in found if g not in planted)
    method = "exact" if args.n <= dups.EXACT_MAX else "vector index"
    print(f"{'images':>8} {'planted':>8} {'candidates':<13} {'build s':>8} {'group s':>8}", end="")
    print(f" {'recall':>7} {'unplanted':>9}")
    print(f"{args.n:>8} {len(planted):>8} {method:<13} {build_s:>8.1f} {group_s:>8.1f}", end="")
    print(f" {recall:>7.3f} {unplanted:>9}")
    result = {
        "benchmark": "dups",
        "n": args.n,
        "dim": args.dim,
        "planted_pairs": len(planted),
        "look_alikes": args.pairs,
        "candidates": method,
        "build_s": round(build_s, 1),
        "group_s": round(group_s, 2),
        "recall": recall,
        "unplanted_groups": unplanted,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load": os.getloadavg()[0],
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
