"""How the store's cost grows with the library: 10k, 100k and 1M images (issue 15, item 4).

Synthetic clustered vectors (dim 512, the recipe of ``isearchd.store.synthetic.clustered``, drawn
in chunks of 50,000 so that 1M vectors never sit in memory as float64) go through the real store.
Each step runs in its own process, so that one step's memory cannot hide in another's:

1. baseline: a fresh process imports the store and opens an empty database (RSS with no images);
2. build: a process generates the vectors chunk by chunk and adds them through ``Database.add``
   (batches of 1,000, the background saver on, as in the daemon): add rate, its RSS at the end
   and its peak, close time;
3. daemon: a fresh process opens the built database (a clean open, timed) and runs 300
   image-like and 300 text-like searches: p50/p95 and recall@10 against brute force (computed
   here, chunk by chunk, keeping only a running top 10), and its RSS after them. This is the
   daemon's steady state; ``(daemon RSS - baseline RSS) / images`` is the growth per image;
4. kill -9: a process adds 2,000 more images and is killed; a fresh process times the reopen
   (the index file lacks those rows, which are replayed from the catalog).

Usage: python benchmarks/bench_growth.py [--sizes 10000 100000 1000000] [--keep DIR] [--reuse]
    [--code DIR] [--out benchmarks/results/growth.json] [--plot docs/growth.png]
``--keep`` leaves the built databases in DIR (``DIR/<size>``) and ``--reuse`` skips the build
when one is there; ``--code`` runs steps 1, 3 and 4 with another checkout's ``isearchd`` (to
measure code before and after a change on the same database: the on-disk format is shared).
A 1M run needs ~3 GB of memory per process, ~5 GB of disk and tens of minutes; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.store.synthetic import TOPICS, normalised  # noqa: E402

K = 10
BATCH = 1000
CHUNK = 50_000
UNCLEAN_EXTRA = 2000
DB = "bench"


# -- the data: clustered() drawn chunk by chunk ------------------------------------------------


def _means(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image_mean, text_mean = normalised(rng.standard_normal(dim)), normalised(rng.standard_normal(dim))
    return image_mean, text_mean, normalised(rng.standard_normal((TOPICS, dim)))


def chunks(n: int, dim: int, seed: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` of the n clustered unit vectors, deterministic, CHUNK rows at a time."""
    image_mean, _, centers = _means(dim, seed)
    for c, lo in enumerate(range(0, n, CHUNK)):
        rows = min(n, lo + CHUNK) - lo
        rng = np.random.default_rng([seed, c])
        members = rng.integers(0, TOPICS, rows)
        noise = normalised(rng.standard_normal((rows, dim)))
        yield lo, normalised(0.55 * image_mean + 0.6 * centers[members] + 0.55 * noise)


def queries(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image-like, text-like) queries, as ``clustered`` makes them."""
    _, text_mean, centers = _means(dim, seed)
    rng = np.random.default_rng([seed, 10**6])
    picks = rng.integers(0, n, n_queries)
    near = np.zeros((n_queries, dim), dtype=np.float32)
    for lo, rows in chunks(n, dim, seed):
        inside = (picks >= lo) & (picks < lo + len(rows))
        near[inside] = rows[picks[inside] - lo]
    image_q = normalised(near + 0.6 * normalised(rng.standard_normal((n_queries, dim))))
    topics = rng.integers(0, TOPICS, n_queries)
    text_q = normalised(
        0.8 * text_mean + 0.4 * centers[topics] + 0.7 * normalised(rng.standard_normal((n_queries, dim)))
    )
    return image_q, text_q


def truth(n: int, dim: int, qs: np.ndarray, seed: int = 0) -> np.ndarray:
    """Exact top-K row numbers per query (brute force, a running top K over the chunks)."""
    best_s = np.full((len(qs), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qs), K), dtype=np.int64)
    for lo, rows in chunks(n, dim, seed):
        scores = qs @ rows.T
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :K]
        best_s, best_i = np.take_along_axis(s, keep, axis=1), np.take_along_axis(i, keep, axis=1)
    return best_i


# -- the steps, each in a child process -------------------------------------------------------

PRELUDE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from pathlib import Path
import numpy as np
import psutil
from isearchd.store import Database, ImageRecord

def rss_mb():
    return psutil.Process().memory_info().rss / 2**20

def peak_mb():  # VmHWM: ru_maxrss would carry the parent's peak across fork and exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

home, args = Path(sys.argv[3]), json.loads(sys.argv[4])
"""

