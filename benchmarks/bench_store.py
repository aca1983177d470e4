"""Store benchmark: add throughput, search latency and recall, memory, reopen time.

For each size (default 10k and 100k vectors, dim 512) it builds a database through the public
``Database.add`` (batches of 1,000, the background saver on as in the daemon), then measures:
- add throughput (vectors/s, catalog commit + index insert);
- search p50/p99 (ms) and recall@10 against brute force, for image-like queries (near a stored
  vector, best cosine ~0.86) and text-like queries (CLIP's modality gap: best cosine ~0.3);
- RSS of this process after the build;
- reopen time after a clean close, and after kill -9 of a child process that added 2,000 more
  vectors (the index file lacks them: the reopen replays them from the catalog).

Usage: python benchmarks/bench_store.py [--sizes 10000 100000] [--out benchmarks/results/store.json]
Not a test: numbers depend on the machine and its load; the script prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.store import Database, ImageRecord, SavePolicy  # noqa: E402
from isearchd.store import vectors as vectors_mod  # noqa: E402
from isearchd.store.synthetic import clustered, normalised  # noqa: E402

K = 10
BATCH = 1000
UNCLEAN_EXTRA = 2000


def records(data: np.ndarray, lo: int, hi: int) -> list[ImageRecord]:
    return [
        ImageRecord(f"/bench/{i:07d}.jpg", f"/bench/{i:07d}.jpg", 1, 1, f"h{i}", data[i])
        for i in range(lo, hi)
    ]


def search_stats(db: Database, data: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :K]
    times, found = [], 0
    for q, want in zip(queries, truth, strict=True):
        t = time.perf_counter()
        hits = db.search(q, k=K)
        times.append((time.perf_counter() - t) * 1000)
        found += len({int(h.label.rsplit("/", 1)[1][:7]) for h in hits} & {int(i) for i in want})
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "recall_at_10": found / (len(queries) * K),
        "best_cos_mean": float(np.mean((queries @ data.T).max(axis=1))),
    }


CHILD = r"""
import sys, time
import numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from isearchd.store import Database, ImageRecord
home, extra = Path(sys.argv[1]), np.load(sys.argv[2])
db = Database.open(home, "bench", model_key="bench", dim=extra.shape[1])
start = db.count()
for lo in range(0, len(extra), 500):
    db.add([ImageRecord(f"/extra/{start + i}.jpg", f"/extra/{start + i}.jpg", 1, 1, f"x{start + i}", extra[i])
            for i in range(lo, min(len(extra), lo + 500))])
print("ACKED", flush=True)
time.sleep(600)
"""


def unclean_reopen(home: Path, dim: int) -> tuple[float, int]:
    extra = normalised(np.random.default_rng(99).standard_normal((UNCLEAN_EXTRA, dim)))
    npy = home / "extra.npy"
    np.save(npy, extra)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(npy), str(REPO)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ACKED", line
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    t = time.perf_counter()
    db = Database.open(home, "bench", model_key="bench", dim=dim, save_policy=SavePolicy(background=False))
    seconds = time.perf_counter() - t
    count = db.count()
    db.close()
    return seconds, count


def bench_size(n: int, dim: int, n_queries: int) -> dict[str, object]:
    data, image_q, text_q = clustered(n, dim, n_queries)
    with tempfile.TemporaryDirectory(prefix="isearch-bench-") as tmp:
        home = Path(tmp)
        db = Database.open(home, "bench", model_key="bench", dim=dim)
        t = time.perf_counter()
        for lo in range(0, n, BATCH):
            db.add(records(data, lo, min(n, lo + BATCH)))
        add_s = time.perf_counter() - t
        image = search_stats(db, data, image_q)
        text = search_stats(db, data, text_q)
        rss = psutil.Process().memory_info().rss
        t = time.perf_counter()
        db.close()
        close_s = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in (home / "bench").iterdir() if p.is_file())
        t = time.perf_counter()
        db = Database.open(
            home, "bench", model_key="bench", dim=dim, save_policy=SavePolicy(background=False)
        )
        reopen_clean = time.perf_counter() - t
        assert db.count() == n
        db.close()
        reopen_unclean, count = unclean_reopen(home, dim)
        assert count == n + UNCLEAN_EXTRA, count
    return {
        "n": n,
        "dim": dim,
        "add_vectors_per_s": n / add_s,
        "add_s": add_s,
        "image": image,
        "text": text,
        "rss_mb": rss / 2**20,
        "disk_mb": disk / 2**20,
        "close_s": close_s,
        "reopen_clean_s": reopen_clean,
        "reopen_unclean_s": reopen_unclean,
        "unclean_replayed_rows": UNCLEAN_EXTRA,
    }


def table(results: list[dict[str, object]]) -> str:
    head = (
        f"{'vectors':>8} {'add/s':>7} {'img p50':>8} {'img p99':>8} {'img R@10':>8} "
        f"{'txt p50':>8} {'txt p99':>8} {'txt R@10':>8} {'RSS MB':>7} {'disk MB':>7} "
        f"{'reopen':>7} {'unclean':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        im, tx = r["image"], r["text"]
        assert isinstance(im, dict) and isinstance(tx, dict)
        cells = [f"{r['n']:>8}", f"{r['add_vectors_per_s']:>7.0f}"]
        for kind in (im, tx):
            cells += [
                f"{kind['p50_ms']:>6.2f}ms",
                f"{kind['p99_ms']:>6.2f}ms",
                f"{kind['recall_at_10']:>8.3f}",
            ]
        cells += [f"{r['rss_mb']:>7.0f}", f"{r['disk_mb']:>7.0f}"]
        cells += [f"{r['reopen_clean_s']:>6.2f}s", f"{r['reopen_unclean_s']:>7.2f}s"]
        lines.append(" ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "store.json")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        print(f"building {n} x {args.dim} ...", file=sys.stderr, flush=True)
        results.append(bench_size(n, args.dim, args.queries))
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "params": {
            "M": vectors_mod.HNSW_M,
            "ef_construction": vectors_mod.HNSW_EF_CONSTRUCTION,
            "ef_search": vectors_mod.EF_SEARCH,
            "ef_far": vectors_mod.EF_FAR,
            "far_query_cos": vectors_mod.FAR_QUERY_COS,
            "exact_max_rows": vectors_mod.EXACT_MAX_ROWS,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
