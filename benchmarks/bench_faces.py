"""The dlib face models (isearchd.models.dlib_faces): speed, memory, and how well they tell people apart.

On deepface's labelled test photos (``tests/unit/dataset`` of serengil/deepface: img*.jpg with
``master.csv``, and ``face-recognition-pivot.csv`` when it is there), given as a folder:

- speed: detect and describe, core-ms (``time.process_time``) per photo, each photo first resized so
  its longer side is ``--long-side`` px (1920: a phone photo); decoding and resizing not counted.
  Also photos without faces (scikit-image's), which pay for the detector's upsampled second pass;
- memory: RSS of a fresh process before the models load, loaded and used once, after ``close()``;
- matching: precision and recall of "same person" (distance below a threshold) over master.csv's
  pairs, and over every pair of labelled photos (people = the groups of ``Yes`` pairs of both
  CSVs), on the unit descriptors ``describe`` returns (the match distance is chosen here: the
  largest with precision at least 0.99 over every pair) and on dlib's raw ones (whose customary
  threshold is 0.6);
- ``--small-faces``: where the detector's size constants come from. Faces cut from the photos are
  planted, 12 at a time, at widths of 50-260 px in 1920x1440 pictures; found / planted and
  core-ms per picture for the plain HOG detector at several detection sizes, with and without
  upsampling, and for ``detect`` itself;
- ``--face-sizes``: how descriptors hold up on small faces: each photo shrunk so its face is
  30-140 px wide, described, and compared with the other photos at ``--long-side``.

Usage: .venv/bin/python benchmarks/bench_faces.py DATASET_DIR [--small-faces] [--face-sizes]
       [--long-side 1920] [--out benchmarks/results/faces.json]
Not a test: it prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.models import dlib_faces  # noqa: E402
from isearchd.models.dlib_faces import DlibFaceModels  # noqa: E402
from isearchd.models.faces import DetectedFace  # noqa: E402

UNIT_THRESHOLDS = [round(0.25 + 0.025 * i, 3) for i in range(9)]  # 0.25 .. 0.45
RAW_THRESHOLDS = [round(0.40 + 0.05 * i, 2) for i in range(6)]  # 0.40 .. 0.65
TARGET_PRECISION = 0.99
FACE_WIDTHS = (50, 70, 90, 120, 140, 160, 200, 260)
DETECT_SIDES = (640, 800, 1024, 1280)
SHRUNK_FACE_WIDTHS = (30, 40, 50, 60, 80, 100, 140)


def _cpu() -> dict[str, Any]:
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        info = ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = next(
        (set(ln.split(":", 1)[1].split()) for ln in info.splitlines() if ln.startswith("flags")), set()
    )
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "amx_int8", "hypervisor")
    return {
        "model": model or platform.processor(),
        "extensions": [f for f in wanted if f in flags],
        "cpus": os.cpu_count(),
    }


# ---------------------------------------------------------------- labels


def labels(folder: Path) -> tuple[dict[str, str], list[tuple[str, str, bool]]]:
    """person of each labelled photo (groups of Yes pairs, both CSVs), and master.csv's pairs."""
    rows: list[tuple[str, str, bool]] = []
    master: list[tuple[str, str, bool]] = []
    for name in ("master.csv", "face-recognition-pivot.csv"):
        if not (folder / name).is_file():
            continue
        with (folder / name).open(newline="") as f:
            for row in csv.DictReader(f):
                a, b = Path(row["file_x"]).name, Path(row["file_y"]).name
                same = (row.get("Decision") or row.get("decision")) == "Yes"
                rows.append((a, b, same))
                if name == "master.csv":
                    master.append((a, b, same))
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b, same in rows:
        ra, rb = root(a), root(b)
        if same:
            parent[ra] = rb
    people = {x: root(x) for x in list(parent)}
    broken = [(a, b) for a, b, same in rows if not same and people[a] == people[b]]
    if broken:
        raise SystemExit(f"the labels contradict each other: {broken}")
    return people, master


# ---------------------------------------------------------------- speed and descriptors