BASELINE = r"""
db = Database.open(home, "empty", model_key="bench", dim=args["dim"])
print(json.dumps({"rss_mb": rss_mb()}))
db.close()
"""

BUILD = r"""
import bench_growth as bg
db = Database.open(home, "bench", model_key="bench", dim=args["dim"])
add_s = 0.0
for lo, rows in bg.chunks(args["n"], args["dim"]):
    for b in range(0, len(rows), bg.BATCH):
        names = [f"/bench/{lo + i:07d}.jpg" for i in range(b, min(len(rows), b + bg.BATCH))]
        recs = [ImageRecord(nm, nm, 1, 1, f"h{lo + b + j}", rows[b + j]) for j, nm in enumerate(names)]
        t = time.perf_counter()
        db.add(recs)
        add_s += time.perf_counter() - t
out = {"add_s": add_s, "rss_mb": rss_mb(), "peak_mb": peak_mb(), "capacity": db.info()["capacity"]}
t = time.perf_counter()
db.close()
out["close_s"] = time.perf_counter() - t
print(json.dumps(out))
"""

DAEMON = r"""
before = rss_mb()
t = time.perf_counter()
db = Database.open(home, "bench", model_key="bench", dim=args["dim"])
out = {"open_s": time.perf_counter() - t, "rss_before_open_mb": before, "rss_open_mb": rss_mb()}
out["count"], out["capacity"] = db.count(), db.info()["capacity"]
for kind in ("image", "text"):
    qs = np.load(args[kind])
    times, found = [], []
    for q in qs:
        t = time.perf_counter()
        hits = db.search(q, k=10)
        times.append((time.perf_counter() - t) * 1000)
        found.append([int(h.label.rsplit("/", 1)[1][:7]) for h in hits])
    out[kind] = {"times_ms": times, "found": found}
out["rss_mb"], out["peak_mb"] = rss_mb(), peak_mb()
print(json.dumps(out))
db.close(save=False)
"""

KILLED = r"""
db = Database.open(home, "bench", model_key="bench", dim=args["dim"])
extra = np.load(args["extra"])
start = db.count()
for lo in range(0, len(extra), 500):
    db.add([ImageRecord(f"/extra/{start + i}.jpg", f"/extra/{start + i}.jpg", 1, 1, f"x{start + i}", extra[i])
            for i in range(lo, min(len(extra), lo + 500))])
print(json.dumps({"acked": True}), flush=True)
time.sleep(3600)
"""

REOPEN = r"""
from isearchd.store import SavePolicy
t = time.perf_counter()
policy = SavePolicy(background=False)
db = Database.open(home, "bench", model_key="bench", dim=args["dim"], save_policy=policy)
out = {"open_s": time.perf_counter() - t, "count": db.count()}
db.delete_prefix("/extra")  # back to the built images, saved, so that --reuse can measure again
db.close()
print(json.dumps(out))
"""


def child(code: Path, body: str, home: Path, **args: Any) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-c",
        PRELUDE + body,
        str(code),
        str(REPO / "benchmarks"),
        str(home),
        json.dumps(args),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def killed_child(code: Path, home: Path, **args: Any) -> None:
    cmd = [
        sys.executable,
        "-c",
        PRELUDE + KILLED,
        str(code),
        str(REPO / "benchmarks"),
        str(home),
        json.dumps(args),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert json.loads(line)["acked"], line
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def disk_mb(base: Path) -> float:
    return sum(p.stat().st_size for p in base.iterdir() if p.is_file()) / 2**20


def search_summary(raw: dict[str, Any], want: np.ndarray) -> dict[str, float]:
    times = raw["times_ms"]
    hits = sum(len(set(f) & set(w.tolist())) for f, w in zip(raw["found"], want, strict=True))
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "recall_at_10": hits / (len(want) * K),
    }


