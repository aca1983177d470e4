"""Model benchmark: parameters and load time per key, images/s for ViT-8Y and ViT-45LY.

For every key it writes a random checkpoint in the official file layout
(``isearchd.models.synthetic``: manual layout, or compact auto layout sized after the
architecture's name), then measures ``load_model(key, weights=file)``: wall time (first load,
and best of ``--repeats``) and the parameter count of the loaded model. For ViT-8Y and ViT-45LY
(``--speed-keys``) it measures images/s at batch 32 with ``torch.set_num_threads(2)``:

- ``model``: the forward pass alone on a preprocessed batch (``Model.embed_pixels``);
- ``end_to_end``: ``Model.embed_images`` on 32 decoded 640x480 RGB pictures (preprocessing
  included, decoding not);
- text queries/s: ``Model.embed_texts`` of one short query.

Rates come from the median time per call, so a burst of other work on a shared machine moves
them less than a mean would.

``--reference`` also times the reference implementation's load of each auto key (it builds the
full ViT-B/32 with masks, then prunes), for comparison.

Usage: python benchmarks/bench_models.py [--keys ViT-8Y ...] [--out benchmarks/results/models.json]
Not a test: numbers depend on the machine and its load; the script prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.models import MODELS, load_model  # noqa: E402
from isearchd.models.synthetic import write_official_checkpoint  # noqa: E402

BATCH = 32
THREADS = 2


def _pictures(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (480 // 8, 640 // 8, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        tile = np.roll(base, i, axis=1).repeat(8, axis=0).repeat(8, axis=1)
        out.append(Image.fromarray(tile))
    return out


def _images_per_s(fn: Any, n_images: int, min_s: float = 3.0, min_runs: int = 5) -> float:
    """Throughput from the median call time (robust to other processes' bursts on a shared box)."""
    fn()  # warm-up (first call allocates)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - started < min_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / float(np.median(times))


def bench_key(key: str, folder: Path, repeats: int, reference: bool) -> dict[str, Any]:
    spec = MODELS[key]
    path = folder / spec.file_name
    write_official_checkpoint(key, path, seed=0)
    times = []
    model = None
    for _ in range(repeats):
        del model
        started = time.perf_counter()
        model = load_model(key, weights=path)
        times.append(time.perf_counter() - started)
    assert model is not None
    towers = model.towers
    vision = (
        sum(p.numel() for n, p in towers.named_parameters() if n.startswith(("visual.", "clip.visual.")))
        if isinstance(towers, torch.nn.Module)
        else 0
    )
    row: dict[str, Any] = {
        "key": key,
        "arch": spec.arch,
        "auto": spec.auto,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "params": model.num_parameters,
        "vision_params": vision,
        "load_s_first": round(times[0], 3),
        "load_s_best": round(min(times), 3),
    }
    if reference and spec.auto:
        row["reference_load_s"] = round(_reference_load(spec.arch, path), 2)
    path.unlink()
    return row


def _reference_load(arch: str, path: Path) -> float:
    src = REPO / ".reference" / "src"
    if str(src) not in sys.path:
        sys.path.append(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tinyclip

        started = time.perf_counter()
        tinyclip.create_model_and_transforms(arch, pretrained=str(path))
        return time.perf_counter() - started


def bench_speed(key: str, folder: Path) -> dict[str, Any]:
    spec = MODELS[key]
    path = write_official_checkpoint(key, folder / spec.file_name, seed=0)
    model = load_model(key, weights=path)
    pictures = _pictures(BATCH)
    pixels = torch.stack([model.preprocess(p) for p in pictures])
    result = {
        "key": key,
        "batch": BATCH,
        "threads": torch.get_num_threads(),
        "model_images_per_s": round(_images_per_s(lambda: model.embed_pixels(pixels), BATCH), 1),
        "end_to_end_images_per_s": round(_images_per_s(lambda: model.embed_images(pictures), BATCH), 1),
        "text_queries_per_s": round(
            _images_per_s(lambda: model.embed_texts(["a photo of a red bicycle"]), 1, min_s=2.0), 1
        ),
    }
    path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", nargs="*", default=list(MODELS))
    parser.add_argument("--speed-keys", nargs="*", default=["ViT-8Y", "ViT-45LY"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also time the reference's auto loads")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "models.json")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)

    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        folder = Path(tmp)
        rows = []
        print(f"{'key':9} {'params':>9} {'vision':>8} {'file MB':>8} {'load first':>10} {'load best':>9}")
        for key in args.keys:
            row = bench_key(key, folder, args.repeats, args.reference)
            rows.append(row)
            extra = f"  reference {row['reference_load_s']:.2f} s" if "reference_load_s" in row else ""
            print(
                f"{key:9} {row['params'] / 1e6:8.1f}M {row['vision_params'] / 1e6:7.1f}M "
                f"{row['file_mb']:8.0f} {row['load_s_first']:9.2f}s {row['load_s_best']:8.2f}s{extra}",
                flush=True,
            )
        speeds = []
        for key in args.speed_keys:
            speed = bench_speed(key, folder)
            speeds.append(speed)
            print(
                f"{key}: {speed['model_images_per_s']} images/s (model, batch {BATCH}, {THREADS} threads), "
                f"{speed['end_to_end_images_per_s']} images/s with preprocessing, "
                f"{speed['text_queries_per_s']} text queries/s",
                flush=True,
            )

    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "load_avg_1m": os.getloadavg()[0],
    }
    result: dict[str, Any] = {
        "loads": rows,
        "loads_machine": machine,
        "speed": speeds,
        "speed_machine": machine,
    }
    # A run of only one part (--keys or --speed-keys empty) keeps the other part of an earlier run.
    if args.out.exists() and not (rows and speeds):
        previous = json.loads(args.out.read_text())
        for part in ("loads", "speed"):
            if not result[part] and previous.get(part):
                result[part] = previous[part]
                result[f"{part}_machine"] = previous.get(f"{part}_machine", previous.get("machine"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