def resized(picture: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(picture.size)
    size = (round(picture.width * scale), round(picture.height * scale))
    return picture.resize(size, Image.Resampling.BICUBIC)


def _raw(dlib: Any, describer: Any, pixels: np.ndarray, face: DetectedFace) -> np.ndarray:
    """dlib's own descriptor (not scaled to unit length) for the same aligned face."""
    left, top, width, height = face.box
    rect = dlib.rectangle(left, top, left + width - 1, top + height - 1)
    shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in face.landmarks])
    return np.asarray(describer.compute_face_descriptor(pixels, shape), dtype=np.float32)


def analyse(models: DlibFaceModels, photos: list[Path], long_side: int) -> dict[str, Any]:
    """Per photo: faces, detect and describe core-ms; the largest face's unit and raw descriptors."""
    import dlib

    describer = dlib.face_recognition_model_v1(str(dlib_faces.model_files()[1]))
    per_photo: dict[str, Any] = {}
    for path in photos:
        with Image.open(path) as im:
            picture = resized(im.convert("RGB"), long_side)
        t0 = time.process_time()
        faces = models.detect(picture)
        t1 = time.process_time()
        rows = models.describe(picture, faces)
        t2 = time.process_time()
        row: dict[str, Any] = {
            "faces": len(faces),
            "detect_ms": (t1 - t0) * 1e3,
            "describe_ms": (t2 - t1) * 1e3,
        }
        if faces:
            main = max(range(len(faces)), key=lambda i: faces[i].box[2] * faces[i].box[3])
            row["unit"] = rows[main]
            row["raw"] = _raw(dlib, describer, np.asarray(picture), faces[main])
        per_photo[path.name] = row
    return per_photo


def faceless(models: DlibFaceModels, long_side: int) -> list[dict[str, Any]]:
    from skimage import data

    out = []
    for name in ("coffee", "rocket", "chelsea"):
        picture = resized(Image.fromarray(getattr(data, name)()).convert("RGB"), long_side)
        t0 = time.process_time()
        found = len(models.detect(picture))
        out.append({"picture": name, "faces": found, "detect_ms": round((time.process_time() - t0) * 1e3, 1)})
    return out


def speed_summary(per_photo: dict[str, Any]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        return {
            "mean": round(statistics.mean(values), 1),
            "median": round(statistics.median(values), 1),
            "p90": round(float(np.percentile(values, 90)), 1),
        }

    rows = list(per_photo.values())
    with_faces = [r for r in rows if r["faces"]]
    return {
        "photos": len(rows),
        "photos_without_a_face_found": [n for n, r in per_photo.items() if not r["faces"]],
        "faces": sum(r["faces"] for r in rows),
        "detect_ms": stats([r["detect_ms"] for r in rows]),
        "describe_ms_per_face": stats([r["describe_ms"] / r["faces"] for r in with_faces]),
        "total_ms_per_photo": stats([r["detect_ms"] + r["describe_ms"] for r in rows]),
    }


# ---------------------------------------------------------------- matching


def sweep(pairs: list[tuple[float | None, bool]], thresholds: list[float]) -> list[dict[str, Any]]:
    """Precision and recall of distance < t; a pair with a photo whose face was missed counts as no match."""
    out = []
    positives = sum(same for _, same in pairs)
    for t in thresholds:
        tp = sum(1 for d, same in pairs if same and d is not None and d < t)
        fp = sum(1 for d, same in pairs if not same and d is not None and d < t)
        out.append({
            "threshold": t, "true_matches": tp, "false_matches": fp,
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / positives, 4) if positives else 0.0,
        })  # fmt: skip
    return out