def bench_size(n: int, dim: int, n_queries: int, home: Path, code: Path, reuse: bool) -> dict[str, Any]:
    print(f"[{n}] queries and brute-force truth ...", file=sys.stderr, flush=True)
    image_q, text_q = queries(n, dim, n_queries)
    want = {"image": truth(n, dim, image_q), "text": truth(n, dim, text_q)}
    files = {"image": home / "image_q.npy", "text": home / "text_q.npy"}
    home.mkdir(parents=True, exist_ok=True)
    np.save(files["image"], image_q)
    np.save(files["text"], text_q)
    result: dict[str, Any] = {"n": n, "dim": dim}
    shutil.rmtree(home / "empty", ignore_errors=True)
    result["baseline"] = child(code, BASELINE, home, dim=dim)
    built = (home / DB / "vectors.hnsw").exists()
    if reuse and built:
        print(f"[{n}] reusing the database in {home}", file=sys.stderr, flush=True)
        result["build"] = None
    else:
        shutil.rmtree(home / DB, ignore_errors=True)
        print(f"[{n}] building ...", file=sys.stderr, flush=True)
        result["build"] = child(code, BUILD, home, n=n, dim=dim)
        result["build"]["add_per_s"] = n / result["build"]["add_s"]
    result["disk_mb"] = disk_mb(home / DB)
    print(f"[{n}] daemon: open and search ...", file=sys.stderr, flush=True)
    daemon = child(code, DAEMON, home, dim=dim, image=str(files["image"]), text=str(files["text"]))
    assert daemon["count"] == n, daemon["count"]
    for kind in ("image", "text"):
        daemon[kind] = search_summary(daemon[kind], want[kind])
    result["daemon"] = daemon
    result["kb_per_image"] = (daemon["rss_mb"] - result["baseline"]["rss_mb"]) * 1024 / n
    if not reuse:
        print(f"[{n}] kill -9 and reopen ...", file=sys.stderr, flush=True)
        extra = normalised(np.random.default_rng(99).standard_normal((UNCLEAN_EXTRA, dim)))
        np.save(home / "extra.npy", extra)
        killed_child(code, home, dim=dim, extra=str(home / "extra.npy"))
        result["unclean"] = child(code, REOPEN, home, dim=dim)
        assert result["unclean"]["count"] == n + UNCLEAN_EXTRA, result["unclean"]
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'images':>9} {'add/s':>6} {'base MB':>7} {'RSS MB':>7} {'KB/img':>6} {'disk MB':>7} "
        f"{'open':>6} {'kill-9':>6} {'img p50/p95 ms':>14} {'img R@10':>8} {'txt p50/p95 ms':>14} "
        f"{'txt R@10':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        d, build, unclean = r["daemon"], r.get("build"), r.get("unclean")
        im, tx = d["image"], d["text"]
        cells = [
            f"{r['n']:>9,}",
            f"{build['add_per_s']:>6.0f}" if build else f"{'-':>6}",
            f"{r['baseline']['rss_mb']:>7.0f}",
            f"{d['rss_mb']:>7.0f}",
            f"{r['kb_per_image']:>6.2f}",
            f"{r['disk_mb']:>7.0f}",
            f"{d['open_s']:>5.2f}s",
            f"{unclean['open_s']:>5.2f}s" if unclean else f"{'-':>6}",
            f"{im['p50_ms']:>6.2f}/{im['p95_ms']:<7.2f}",
            f"{im['recall_at_10']:>8.3f}",
            f"{tx['p50_ms']:>6.2f}/{tx['p95_ms']:<7.2f}",
            f"{tx['recall_at_10']:>8.3f}",
        ]
        lines.append(" ".join(cells))
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    """RSS against images, with the 2/4/8 GB lines; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = [r["n"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(ns, [r["daemon"]["rss_mb"] for r in results], "o-", label="daemon (fresh open + searches)")
    builds = [(r["n"], r["build"]["rss_mb"]) for r in results if r.get("build")]
    if builds:
        ax.plot(*zip(*builds, strict=True), "s--", label="process that added them")
    ax.plot(ns, [r["disk_mb"] for r in results], "^:", label="disk")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("images (dim 512)")
    ax.set_ylabel("MB")
    ax.set_title("ImgSearch store: memory and disk against library size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="keep the built databases in this folder")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept in --keep")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose isearchd opens and searches")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "growth.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "growth.png")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="isearch-growth-") as tmp:
        for n in args.sizes:
            home = (args.keep or Path(tmp)) / str(n)
            results.append(bench_size(n, args.dim, args.queries, home, args.code.resolve(), args.reuse))
            if args.keep is None:
                shutil.rmtree(home)
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "code": str(args.code),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(f"wrote {args.out}")
    if plot(results, args.plot):
        print(f"wrote {args.plot}")
    else:
        print("matplotlib is not installed: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
