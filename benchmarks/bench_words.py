"""Reading the words in pictures (isearchd.models.ocr, rapidocr's packaged PP-OCRv4 models): speed and
word recall, on pictures drawn here (tests/fixtures/textpics.py: DejaVu fonts, fixed seeds).

- speed: core-ms (``time.process_time``: ONNX Runtime runs on one thread, as in the workers) per
  picture, models loaded and warm: 10 1920x1080 synthetic photos without text, saved as JPEG and
  decoded (the detection pass on the reduced copy is most of what they cost; a blob the detector
  takes for text is recognised too), and 1280x800 screenshots with 15 lines of 14 px text (both
  detections and the recognition of every line);
- memory: the RSS of a worker process reading (the daemon runs one or two), and of the
  process that hands it pictures;
- recall by text height: six words in two lines drawn at several font sizes on 1920x1080 pictures
  (plain white, a sign in a synthetic photo, plain turned by 4 degrees); recall = words read back /
  words drawn, precision = words read that were drawn / words of 4+ letters read. The height is
  the capital letters' height in px (~0.73 of the font size).

Usage: .venv/bin/python benchmarks/bench_words.py [--repeat 5] [--out benchmarks/results/words.json]
Not a test: it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from textpics import on_photo, pick_words, plain, scene, screenshot, text_height, words_found  # noqa: E402

from isearchd.models.ocr import DETECT_LONG_SIDE, DETECT_LONG_SIDE_TEXT, RapidTextModels, joined  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

SIZES = (12, 16, 20, 24, 28, 32, 40, 48)
KINDS = ("plain", "photo", "turned")


def core_ms(models: RapidTextModels, picture: Any, repeat: int) -> tuple[float, list[Any]]:
    times, read = [], []
    for _ in range(repeat):
        start = time.process_time()
        read = models.read(picture)
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times), read


def as_jpeg(picture: Any) -> Any:
    """``picture`` saved as a JPEG (quality 90) and decoded again: a camera's blocks and noise."""
    import io

    from PIL import Image

    data = io.BytesIO()
    picture.save(data, "JPEG", quality=90)
    data.seek(0)
    return Image.open(data).convert("RGB")


def speed(models: RapidTextModels, repeat: int) -> dict[str, Any]:
    photos = [core_ms(models, as_jpeg(scene((1920, 1080), seed)), repeat) for seed in range(10)]
    shots = []
    for seed in range(3):
        rows = [" ".join(pick_words(seed * 100 + i, 4)) for i in range(15)]
        ms, read = core_ms(models, screenshot(rows, seed=seed), repeat)
        expected = [w for row in rows for w in row.split()]
        shots.append((ms, len(words_found(expected, joined(read))) / len(expected)))
    return {
        "photo_1080p_no_text_core_ms": round(statistics.mean(ms for ms, _ in photos), 1),
        "photo_1080p_no_text_lines_found": sum(len(read) for _, read in photos),
        # as the words analysis keeps them (min_score 0.5; one character: 0.9)
        "photo_1080p_no_text_lines_kept": sum(
            1 for _, read in photos for ln in read if ln.score >= (0.5 if len(ln.text) > 1 else 0.9)
        ),
        "screenshot_1280x800_15_lines_core_ms": round(statistics.mean(ms for ms, _ in shots), 1),
        "screenshot_recall": round(statistics.mean(r for _, r in shots), 3),
    }


def picture(kind: str, lines: list[str], size: int, seed: int) -> Any:
    if kind == "plain":
        return plain(lines, size=size, canvas=(1920, 1080))
    if kind == "photo":
        return on_photo(lines, size=size, seed=seed)
    return plain(lines, size=size, canvas=(1920, 1080), angle=4)


def recall_by_height(models: RapidTextModels) -> list[dict[str, Any]]:
    rows = []
    for size in SIZES:
        for kind in KINDS:
            drawn = found = read_words = correct = 0
            for seed in range(3):
                words = pick_words(size * 10 + seed, 6)
                lines = [" ".join(words[:3]), " ".join(words[3:])]
                read = joined(models.read(picture(kind, lines, size, seed)))
                tokens = [t.lower() for t in re.findall(r"[A-Za-z]{4,}", read)]
                drawn += len(words)
                found += len(words_found(words, read))
                read_words += len(tokens)
                correct += sum(1 for t in tokens if t in words)
            rows.append(
                {
                    "font": size,
                    "text_px": text_height(size),
                    "kind": kind,
                    "recall": round(found / drawn, 3),
                    "precision": round(correct / read_words, 3) if read_words else None,
                }
            )
    return rows


