"""Watched-folder benchmark: how fast a real daemon reflects the disk.

Starts the real daemon (``python -m isearchd``) in a temporary home with a ViT-45LY-shaped random
checkpoint (``isearchd.models.synthetic``: same compute as the real weights) placed in its weights
cache, default watch settings (settle interval ``isearchd.watch.debounce.SETTLE_S``, inotify), and
measures:

1. latency: a photo (1920x1080 JPEG) is written into a watched folder; the time from the file
   being complete (closed) until its row is committed to the catalog (then it is searchable), for
   ``--latency-files`` files written one at a time; p50 / p95 / max.
2. reconcile: ``--reconcile-files`` tiny PNGs, already indexed, the daemon restarted; the
   folder's own reconcile time (walk + compare + nothing to apply) from ``watch --list``
   (``scan_seconds``), and the wall time from the daemon answering to the folder being in sync.
   Nothing is decoded: the files are only stat'ed.
3. import throughput: ``--import-files`` distinct photos (1920x1080 JPEG) copied into a watched
   folder; images/s from the first copy to the last row committed.

Prints a table and writes ``benchmarks/results/watch.json``.

Usage:  .venv/bin/python benchmarks/bench_watch.py [--latency-files 20] [--reconcile-files 10000]
        [--import-files 1000] [--model ViT-45LY]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.client import Client  # noqa: E402
from isearchd.errors import ServiceNotRunning  # noqa: E402
from isearchd.models import MODELS  # noqa: E402
from isearchd.models.synthetic import write_official_checkpoint  # noqa: E402
from isearchd.watch.debounce import SETTLE_S  # noqa: E402

POLL_S = 0.01


class Daemon:
    def __init__(self, root: Path, model: str) -> None:
        self.root = root
        self.home = root / "home"
        self.bind = str(root / "s.sock")
        self.model = model
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ISEARCH_HOME=str(self.home),
            ISEARCH_CACHE=str(self.root / "cache"),
            ISEARCH_CONFIG=str(self.root / "none.toml"),
        )
        for var in ("ISEARCH_WATCH_POLLING", "ISEARCH_WATCH_SETTLE_S", "ISEARCH_WATCH_POLL_S"):
            env.pop(var, None)
        return env

    def start(self) -> float:
        t0 = time.perf_counter()
        with (self.root / "daemon.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "isearchd", "--bind", self.bind, "--model", self.model, "-L", "info"],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        while True:
            if self.proc.poll() is not None:
                raise SystemExit((self.root / "daemon.out").read_text())
            try:
                with self.client() as c:
                    c.hello()
                return time.perf_counter() - t0
            except ServiceNotRunning:
                time.sleep(0.05)

    def client(self) -> Client:
        return Client("bench", bind=self.bind, timeout=600)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(120)


def stored_labels(home: Path) -> set[str]:
    path = home / "bench" / "catalog.sqlite"
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in conn.execute("SELECT label FROM images")}
    finally:
        conn.close()


def stored_count(home: Path) -> int:
    path = home / "bench" / "catalog.sqlite"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
    finally:
        conn.close()


def has_label(home: Path, label: str) -> bool:
    path = home / "bench" / "catalog.sqlite"
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT 1 FROM images WHERE label = ?", [label]).fetchone() is not None
    finally:
        conn.close()


def wait_state(c: Client, folder: Path, timeout: float = 3600) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for f in c.watch_list():
            if f["path"] == str(folder) and f["state"] in ("watching", "polling") and f["pending"] == 0:
                return f
        time.sleep(0.02)
    raise SystemExit(f"{folder} not in sync after {timeout} s")


def photo_maker(seed: int = 0) -> Any:
    """Distinct photo-like 1920x1080 frames: crops of a few large smooth-noise scenes."""
    rng = np.random.default_rng(seed)
    bases = []
    for _ in range(6):
        low = rng.integers(0, 255, (12, 18, 3), dtype=np.uint8)
        big = Image.fromarray(low).resize((2600, 1700), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 6, (1700, 2600, 3))
        bases.append(
            Image.fromarray(np.clip(np.asarray(big, dtype=np.float64) + noise, 0, 255).astype(np.uint8))
        )

    def make(i: int, path: Path) -> None:
        base = bases[i % len(bases)]
        x = (i * 37) % (base.width - 1920)
        y = (i * 53) % (base.height - 1080)
        base.crop((x, y, x + 1920, y + 1080)).save(path, quality=88)

    return make


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-45LY")
    parser.add_argument("--latency-files", type=int, default=20)
    parser.add_argument("--reconcile-files", type=int, default=10_000)
    parser.add_argument("--import-files", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "watch.json")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bw-", dir="/tmp"))
    make_photo = photo_maker()
    result: dict[str, Any] = {
        "model": args.model,
        "settle_s": SETTLE_S,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
    }
    try:
        spec = MODELS[args.model]
        write_official_checkpoint(args.model, root / "cache" / spec.file_name, seed=0)
        d = Daemon(root, args.model)
        result["daemon_start_s"] = round(d.start(), 2)

        # 1. single-file latency
        live = root / "live"
        live.mkdir()
        staging = root / "staging"
        staging.mkdir()
        with d.client() as c:
            c.watch([str(live)])
            wait_state(c, live)
        latencies = []
        for i in range(args.latency_files):
            src = staging / f"l{i:03d}.jpg"
            make_photo(10_000 + i, src)
            data = src.read_bytes()
            target = live / src.name
            with target.open("wb") as fh:  # written in place, as a camera import or a copy does
                fh.write(data)
            t0 = time.perf_counter()
            while not has_label(d.home, str(target)):
                time.sleep(POLL_S)
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.3)
        result["latency_s"] = {
            "files": len(latencies),
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "max": round(max(latencies), 3),
        }
        print(
            f"latency: p50 {result['latency_s']['p50']:.2f} s, p95 {result['latency_s']['p95']:.2f} s",
            flush=True,
        )

        # 3. import throughput (before the reconcile part, on the same daemon)
        imp_src = root / "import-src"
        imp_src.mkdir()
        t0 = time.perf_counter()
        for i in range(args.import_files):
            make_photo(i, imp_src / f"p{i:04d}.jpg")
        gen_s = time.perf_counter() - t0
        imported = root / "import"
        imported.mkdir()
        with d.client() as c:
            c.watch([str(imported)])
            wait_state(c, imported)
            before = stored_count(d.home)
            t0 = time.perf_counter()
            for p in sorted(imp_src.iterdir()):
                shutil.copyfile(p, imported / p.name)
            copy_s = time.perf_counter() - t0
            while stored_count(d.home) < before + args.import_files:
                time.sleep(0.05)
            dt = time.perf_counter() - t0
            state = wait_state(c, imported)
        mb = sum(p.stat().st_size for p in imp_src.iterdir()) / 1e6
        result["import"] = {
            "files": args.import_files,
            "size": "1920x1080 JPEG",
            "total_mb": round(mb, 1),
            "copy_s": round(copy_s, 2),
            "seconds": round(dt, 2),
            "images_per_s": round(args.import_files / dt, 1),
            "indexed": state["indexed"],
            "failed": state["failed"],
            "generate_s": round(gen_s, 1),
        }
        print(
            f"import: {args.import_files} photos in {dt:.1f} s = {args.import_files / dt:.1f} images/s",
            flush=True,
        )

        # 2. reconcile of unchanged files after a restart
        many = root / "many"
        many.mkdir()
        rng = np.random.default_rng(1)
        tiles = []
        for k in range(50):  # 50 distinct contents, repeated: indexing them reuses vectors by hash
            buf = root / f"tile{k}.png"
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf)
            tiles.append(buf.read_bytes())
        for i in range(args.reconcile_files):
            sub = many / f"d{i // 500:02d}"
            sub.mkdir(exist_ok=True)
            (sub / f"t{i:05d}.png").write_bytes(tiles[i % len(tiles)])
        t0 = time.perf_counter()
        with d.client() as c:
            c.watch([str(many)])
            first = wait_state(c, many, timeout=3600)
        pre_index_s = time.perf_counter() - t0
        d.stop()
        d2 = Daemon(root, args.model)
        t0 = time.perf_counter()
        d2.start()
        ready = time.perf_counter()
        with d2.client() as c:
            while True:
                folders = {f["path"]: f for f in c.watch_list()}
                f = folders.get(str(many))
                if f and f["state"] == "watching" and f["pending"] == 0 and f["scan_seconds"] is not None:
                    break
                time.sleep(0.01)
            in_sync = time.perf_counter()
        result["reconcile"] = {
            "files": args.reconcile_files,
            "unchanged": f["unchanged"],
            "indexed_during_reconcile": f["indexed"],
            "folder_scan_s": f["scan_seconds"],
            "ready_to_in_sync_s": round(in_sync - ready, 3),
            "first_index_s": round(pre_index_s, 1),
            "first_index_indexed": first["indexed"],
        }
        print(
            f"reconcile: {args.reconcile_files} unchanged files in {f['scan_seconds']:.2f} s "
            f"(ready -> in sync {in_sync - ready:.2f} s)",
            flush=True,
        )
        d2.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    lat, imp, rec = result["latency_s"], result["import"], result["reconcile"]
    rows = [
        ("file written -> searchable, p50", f"{lat['p50']:.2f} s", f"{lat['files']} single 1920x1080 JPEGs"),
        ("file written -> searchable, p95", f"{lat['p95']:.2f} s", "target <= 2 s"),
        (
            "reconcile, unchanged files",
            f"{rec['folder_scan_s']:.2f} s",
            f"{rec['files']} files, target <= 3 s",
        ),
        (
            "import throughput",
            f"{imp['images_per_s']:.1f} images/s",
            f"{imp['files']} photos, {imp['seconds']:.0f} s",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"\nwatch benchmark, {args.model} (random weights), settle {SETTLE_S} s, {os.cpu_count()} CPUs")
    for name, value, note in rows:
        print(f"{name:<{w0}}  {value:>{w1}}  {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
