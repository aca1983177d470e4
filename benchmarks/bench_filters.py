"""Filtered search benchmark: recall@10 and latency when a filter lets 1 %, 10 %, 30 % or 60 % of
a library through.

Builds a database of N clustered vectors (default 100,000, dim 512) through ``Database.add``,
gives every image a taken date (a random permutation, so dates do not follow the clusters), then
for each selectivity searches with a date filter that lets exactly that share through and compares
the results with brute force over the images that pass: recall@10 and p50/p95 latency, for
image-like queries (best cosine ~0.86) and text-like ones (CLIP's modality gap, ~0.3). Up to
``vectors.FILTER_EXACT_MAX`` passing images the search ranks them exactly; above, it searches the
graph with a filter (an ef scaled by the share that passes).

Usage: python benchmarks/bench_filters.py [--n 100000] [--queries 100] [--out benchmarks/results/filters.json]
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
from datetime import date, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.store import Database, Filters, ImageRecord, PhotoInfo, SavePolicy  # noqa: E402
from isearchd.store import vectors as vectors_mod  # noqa: E402
from isearchd.store.synthetic import clustered  # noqa: E402

K = 10
BATCH = 2000
SHARES = (0.01, 0.10, 0.30, 0.60)
DAY0 = date(2000, 1, 1)


def taken(day: int) -> PhotoInfo:
    d = (DAY0 + timedelta(days=day)).isoformat() + "T12:00:00"
    return PhotoInfo(taken=d, taken_local=d, taken_source="exif", type="jpeg")


def build(home: Path, data: np.ndarray, days: np.ndarray) -> Database:
    db = Database.open(
        home, "bench", model_key="bench", dim=data.shape[1], save_policy=SavePolicy(background=False)
    )
    for lo in range(0, len(data), BATCH):
        hi = min(len(data), lo + BATCH)
        db.add([
            ImageRecord(f"/b/{i:07d}.jpg", f"/b/{i:07d}.jpg", 1, 1, f"h{i}", data[i], taken(int(days[i])))
            for i in range(lo, hi)
        ])  # fmt: skip
    return db


def measure(
    db: Database, data: np.ndarray, days: np.ndarray, queries: np.ndarray, share: float
) -> dict[str, float]:
    cutoff = int(np.quantile(days, share))  # days are a permutation of 0..n-1: exactly share pass
    passing = np.flatnonzero(days < cutoff)
    before = (DAY0 + timedelta(days=cutoff)).isoformat() + "T00:00:00"
    filters = Filters(before=before)
    sub = data[passing]
    times, found = [], 0
    for q in queries:
        want = set(passing[np.argsort(-(sub @ q))[:K]].tolist())
        t = time.perf_counter()
        hits = db.search(q, k=K, filters=filters)
        times.append((time.perf_counter() - t) * 1000)
        got = {int(h.label.rsplit("/", 1)[1][:7]) for h in hits}
        found += len(got & want)
    return {
        "passing": len(passing),
        "method": "exact" if len(passing) <= vectors_mod.FILTER_EXACT_MAX else "filtered graph",
        "recall@10": found / (K * len(queries)),
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "filters.json"))
    args = ap.parse_args()
    data, image_q, text_q = clustered(args.n, args.dim, args.queries, seed=7)
    days = np.random.default_rng(11).permutation(args.n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = build(Path(tmp), data, days)
        build_s = time.perf_counter() - t0
        for share in SHARES:
            for kind, queries in (("image", image_q), ("text", text_q)):
                r = {"share": share, "queries": kind, **measure(db, data, days, queries, share)}
                rows.append(r)
                print(
                    f"{share:>5.0%} {kind:<5} {r['passing']:>7} {r['method']:<14} "
                    f"recall@10 {r['recall@10']:.3f}  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms",
                    flush=True,
                )
        db.close()
    result = {
        "benchmark": "filters",
        "n": args.n,
        "dim": args.dim,
        "k": K,
        "build_s": round(build_s, 1),
        "filter_exact_max": vectors_mod.FILTER_EXACT_MAX,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
