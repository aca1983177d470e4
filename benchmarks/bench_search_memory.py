"""The daemon's memory while clients search: resident size before, at its peak and after a search
load, with the searches' latencies beside it (what ``isearchd.memory.keep_large_blocks_mapped``
trades).

Starts the real daemon (bench_search_during_add's ``Daemon``: ViT-45LY-shaped random weights,
ONNX Runtime fp32) in a fresh home, adds ``--seed-photos`` photos of bench_e2e's corpus, then
runs ``--searches`` searches from ``--clients`` clients (benchmarks/searchload.py, each client's
searches due ``--think-ms`` apart on average), ``--image-share`` of them by image, and samples the
daemon's RSS every 0.2 s. ``--code DIR`` runs another source tree (a before/after on one machine);
``--env KEY=VALUE`` sets a variable for the daemon (``MALLOC_MMAP_THRESHOLD_=...``).

Usage: .venv/bin/python benchmarks/bench_search_memory.py [--clients 32] [--searches 1600]
       [--image-share 0.5] [--code DIR] [--env K=V] [--label NAME]
       [--out benchmarks/results/search_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil
from bench_e2e import make_corpus
from bench_search_during_add import MODEL, REPO, Daemon
from machine import cpu_model
from searchload import SearchLoad, latencies, planned

from isearchd.models import MODELS
from isearchd.models.synthetic import write_official_checkpoint


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cache = work / "cache"
    checkpoint = cache / MODELS[MODEL].file_name
    if not checkpoint.exists():
        write_official_checkpoint(MODEL, checkpoint, seed=0)
    if not (work / "seed").exists():
        make_corpus(work / "seed", args.seed_photos, seed=11)
        make_corpus(work / "queries", 24, seed=13)
    queries = [p for p in sorted((work / "queries").iterdir()) if p.suffix == ".jpg"]
    env = dict(kv.split("=", 1) for kv in args.env)
    daemon = Daemon(Path(tempfile.mkdtemp(dir=work)), cache, args.code.resolve(), env=env)
    daemon.start()
    try:
        proc = psutil.Process(daemon.proc.pid)  # type: ignore[union-attr]
        with daemon.client("bench") as c:
            c.add([str(p) for p in sorted((work / "seed").iterdir())])
            c.search(str(queries[0]), num=10)
        before = proc.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        work_plan = planned(args.searches, args.clients, queries, args.image_share, seed=1)
        load = SearchLoad(lambda: daemon.client("bench"), work_plan, think_ms=args.think_ms)
        load.start()
        load.join()
        done.set()
        sampler.join()
        time.sleep(2)
        after = proc.memory_info().rss
    finally:
        daemon.stop()
    lat = latencies(load.records)
    mib = 2**20
    return {
        "rss_mib": {"before": round(before / mib), "peak": round(peak[0] / mib), "after": round(after / mib)},
        "image": lat["image"],
        "text": lat["text"],
        "errors": sum(1 for s in load.records if s.error is not None),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--searches", type=int, default=1600)
    ap.add_argument("--image-share", type=float, default=0.5)
    ap.add_argument("--think-ms", type=float, default=1000.0)
    ap.add_argument("--seed-photos", type=int, default=50)
    ap.add_argument("--code", type=Path, default=REPO)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the daemon")
    ap.add_argument("--label", default=None)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-search-memory")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "search_memory.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    label = args.label or ("this checkout" if args.code == REPO else str(args.code))
    r = measure(args, args.work)
    m, i = r["rss_mib"], r["image"]
    print("| run | clients | RSS before / peak / after | image p50 / p99 | errors |")
    print("|---|---|---|---|---|")
    print(f"| {label} | {args.clients} | {m['before']} / {m['peak']} / {m['after']} MiB | "
          f"{i['p50_ms']} / {i['p99_ms']} ms | {r['errors']} |")  # fmt: skip
    result = {
        "label": label, "date": date.today().isoformat(), "cpu": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, **r,
    }  # fmt: skip
    previous: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous[f"{label}, {args.clients} clients"] = result
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
