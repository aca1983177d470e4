"""Search latency while an add runs: do searches wait behind indexing?

Starts the real daemon (``python -m isearchd``, ONNX Runtime fp32, a ViT-45LY-shaped random
checkpoint from ``isearchd.models.synthetic`` in its weights cache: the same compute as the real
weights) in a fresh temporary home, adds ``--seed-photos`` photos so searches have something to
find, then starts an add of ``--photos`` new photos and, at the same moment, ``--clients`` client
threads that make ``--searches`` searches in all (benchmarks/searchload.py: each client on its own
connection, one search after the other, due ``--think-ms`` apart on average on a schedule fixed in
advance, so that slow answers do not lighten the load), ``--image-share`` of them by image
(1920x1080 JPEGs that are not in the database), the others by text (drawn from 64 texts, so the
daemon's text cache answers most of them, as it would for people retyping a query).

Reports, for the searches that started while the add was running and for all of them: errors,
text and image p50 / p95 / p99; and the add's throughput in images/s, beside the same add with
no searches (a second database, so no vector is reused).

``--code DIR`` runs the daemon from another source tree, for a before/after on the same machine:
``git archive <commit> | tar -x -C /tmp/before`` then ``--code /tmp/before``. ``--rounds``
repeats everything on a fresh daemon; the table shows each metric's median over the rounds (all
rounds are in the JSON).

The corpus is bench_e2e's (60 % 1920x1080 JPEG, 25 % 12 MP JPEG, 8 % PNG, 7 % WebP).
``--videos N`` adds N synthetic 1080p H.264 videos of ``--video-seconds`` each (bench_video's, a
keyframe every 2 s, a new scene every 5 s) to the add, among the photos: does reading a video's
frames (PyAV, in the decode pool) keep searches waiting? The add's rate then counts files.

Usage:  .venv/bin/python benchmarks/bench_search_during_add.py [--photos 150] [--clients 32]
        [--searches 3200] [--image-share 0.25] [--think-ms 1000] [--rounds 3] [--code DIR]
        [--videos 0] [--video-seconds 60]
        [--label NAME] [--out benchmarks/results/search_during_add.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_e2e import make_corpus  # noqa: E402
from bench_video import encode  # noqa: E402
from machine import cpu_model  # noqa: E402
from searchload import SearchLoad, latencies, planned  # noqa: E402

from isearchd.client import Client  # noqa: E402
from isearchd.errors import ServiceNotRunning  # noqa: E402
from isearchd.models import MODELS  # noqa: E402
from isearchd.models.synthetic import write_official_checkpoint  # noqa: E402

MODEL = "ViT-45LY"


class Daemon:
    """One daemon in ``root`` running the code in ``code``, sharing the weights/export ``cache``."""

    def __init__(self, root: Path, cache: Path, code: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.cache = cache
        self.code = code
        self.extra_env = env or {}  # ISEARCH_* settings for this daemon (the caller's are not passed)
        self.bind = str(root / "s.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ISEARCH_")}
        env.update(
            ISEARCH_HOME=str(self.root / "home"),
            ISEARCH_CACHE=str(self.cache),
            ISEARCH_CONFIG=str(self.root / "none.toml"),
            PYTHONPATH=str(self.code),
        )
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "isearchd", "--bind", self.bind, "--model", MODEL, "-L", "warning"]
        with (self.root / "daemon.out").open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 600  # the first start exports the model to ONNX
        while True:
            if self.proc.poll() is not None:
                raise SystemExit((self.root / "daemon.out").read_text())
            try:
                with self.client("bench") as c:
                    c.hello()
                return
            except ServiceNotRunning:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self, db: str) -> Client:
        return Client(db, bind=self.bind, timeout=600)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(120)


def one_round(
    daemon: Daemon, seed: list[Path], photos: list[Path], queries: list[Path], args: argparse.Namespace
) -> dict[str, Any]:
    daemon.start()
    try:
        with daemon.client("alone") as c:  # the add with nothing else running
            t0 = time.perf_counter()
            c.add([str(p) for p in photos])
            alone_s = time.perf_counter() - t0
        with daemon.client("bench") as c:
            c.add([str(p) for p in seed])
            c.search("warm up", num=10)
            c.search(str(queries[0]), num=10)

        work = planned(args.searches, args.clients, queries, args.image_share, seed=args.seed)
        load = SearchLoad(lambda: daemon.client("bench"), work, think_ms=args.think_ms)
        with daemon.client("bench") as c:
            t_add = load.start()
            report = c.add([str(p) for p in photos])
            t_done = time.perf_counter()
        load.join()
    finally:
        daemon.stop()
    during = latencies(load.records, t_add, t_done)
    overall = latencies(load.records)
    errors = [s.error for s in load.records if s.error is not None]
    return {
        "add_images": report.added,
        "add_s": round(t_done - t_add, 2),
        "add_images_per_s": round(len(photos) / (t_done - t_add), 1),
        "add_alone_images_per_s": round(len(photos) / alone_s, 1),
        "searches": overall["searches"],
        "searches_during_add": during["searches"],
        "errors": len(errors),
        "first_errors": errors[:5],
        "during_add": {"text": during["text"], "image": during["image"]},
        "all": {"text": overall["text"], "image": overall["image"]},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float | None:
        values = [v for v in (get(r) for r in rounds) if v is not None]
        return round(statistics.median(values), 1) if values else None

    out: dict[str, Any] = {
        key: med(lambda r, k=key: r[k])
        for key in ("add_images_per_s", "add_alone_images_per_s", "searches_during_add")
    }
    out["errors"] = sum(r["errors"] for r in rounds)
    for phase in ("during_add", "all"):
        for kind in ("text", "image"):
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                out[f"{phase}_{kind}_{q}"] = med(lambda r, p=phase, k=kind, q_=q: r[p][k][q_])
    return out


def table(label: str, m: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:g}"

    head = (
        "| run | errors | during add: text p50 / p95 / p99 | image p50 / p95 / p99 | all: text p99 | "
        "image p99 | add img/s (alone) |"
    )

    def trio(phase: str, kind: str) -> str:
        return " / ".join(f(m[f"{phase}_{kind}_{q}_ms"]) for q in ("p50", "p95", "p99")) + " ms"

    row = (
        f"| {label} | {m['errors']} | {trio('during_add', 'text')} | {trio('during_add', 'image')} | "
        f"{f(m['all_text_p99_ms'])} ms | {f(m['all_image_p99_ms'])} ms | "
        f"{f(m['add_images_per_s'])} ({f(m['add_alone_images_per_s'])}) |"
    )
    return "\n".join([head, "|" + "---|" * 7, row])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--seed-photos", type=int, default=50)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--searches", type=int, default=3200)
    ap.add_argument("--image-share", type=float, default=0.25)
    ap.add_argument("--think-ms", type=float, default=1000.0, help="mean time between a client's searches")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--code", type=Path, default=REPO, help="source tree the daemon runs from")
    ap.add_argument("--label", default=None)
    ap.add_argument("--videos", type=int, default=0, help="1080p H.264 videos added among the photos")
    ap.add_argument("--video-seconds", type=int, default=60)
    ap.add_argument("--no-analyses", action="store_true", help="people and words off (ISEARCH_PEOPLE/WORDS)")
    ap.add_argument("--work", type=Path, default=None, help="keep corpus and model cache here")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "search_during_add.json")
    args = ap.parse_args(argv)
    label = args.label or ("this checkout" if args.code == REPO else str(args.code))

    work = args.work or Path(tempfile.mkdtemp(prefix="bsda-", dir="/tmp"))
    cache = work / "cache"
    checkpoint = cache / MODELS[MODEL].file_name
    if not checkpoint.exists():
        write_official_checkpoint(MODEL, checkpoint, seed=0)
    corpus_dir = work / "corpus"
    if not corpus_dir.exists():
        make_corpus(corpus_dir / "seed", args.seed_photos, seed=11)
        make_corpus(corpus_dir / "add", args.photos, seed=12)
        make_corpus(corpus_dir / "queries", 24, seed=13)
    seed = sorted((corpus_dir / "seed").iterdir())
    photos = sorted((corpus_dir / "add").iterdir())
    if args.videos:
        videos = corpus_dir / f"videos-{args.video_seconds}s"
        videos.mkdir(exist_ok=True)
        for i in range(args.videos):
            if not (videos / f"clip{i:02d}.mp4").exists():
                encode(videos / f"clip{i:02d}.mp4", args.video_seconds, gop=60)
        clips = sorted(videos.iterdir())[: args.videos]
        step = max(1, len(photos) // (len(clips) + 1))
        for i, clip in enumerate(clips):  # spread among the photos, not all at the end
            photos.insert((i + 1) * step + i, clip)
    queries = [p for p in sorted((corpus_dir / "queries").iterdir()) if p.suffix == ".jpg"]

    rounds = []
    for i in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix=f"r{i}-", dir=work))
        env = {"ISEARCH_PEOPLE": "false", "ISEARCH_WORDS": "false"} if args.no_analyses else None
        r = one_round(Daemon(root, cache, args.code.resolve(), env=env), seed, photos, queries, args)
        rounds.append(r)
        d = r["during_add"]
        print(
            f"round {i + 1}: {r['searches_during_add']} searches during the add, errors {r['errors']}, "
            f"text p99 {d['text']['p99_ms']} ms, image p99 {d['image']['p99_ms']} ms, "
            f"add {r['add_images_per_s']} img/s (alone {r['add_alone_images_per_s']})",
            flush=True,
        )
    m = medians(rounds)
    print(table(label, m))
    result = {
        "label": label,
        "model": f"{MODEL} fp32 (ONNX Runtime, random weights)",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
        },
        "median": m,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous[label] = result
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