def memory() -> dict[str, Any]:
    """RSS of a worker process (TextWorkers, as the daemon runs them): started (models not loaded
    yet), after reading 10 photos and 10 screenshots, and of this process (the daemon's side) before
    and after; the worker's memory goes back to the system when the workers stop."""
    import psutil

    from isearchd.models.ocr import TextWorkers

    me = psutil.Process()
    before = me.memory_info().rss
    workers = TextWorkers(RapidTextModels, 1, background=False)
    try:
        workers.read([scene((64, 64), 0)])
        # the pool's worker (the largest child: the other is multiprocessing's resource tracker)
        worker = max(me.children(), key=lambda p: p.memory_info().rss)
        started = worker.memory_info().rss
        for seed in range(10):
            rows = [" ".join(pick_words(seed * 100 + i, 4)) for i in range(15)]
            workers.read([scene((1920, 1080), seed), screenshot(rows, seed=seed)])
        used = worker.memory_info().rss
    finally:
        workers.close()
    mib = 1 / (1 << 20)
    return {
        "worker_rss_mib_first_picture": round(started * mib, 1),
        "worker_rss_mib_after_20_pictures": round(used * mib, 1),
        "parent_rss_growth_mib": round((me.memory_info().rss - before) * mib, 1),
    }


def library(n: int, folder: Path) -> dict[str, Any]:
    """A library of ``n`` picture files read as the daemon reads photos it has no picture of in
    memory: two text workers decoding the files themselves (PictureFile at the analysis' side),
    eight at a time. The mix: 85 % 1920x1080 photos without text (JPEG), 10 % photos with a sign
    (JPEG), 5 % 1280x800 screenshots (PNG). The workers' CPU time (their wall time depends on what
    else the machine runs)."""
    import psutil

    from isearchd.engine.words import WORDS_SIDE
    from isearchd.models.ocr import TextWorkers
    from isearchd.models.workers import PictureFile, default_workers

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        if i % 20 == 0:
            rows = [" ".join(pick_words(i * 10 + k, 4)) for k in range(15)]
            path, picture = folder / f"{i:05d}.png", screenshot(rows, seed=i)
        elif i % 10 == 1:
            words = pick_words(i, 4)
            path, picture = folder / f"{i:05d}.jpg", on_photo([" ".join(words)], size=48, seed=i)
        else:
            path, picture = folder / f"{i:05d}.jpg", scene((1920, 1080), i)
        picture.save(path, quality=90)
        files.append(PictureFile(str(path), WORDS_SIDE))
    workers = TextWorkers(RapidTextModels, default_workers(), background=False)
    try:
        workers.read(files[:2])  # start and load
        pool = [p for p in psutil.Process().children() if "resource_tracker" not in " ".join(p.cmdline())]
        cpu_before = sum(sum(p.cpu_times()[:2]) for p in pool)
        start = time.perf_counter()
        failed = 0
        for at in range(0, n, 8):
            failed += sum(isinstance(r, str) for r in workers.read(files[at : at + 8]))
        seconds = time.perf_counter() - start
        core_s = sum(sum(p.cpu_times()[:2]) for p in pool) - cpu_before
    finally:
        workers.close()
    return {
        "pictures": n,
        "workers": default_workers(),
        "wall_seconds": round(seconds, 1),
        "worker_core_seconds": round(core_s, 1),
        "failed": failed,
        "core_ms_per_picture": round(core_s / n * 1000),
        "minutes_per_10000_on_2_cores": round(core_s / n * 10000 / 2 / 60, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--library", type=int, default=0, help="also read a library of N picture files")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "words.json")
    args = ap.parse_args()
    held = memory()  # first: this process has loaded no models yet
    models = RapidTextModels()
    models.read(scene((640, 480), 0))  # load and warm
    report: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"detect_long_side": DETECT_LONG_SIDE, "detect_long_side_text": DETECT_LONG_SIDE_TEXT},
        "speed": speed(models, args.repeat),
        "recall": recall_by_height(models),
        "memory": held,
    }
    if args.library:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report["library"] = library(args.library, Path(tmp))
        lib = report["library"]
        print(
            f"library of {lib['pictures']} files on {lib['workers']} workers: {lib['wall_seconds']} s wall,"
            f" {lib['core_ms_per_picture']} core-ms a picture (decoding included):"
            f" {lib['minutes_per_10000_on_2_cores']} min per 10,000 on 2 free cores ({lib['failed']} failed)"
        )
    s = report["speed"]
    print(f"CPU: {report['machine']['cpu']} ({report['machine']['cpus']} cores; one used)")
    print(f"1920x1080 photo without text: {s['photo_1080p_no_text_core_ms']} core-ms")
    print(
        f"1280x800 screenshot, 15 lines: {s['screenshot_1280x800_15_lines_core_ms']} core-ms, "
        f"recall {s['screenshot_recall']}"
    )
    m = report["memory"]
    print(
        f"worker RSS: {m['worker_rss_mib_first_picture']} MiB after its first picture, "
        f"{m['worker_rss_mib_after_20_pictures']} after 20; "
        f"this process grew {m['parent_rss_growth_mib']} MiB"
    )
    print("\ntext px  font  " + "  ".join(f"{k:>7}" for k in KINDS))
    for size in SIZES:
        cells = {r["kind"]: r["recall"] for r in report["recall"] if r["font"] == size}
        print(f"{text_height(size):7d}  {size:4d}  " + "  ".join(f"{cells[k]:7.2f}" for k in KINDS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
