"""People for a whole library, through the real daemon: how long after its CLIP indexing a library
has its people, what searches cost while faces are read, and the memory it takes.

Starts the real daemon (``python -m isearchd``, people on, words off, ONNX Runtime fp32 and a ViT-45LY-shaped
random checkpoint as bench_search_during_add does) in a fresh home. The libraries are a typical
mix: ``--face-share`` of the photos hold people (one to three of the four people of
tests/fixtures/faces, pasted at 15-45 % of the width into a synthetic scene: faces of ~50-250 px),
the others are synthetic scenes without faces (bench_e2e's, less scikit-image's astronaut, whose
face would be a fifth person); 70 % 1920x1080 and 30 % 4000x3000 JPEGs.

1. Faces alone: ``--photos`` photos added in one ``add``; then, with nothing else running, the
   seconds from the end of the add until every photo was read for faces (the ``people`` op's
   ``analysed == total``): photos per second, minutes per 10,000 photos; RSS of the daemon and of
   its face workers (its child processes) after the indexing and at their peak; the people formed,
   each found person's photos against the people really pasted into them (purity: the share of a
   person's photos holding its most common true person; completeness: the share of a true
   person's photos in the found person that holds most of them).
2. Searches while faces are read: a second library of ``--load-photos`` photos is added, and
   while its faces are read ``--clients`` client threads search by text and by image (the load of
   bench_search_during_add, benchmarks/searchload.py: each client's searches due ``--think-ms``
   apart on average, a quarter of them by image); then the same load for ``--idle-s`` seconds
   with the daemon idle. p50 / p95 / p99 of both.
3. RSS ``--release-wait`` seconds later (the models are released after a minute without faces).

``--analysis words`` measures words in pictures the same way (people off, words on): a
``--text-share`` of the photos hold text (half of them 1280x800 screenshots of six lines of 14 px
UI text, half 1920x1080 photos with a sign of two 40 px lines; words of tests/fixtures/textpics),
the others the same scenes; "quality" is then the share of text pictures that ``--words`` finds by
each of their words.

Usage:  .venv/bin/python benchmarks/bench_faces_library.py [--analysis faces|words] [--photos 1000]
        [--load-photos 200] [--face-share 0.35] [--text-share 0.2] [--clients 32] [--think-ms 1000]
        [--idle-s 30] [--release-wait 70] [--workers 0] [--work DIR]
        [--out benchmarks/results/faces_library.json (words: words_library.json)]
Not a test: it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_e2e import make_corpus, sample_bases, sensor_noise, synth_photo  # noqa: E402
from bench_search_during_add import MODEL, Daemon  # noqa: E402
from machine import cpu_model  # noqa: E402
from searchload import SearchLoad, endless, latencies  # noqa: E402

from isearchd.models import MODELS  # noqa: E402
from isearchd.models.synthetic import write_official_checkpoint  # noqa: E402

FACES = REPO / "tests" / "fixtures" / "faces"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from textpics import WORDS, on_photo, screenshot  # noqa: E402

SAMPLE_S = 0.25


def faceless_bases() -> list[np.ndarray]:
    """bench_e2e's scenes but scikit-image's astronaut (a real face): no face but the pasted ones."""
    return sample_bases()[1:]


def scenes(folder: Path, count: int, seed: int) -> None:
    """``count`` synthetic photos without faces: 70 % 1920x1080, 30 % 4000x3000 JPEGs."""
    rng = np.random.default_rng(seed)
    bases, noise = faceless_bases(), sensor_noise(rng)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = (4000, 3000) if i % 10 < 3 else (1920, 1080)
        synth_photo(bases, noise, rng, size).save(folder / f"scene_{i:05d}.jpg", "JPEG", quality=90)


def face_photos(folder: Path, count: int, seed: int) -> dict[str, list[str]]:
    """``count`` JPEGs of 1-3 of the fixture people in a synthetic scene: path -> true people."""
    labels: dict[str, str] = json.loads((FACES / "people.json").read_text())
    sources = {name: Image.open(FACES / name).convert("RGB") for name in sorted(labels)}
    rng = np.random.default_rng(seed)
    bases, noise = faceless_bases(), sensor_noise(rng)
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[str]] = {}
    for i in range(count):
        size = (4000, 3000) if i % 10 < 3 else (1920, 1080)
        canvas = synth_photo(bases, noise, rng, size)
        chosen: list[str] = []
        people = rng.choice([1, 1, 1, 2, 2, 3])
        for slot in range(people):
            free = [n for n in sources if labels[n] not in (labels[c] for c in chosen)]
            name = str(rng.choice(free))
            chosen.append(name)
            src = sources[name]
            width = int(size[0] * rng.uniform(0.15, 0.45) / max(1, people * 0.8))
            pasted = src.resize((width, int(width * src.height / src.width)), Image.Resampling.BILINEAR)
            left = int(slot * size[0] / people + rng.uniform(0, max(1, size[0] / people - width)))
            top = int(rng.uniform(0, max(1, size[1] - pasted.height)))
            canvas.paste(pasted, (min(left, size[0] - width), top))
        path = folder / f"people_{i:05d}.jpg"
        canvas.save(path, "JPEG", quality=90)
        truth[str(path)] = sorted({labels[n] for n in chosen})
    return truth


def text_photos(folder: Path, count: int, seed: int) -> dict[str, list[str]]:
    """``count`` pictures with words: screenshots and photos of signs; path -> its words."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[str]] = {}
    for i in range(count):
        words = [str(w) for w in rng.choice(WORDS, 6 if i % 2 == 0 else 4, replace=False)]
        if i % 2 == 0:
            lines = [f"{a} {b}" for a, b in zip(words[::2], words[1::2], strict=True)]
            picture = screenshot([*lines, "Connected", "Signal strong"], seed=i)
        else:
            picture = on_photo([f"{words[0]} {words[1]}", f"{words[2]} {words[3]}"], seed=seed + i)
        path = folder / f"text_{i:05d}.jpg"
        picture.save(path, "JPEG", quality=90)
        truth[str(path)] = words
    return truth


