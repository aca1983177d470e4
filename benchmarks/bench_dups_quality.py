"""Duplicate-finding quality with a random-weight ViT-45LY checkpoint, beside the tiny model.

The test set of tests/integration/test_dups.py (six scikit-image photos with 7 planted copies each:
50 %, 25 %, JPEG q60, PNG, WebP, 2 % crop, +10 % brightness; against crops of one photo that
overlap at most 50 % and one shape in three colours) goes through a real daemon running each
model; ``isearch dups`` is asked at several candidate thresholds. Random weights cannot judge
semantics: this shows which part of the decision rests on the model (finding candidates) and
that the pixel checks alone tell copies from look-alikes.

Usage: python benchmarks/bench_dups_quality.py [--out benchmarks/results/dups_quality.json]
Not a test: it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration"), str(REPO / "tests" / "fixtures")]

from daemons import TINY_MODEL, DaemonProcess  # noqa: E402
from test_dups import planted, recall_precision  # noqa: E402

THRESHOLDS = (50.0, 70.0, 90.0)


def run(
    label: str, model: str, cache: Path | None, images: Path, src: dict[str, str]
) -> list[dict[str, object]]:
    root = Path(tempfile.mkdtemp(prefix="isd-q-", dir="/tmp"))
    if cache is not None:
        shutil.copytree(cache, root / "cache")
    d = DaemonProcess(root, model=model)
    rows = []
    try:
        d.spawn()  # (start() insists on a model file; ViT-45LY is a key with cached weights)
        d.wait_ready()
        with d.client("q", timeout=600) as c:
            c.add_images([str(images)])
            for threshold in THRESHOLDS:
                t0 = time.perf_counter()
                found = c.dups(similarity=threshold)
                dt = time.perf_counter() - t0
                groups = [[img["path"] for img in g["images"]] for g in found["groups"]]
                recall, precision = recall_precision(src, groups)
                rows.append({"model": label,
                             "min_similarity": threshold, "recall": recall, "precision": precision,
                             "groups": len(groups), "seconds": round(dt, 2)})  # fmt: skip
                print(f"{rows[-1]['model']:<28} -m {threshold:>4.0f}  recall {recall:.3f}  "
                      f"precision {precision:.3f}  groups {len(groups):>3}", flush=True)  # fmt: skip
        d.stop()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dups_quality.json"))
    args = ap.parse_args()
    from isearchd.models import weights
    from isearchd.models.synthetic import write_official_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "photos"
        src = planted(images)
        cache = Path(tmp) / "cache"
        os.environ["ISEARCH_CACHE"] = str(cache)
        write_official_checkpoint("ViT-45LY", weights.cache_file("ViT-45LY"), seed=0)
        rows = run("tiny test model", str(TINY_MODEL), None, images, src)
        rows += run("ViT-45LY (random weights)", "ViT-45LY", cache, images, src)
    result = {
        "benchmark": "dups_quality",
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