def matching(
    per_photo: dict[str, Any], people: dict[str, str], master: list[tuple[str, str, bool]]
) -> dict[str, Any]:
    def distance(a: str, b: str, kind: str) -> float | None:
        if kind not in per_photo.get(a, {}) or kind not in per_photo.get(b, {}):
            return None
        return float(np.linalg.norm(per_photo[a][kind] - per_photo[b][kind]))

    labelled = sorted(n for n in people if n in per_photo)
    every = [(a, b, people[a] == people[b]) for a, b in itertools.combinations(labelled, 2)]
    result: dict[str, Any] = {
        "labelled_photos": len(labelled),
        "people": len({people[n] for n in labelled}),
        "pairs": {"master_csv": len(master), "every": len(every)},
        "same_person_pairs": {"master_csv": sum(s for *_, s in master), "every": sum(s for *_, s in every)},
    }
    for kind, thresholds in (("unit", UNIT_THRESHOLDS), ("raw", RAW_THRESHOLDS)):
        for label, pairs in (("master_csv", master), ("every", every)):
            result[f"{kind}_{label}"] = sweep([(distance(a, b, kind), s) for a, b, s in pairs], thresholds)
        same = [d for a, b, s in every if s and (d := distance(a, b, kind)) is not None]
        other = [d for a, b, s in every if not s and (d := distance(a, b, kind)) is not None]
        result[f"{kind}_same_person_max"] = round(max(same), 4)
        result[f"{kind}_other_people_min"] = round(min(other), 4)
    missed = []
    for a, b, same in every:
        d = distance(a, b, "unit")
        if same and (d is None or d >= dlib_faces.MATCH_DISTANCE):
            missed.append((a, b, None if d is None else round(d, 4)))
    result["same_person_pairs_beyond_match_distance"] = missed
    good = [r for r in result["unit_every"] if r["precision"] >= TARGET_PRECISION]
    result["recommended_unit_distance"] = (
        max(good, key=lambda r: r["threshold"])["threshold"] if good else None
    )
    return result


# ---------------------------------------------------------------- memory (in a fresh process)


def rss_child(photo: Path) -> None:
    import gc

    import psutil

    proc = psutil.Process()

    def mib() -> float:
        return round(proc.memory_info().rss / 2**20, 1)

    out = {"before_models": mib()}
    models = DlibFaceModels()
    models.detect(Image.new("RGB", (64, 64)))
    out["loaded"] = mib()
    with Image.open(photo) as im:
        picture = resized(im.convert("RGB"), 1920)
    models.describe(picture, models.detect(picture))
    del picture
    gc.collect()
    out["loaded_and_used"] = mib()
    models.close()
    gc.collect()
    out["after_close"] = mib()
    print(json.dumps(out))


