"""Camera RAW decode cost per file: through the embedded JPEG preview vs a half-size demosaic.

For sensors of 12 MP (4000x3000), 24 MP (6000x4000) and 45 MP (8192x5464), a DNG is written
(tests/fixtures/rawfiles.py: pidng, 12-bit RGGB mosaic, uncompressed) from a real photograph
shipped in scikit-image (astronaut, upscaled), once with a 1620x1080 JPEG preview (what many
cameras embed beside the raw data, quality 92) and once with none. Each is decoded with
``load_image(data, min_side=224, name="x.dng")``, the indexer's call for a 224 px model:

- preview: LibRaw's header parse + ``extract_thumb`` + a libjpeg draft decode of the preview;
- demosaic: LibRaw's unpack + ``postprocess(half_size=True)`` (no preview in the file).

Reported per file: core-ms (``time.process_time``: CPU time of all threads of this process,
LibRaw's own thread included) and wall ms, median of ``--repeat`` runs, one file at a time.
What this leaves out: a camera's compressed raw data (lossless JPEG in DNG/CR2, Nikon's and
Sony's own) costs its decompression on top of the demosaic's unpack; the preview path does not
touch the raw data, so its cost does not depend on it.

Usage:  .venv/bin/python benchmarks/bench_raw.py [--repeat 5] [--out benchmarks/results/raw.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from rawfiles import dng_bytes  # noqa: E402

from isearchd.files.images import load_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

SENSORS = {"12 MP": (4000, 3000), "24 MP": (6000, 4000), "45 MP": (8192, 5464)}
PREVIEW = (1620, 1080)
MODEL_SIDE = 224


def photo(size: tuple[int, int]) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).convert("RGB").resize(size, Image.Resampling.BICUBIC)


def measure(data: bytes, repeat: int) -> tuple[float, float, tuple[int, int]]:
    cpu, wall = [], []
    size = (0, 0)
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        img = load_image(data, min_side=MODEL_SIDE, name="x.dng")
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
        size = img.size
    return statistics.median(cpu), statistics.median(wall), size


def main() -> None:
    raw_text = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw_text)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "raw.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for sensor, size in SENSORS.items():
        picture = photo(size)
        files = {
            "preview": dng_bytes(picture, preview=picture.resize(PREVIEW, Image.Resampling.BICUBIC)),
            "demosaic": dng_bytes(picture),
        }
        for path, data in files.items():
            cpu, wall, out = measure(data, args.repeat)
            rows.append({"sensor": sensor, "pixels": size, "path": path, "file_mb": round(len(data) / 1e6, 1),
                         "core_ms": round(cpu, 1), "wall_ms": round(wall, 1), "decoded": out})  # fmt: skip
            line = f"{sensor:>6} {path:>8}: {cpu:7.1f} core-ms {wall:7.1f} ms wall -> {out[0]}x{out[1]}"
            print(line, flush=True)

    print(f"\nCPU: {cpu_model()}; one file at a time, median of {args.repeat}")
    print("| sensor | file (MB) | path | core-ms | wall ms | decoded to |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        w, h = r["decoded"]
        print(f"| {r['sensor']} | {r['file_mb']} | {r['path']} | {r['core_ms']} | {r['wall_ms']} | {w}x{h} |")
    report = {
        "cpu": cpu_model(),
        "cores": subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip(),
        "repeat": args.repeat,
        "model_side": MODEL_SIDE,
        "preview": PREVIEW,
        "note": "uncompressed 12-bit DNGs (pidng); a camera's compressed raw adds its decompression "
        "to the demosaic path only",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