class Memory:
    """Samples the daemon's RSS and its child processes' (the face workers') in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> tuple[int, int]:
        own = children = 0
        with contextlib.suppress(psutil.Error):
            own = self.proc.memory_info().rss
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    children += child.memory_info().rss
        return own, children

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *self.now()))
            time.sleep(SAMPLE_S)

    def peak(self, start: float, end: float) -> tuple[int, int]:
        window = [(own, kids) for t, own, kids in self.samples if start <= t <= end] or [self.now()]
        return max(own for own, _ in window), max(kids for _, kids in window)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for_reading(daemon: Daemon, db: str, analysis: str, timeout_s: float) -> tuple[int, int]:
    """Until every photo of ``db`` was read by ``analysis``: (read, total)."""
    deadline = time.monotonic() + timeout_s
    with daemon.client(db) as c:
        while True:
            if analysis == "faces":
                listed = c.people()
                done, total = listed.analysed, listed.total
            else:
                progress = c.status().analyses.get(analysis, {}).get(db)
                done, total = (progress.done, progress.total) if progress else (0, 0)
            if total and done >= total:
                return done, total
            if time.monotonic() > deadline:
                raise SystemExit(f"{analysis} not read after {timeout_s} s: {done} of {total}")
            time.sleep(0.5)


def words_quality(daemon: Daemon, truth: dict[str, list[str]]) -> dict[str, Any]:
    """The share of (picture, word) pairs where ``--words WORD`` finds the picture."""
    found = pairs = 0
    with daemon.client("lib") as c:
        for word in sorted({w for words in truth.values() for w in words}):
            hits = {path for path, _ in c.search(None, num=1000, words=word)}
            theirs = [path for path, words in truth.items() if word in words]
            pairs += len(theirs)
            found += sum(path in hits for path in theirs)
    return {"text_pictures": len(truth), "word_recall": round(found / pairs, 4) if pairs else None}


def grouping_quality(daemon: Daemon, truth: dict[str, list[str]]) -> dict[str, Any]:
    with daemon.client("lib") as c:
        found = {p.id: {ph.path for ph in c.person(p.id).photos} for p in c.people(hidden=True).people}
    purity, majority = [], {}
    for pid, photos in found.items():
        counts = Counter(name for path in photos for name in truth.get(path, []))
        if counts:
            name, hits = counts.most_common(1)[0]
            purity.append(hits / len(photos))
            majority[pid] = name
    completeness = []
    for name in sorted({n for names in truth.values() for n in names}):
        theirs = {path for path, names in truth.items() if name in names}
        best = max((len(theirs & photos) for photos in found.values()), default=0)
        completeness.append(best / len(theirs))
    return {
        "people_found": len(found),
        "true_people": len(completeness),
        "purity_mean": round(statistics.mean(purity), 4) if purity else None,
        "completeness_mean": round(statistics.mean(completeness), 4) if completeness else None,
    }


def corpus(
    work: Path, name: str, photos: int, share: float, seed: int, analysis: str = "faces"
) -> tuple[list[Path], dict[str, Any]]:
    """The photos of one library (made once, kept in ``work``) and who (or which words) is in each."""
    kind = "people" if analysis == "faces" else "text"
    folder = work / (f"corpus-v2-{name}-{photos}-{share}" + ("" if analysis == "faces" else "-words"))
    truth_file = folder / "truth.json"
    if not truth_file.exists():
        make = face_photos if analysis == "faces" else text_photos
        truth = make(folder / kind, round(photos * share), seed=seed)
        scenes(folder / "scenes", photos - round(photos * share), seed=seed + 1)
        truth_file.write_text(json.dumps(truth))
    paths = sorted((folder / kind).iterdir()) + sorted((folder / "scenes").iterdir())
    return paths, json.loads(truth_file.read_text())


def faces_alone(
    daemon: Daemon, memory: Memory, photos: list[Path], truth: dict[str, Any], analysis: str = "faces"
) -> dict[str, Any]:
    """Phase 1: add the library, then time its reading with nothing else running."""
    with daemon.client("lib") as c:
        t_add = time.monotonic()
        report = c.add([str(p) for p in photos])
        t_indexed = time.monotonic()
        indexed = memory.now()
    analysed, total = wait_for_reading(daemon, "lib", analysis, timeout_s=6 * 3600)
    t_faces = time.monotonic()
    peak = memory.peak(t_indexed, t_faces)
    faces_s = t_faces - t_indexed
    mib = 1 / 2**20
    return {
        "photos": len(photos),
        "photos_with_people": len(truth),
        "added": report.added,
        "indexing_s": round(t_indexed - t_add, 1),
        "faces_s": round(faces_s, 1),
        "faces_photos_per_s": round(total / faces_s, 2),
        "faces_minutes_per_10k": round(10_000 / (total / faces_s) / 60, 1),
        "analysed": analysed,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "rss_mib": {
            "daemon_after_indexing": round(indexed[0] * mib, 1),
            "daemon_peak_during_faces": round(peak[0] * mib, 1),
            "workers_peak_during_faces": round(peak[1] * mib, 1),
        },
        "people": grouping_quality(daemon, truth) if analysis == "faces" else words_quality(daemon, truth),
    }


def searches_during_faces(
    daemon: Daemon, photos: list[Path], queries: list[Path], args: argparse.Namespace
) -> dict[str, Any]:
    """Phase 2: a second library's faces read while clients search; then the same load idle."""
    with daemon.client("more") as c:
        c.add([str(p) for p in photos])
    work = endless(args.clients, queries, 0.25, seed=5)
    load = SearchLoad(lambda: daemon.client("lib"), work, think_ms=args.think_ms, seed=5)
    t0 = load.start()
    wait_for_reading(daemon, "more", args.analysis, timeout_s=6 * 3600)
    t1 = time.perf_counter()
    time.sleep(args.idle_s)
    t2 = time.perf_counter()
    load.stop()
    return {
        "photos": len(photos),
        "faces_s_under_load": round(t1 - t0, 1),
        "during_faces": latencies(load.records, t0, t1),
        "idle": latencies(load.records, t1, t2),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cache = work / "cache"
    checkpoint = cache / MODELS[MODEL].file_name
    if not checkpoint.exists():
        write_official_checkpoint(MODEL, checkpoint, seed=0)
    share = args.face_share if args.analysis == "faces" else args.text_share
    photos, truth = corpus(work, "lib", args.photos, share, seed=21, analysis=args.analysis)
    more, _ = corpus(work, "more", args.load_photos, share, seed=31, analysis=args.analysis)
    queries_dir = work / "queries"
    if not queries_dir.exists():
        make_corpus(queries_dir, 16, seed=23)
    queries = [p for p in sorted(queries_dir.iterdir()) if p.suffix == ".jpg"]

    root = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    # one analysis on: the other's reading would follow it and run under the idle searches
    if args.analysis == "faces":
        env = {"ISEARCH_WORDS": "0"} | ({"ISEARCH_PEOPLE_WORKERS": str(args.workers)} if args.workers else {})
    else:
        env = {"ISEARCH_PEOPLE": "0"}
    daemon = Daemon(root, cache, REPO, env)
    daemon.start()
    assert daemon.proc is not None
    memory = Memory(daemon.proc.pid)
    try:
        alone = faces_alone(daemon, memory, photos, truth, args.analysis)
        print(json.dumps(alone), flush=True)
        loaded = searches_during_faces(daemon, more, queries, args)
        time.sleep(max(0.0, args.release_wait - args.idle_s))
        after = memory.now()
    finally:
        memory.stop()
        daemon.stop()
    alone["rss_mib"]["daemon_after_release"] = round(after[0] / 2**20, 1)
    alone["rss_mib"]["workers_after_release"] = round(after[1] / 2**20, 1)
    return {"alone": alone, "with_searches": loaded}


def table(r: dict[str, Any]) -> str:
    a, w = r["alone"], r["with_searches"]

    def trio(p: dict[str, Any]) -> str:
        return " / ".join("-" if p[k] is None else f"{p[k]:g}" for k in ("p50_ms", "p95_ms", "p99_ms"))

    m, q, d = a["rss_mib"], a["people"], w["during_faces"]
    if "word_recall" in q:
        quality_head, quality = "word recall |", f"{q['word_recall']} |"
    else:
        quality_head = "people found (true) | purity | completeness |"
        quality = (
            f"{q['people_found']} ({q['true_people']}) | {q['purity_mean']} | {q['completeness_mean']} |"
        )
    return "\n".join([
        "| photos (with people or text) | indexing | reading | min per 10k | RSS MiB daemon indexed / peak "
        "/ after, workers peak | " + quality_head,
        "|" + "---|" * (5 + quality_head.count("|")),
        f"| {a['photos']} ({a['photos_with_people']}) | {a['indexing_s']} s | {a['faces_s']} s | "
        f"{a['faces_minutes_per_10k']} | {m['daemon_after_indexing']} / {m['daemon_peak_during_faces']} / "
        f"{m['daemon_after_release']}, {m['workers_peak_during_faces']} | " + quality,
        "",
        "| searches | text p50 / p95 / p99 ms | image p50 / p95 / p99 ms | errors |",
        "|---|---|---|---|",
        f"| while {w['photos']} photos are read ({w['faces_s_under_load']} s) | "
        f"{trio(d['text'])} | {trio(d['image'])} | {d['errors']} |",
        f"| idle | {trio(w['idle']['text'])} | {trio(w['idle']['image'])} | {w['idle']['errors']} |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--analysis", choices=("faces", "words"), default="faces")
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--face-share", type=float, default=0.35)
    ap.add_argument("--text-share", type=float, default=0.2, help="with --analysis words")
    ap.add_argument("--load-photos", type=int, default=200, help="the library read while clients search")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--think-ms", type=float, default=1000.0)
    ap.add_argument("--idle-s", type=float, default=30.0)
    ap.add_argument("--release-wait", type=float, default=70.0)
    ap.add_argument("--workers", type=int, default=0, help="[people] workers (0: the default)")
    ap.add_argument("--work", type=Path, default=None, help="keep corpus and model cache here")
    ap.add_argument(
        "--out", type=Path, default=None, help="default: results/faces_library.json, words_library.json"
    )
    args = ap.parse_args(argv)
    args.out = args.out or REPO / "benchmarks" / "results" / f"{args.analysis}_library.json"
    work = args.work or Path(tempfile.mkdtemp(prefix="bfl-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    result = run(args, work)
    print(table(result))
    out = {
        "benchmark": f"{args.analysis}_library",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "result": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