def rss(photo: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(photo)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- small faces (the size constants)


def _face_crops(
    models: DlibFaceModels, photos: list[Path]
) -> list[tuple[Image.Image, tuple[float, float, float]]]:
    """Each one-face photo cropped around its face (60 % margin), with the face's left, top, width."""
    crops = []
    for path in photos:
        with Image.open(path) as im:
            picture = im.convert("RGB")
        faces = models.detect(picture)
        if len(faces) != 1:
            continue
        left, top, width, height = faces[0].box
        margin = 0.6 * width
        box = (
            int(max(0, left - margin)), int(max(0, top - margin)),
            int(min(picture.width, left + width + margin)), int(min(picture.height, top + height + margin)),
        )  # fmt: skip
        crops.append((picture.crop(box), (left - box[0], top - box[1], width)))
    return crops


def _planted(
    crops: list[Any], width: int, first: int, backdrop: Image.Image
) -> tuple[Image.Image, list[Any]]:
    """A 1920x1440 picture with 12 faces of ``width`` px on a blurred photo; their boxes."""
    canvas = backdrop.resize((1920, 1440)).filter(ImageFilter.GaussianBlur(30))
    boxes = []
    for i in range(12):
        crop, (fl, ft, fw) = crops[(first + i) % len(crops)]
        scale = width / fw
        face = crop.resize(
            (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.LANCZOS
        )
        cx, cy = (i % 4) * 480 + 240, (i // 4) * 480 + 240
        x, y = cx - round((fl + fw / 2) * scale), cy - round((ft + fw / 2) * scale)
        canvas.paste(face, (x, y))
        boxes.append((cx, cy, width))
    return canvas, boxes


def _hits(centres: list[tuple[float, float]], boxes: list[Any]) -> int:
    return sum(any(abs(x - cx) < w / 2 and abs(y - cy) < w / 2 for x, y in centres) for cx, cy, w in boxes)


def small_faces(models: DlibFaceModels, photos: list[Path]) -> dict[str, Any]:
    import dlib

    detector = dlib.get_frontal_face_detector()
    crops = _face_crops(models, photos)
    with Image.open(photos[0]) as im:
        backdrop = im.convert("RGB")
    found: dict[str, dict[int, int]] = {}
    ms: dict[str, float] = {}
    smallest: dict[str, int] = {}  # the narrowest box found, in the detection copy's pixels
    planted = 0
    for width in FACE_WIDTHS:
        for first in (0, 12):
            canvas, boxes = _planted(crops, width, first, backdrop)
            planted += len(boxes) if width == FACE_WIDTHS[0] else 0
            for side, up in itertools.product(DETECT_SIDES, (0, 1)):
                grey = np.asarray(resized(canvas, side).convert("L"))
                s = side / 1920
                t0 = time.process_time()
                rects = detector(grey, up)
                ms[f"{side}u{up}"] = ms.get(f"{side}u{up}", 0.0) + time.process_time() - t0
                centres = [((r.left() + r.right()) / 2 / s, (r.top() + r.bottom()) / 2 / s) for r in rects]
                found.setdefault(f"{side}u{up}", {}).setdefault(width, 0)
                smallest[f"{side}u{up}"] = min(
                    [smallest.get(f"{side}u{up}", 10**6), *(r.width() for r in rects)]
                )
                found[f"{side}u{up}"][width] += _hits(centres, boxes)
            t0 = time.process_time()
            faces = models.detect(canvas)
            ms["detect()"] = ms.get("detect()", 0.0) + time.process_time() - t0
            centres = [(f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2) for f in faces]
            found.setdefault("detect()", {}).setdefault(width, 0)
            found["detect()"][width] += _hits(centres, boxes)
    pictures = 2 * len(FACE_WIDTHS)
    return {
        "planted_per_width": planted,
        "found": found,
        "ms_per_picture": {k: round(v / pictures * 1e3, 1) for k, v in ms.items()},
        "narrowest_box_px_at_detection_size": smallest,
        "note": "detect() runs its second, upsampled pass only when the first finds nothing: with 12 faces "
        "of one size in a picture it shows the fallback only where none of the 12 is found at 800 px",
    }


def face_sizes(
    models: DlibFaceModels, per_photo: dict[str, Any], people: dict[str, str], folder: Path
) -> dict[str, Any]:
    """Descriptors of faces shrunk to each width against the other photos' at ``--long-side``."""
    distance = dlib_faces.MATCH_DISTANCE
    names = [n for n in people if "unit" in per_photo.get(n, {})]
    widths = {}  # the main face's width in the original photo
    for name in names:
        with Image.open(folder / name) as im:
            widths[name] = max(f.box[2] for f in models.detect(im.convert("RGB")))
    out: dict[str, Any] = {"threshold": distance, "rows": []}
    for width in SHRUNK_FACE_WIDTHS:
        tp = fp = positives = missed = 0
        for name in names:
            with Image.open(folder / name) as im:
                scale = width / widths[name]
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            others = [m for m in names if m != name]
            positives += sum(people[m] == people[name] for m in others)
            found = models.detect(small)
            if not found:
                missed += 1
                continue
            main = max(found, key=lambda f: f.box[2])
            row = models.describe(small, [main])[0]
            for m in others:
                if np.linalg.norm(row - per_photo[m]["unit"]) < distance:
                    tp += people[m] == people[name]
                    fp += people[m] != people[name]
        out["rows"].append({
            "face_px": width, "photos_missed": missed, "recall": round(tp / positives, 4),
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        })  # fmt: skip
    return out


# ---------------------------------------------------------------- report


def _pr(row: dict[str, Any]) -> str:
    return f"{row['precision']:.4f} / {row['recall']:.4f}"


def _print(report: dict[str, Any]) -> None:
    cpu = report["machine"]["cpu"]
    print(f"\nCPU: {cpu['model']} ({', '.join(cpu['extensions'])}), {cpu['cpus']} cores; one core used")
    sp = report["speed"]
    print(f"\nspeed at {report['long_side']} px, core-ms: {sp['photos']} photos, {sp['faces']} faces")
    for key in ("detect_ms", "describe_ms_per_face", "total_ms_per_photo"):
        st = sp[key]
        print(f"  {key:<22} mean {st['mean']:>7}  median {st['median']:>7}  p90 {st['p90']:>7}")
    for row in report["faceless"]:
        print(f"  no face: {row['picture']:<8} found {row['faces']}  detect {row['detect_ms']} ms")
    r = report["rss_mib"]
    print(f"\nRSS MiB: before {r['before_models']}  loaded {r['loaded']}", end="")
    print(f"  used {r['loaded_and_used']}  closed {r['after_close']}")
    m = report["matching"]
    print(f"\nmatching: {m['labelled_photos']} photos of {m['people']} people", end="")
    print(f"; pairs {m['pairs']}, same person {m['same_person_pairs']}")
    for kind in ("unit", "raw"):
        print(f"  {kind} descriptors: same-person max {m[f'{kind}_same_person_max']}", end="")
        print(f", other people min {m[f'{kind}_other_people_min']}")
        print("    threshold   master.csv P / R     every pair P / R   (false matches)")
        for a, b in zip(m[f"{kind}_master_csv"], m[f"{kind}_every"], strict=True):
            print(f"    {a['threshold']:<9}   {_pr(a)}    {_pr(b)}   ({b['false_matches']})")
    print(f"  recommended (unit, precision >= {TARGET_PRECISION}): {m['recommended_unit_distance']}")
    beyond = m["same_person_pairs_beyond_match_distance"]
    print(f"  same person beyond {report['models']['match_distance']}: {beyond}")
    if "small_faces" in report:
        s = report["small_faces"]
        print(
            f"\nsmall faces in 1920x1440 pictures: found of {s['planted_per_width']} planted, by face width"
        )
        print("  detector     " + " ".join(f"{w:>5}" for w in FACE_WIDTHS) + "   ms/picture")
        for key, row in s["found"].items():
            counts = " ".join(f"{row[w]:>5}" for w in FACE_WIDTHS)
            narrowest = s["narrowest_box_px_at_detection_size"].get(key)
            box = f"   narrowest box {narrowest}" if narrowest else ""
            print(f"  {key:<12} {counts}   {s['ms_per_picture'][key]:>6}{box}")
    if "face_sizes" in report:
        f = report["face_sizes"]
        print(f"\nshrunk faces against full-size photos at {f['threshold']}:")
        for row in f["rows"]:
            print(f"  {row['face_px']:>4} px  missed {row['photos_missed']}  P / R {_pr(row)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--long-side", type=int, default=1920)
    ap.add_argument("--small-faces", action="store_true")
    ap.add_argument("--face-sizes", action="store_true")
    ap.add_argument("--rss-child", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "faces.json")
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    if args.folder is None:
        ap.error("give the folder of deepface's test photos")
    people, master = labels(args.folder)
    photos = sorted(args.folder.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))
    models = DlibFaceModels()
    per_photo = analyse(models, photos, args.long_side)
    report: dict[str, Any] = {
        "benchmark": "faces",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": _cpu(), "python": platform.python_version(), "platform": platform.platform()},
        "models": {
            "name": models.name,
            "version": models.version,
            "match_distance": models.match_distance,
            "dlib": importlib.metadata.version("dlib-bin"),
        },
        "long_side": args.long_side,
        "speed": speed_summary(per_photo),
        "faceless": faceless(models, args.long_side),
        "rss_mib": rss(photos[0]),
        "matching": matching(per_photo, people, master),
    }
    labelled = [p for p in photos if p.name in people]
    if args.small_faces:
        report["small_faces"] = small_faces(models, labelled)
    if args.face_sizes:
        report["face_sizes"] = face_sizes(models, per_photo, people, args.folder)
    models.close()
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
