"""ONNX Runtime vs torch per model: export time, parity, int8 loss, image and text speed.

For each key (random checkpoint in the official layout, ``isearchd.models.synthetic``; and the
trained tiny CLIP of tests/fixtures, where int8's loss is more telling than on random weights):

- export: seconds to export both towers (fp32) and to quantise them (int8);
- cos fp32: the smallest cosine between ONNX Runtime fp32 and torch fp32 embeddings;
- cos int8: the smallest cosine between int8 and fp32, images and texts;
- speed (``--speed``): images/s at batch 32 for torch eager, ORT fp32, ORT int8, and a
  one-query text latency;
- cos int8 on other CPUs (``--emulate EPYC-Milan,Nehalem``): the same int8-vs-fp32 cosines
  computed by ONNX Runtime under qemu-user as that CPU (EPYC-Milan: AMD Zen 3, AVX2 without
  AVX-512 or VNNI; Nehalem: SSE4.2), since ONNX Runtime picks its integer kernels from CPUID.
  Slow (emulated): about a minute per ViT key.

The JSON names the CPU it ran on and its vector extensions; the table is printed at the end.

Usage:  .venv/bin/python benchmarks/bench_onnx.py [--keys ViT-45LY,ViT-8Y|all] [--speed]
        [--emulate EPYC-Milan,Nehalem] [--out benchmarks/results/onnx.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

TEXTS = [
    "a red circle",
    "a blue square on a white background",
    "Ein Hund läuft über die Wiese! 🐕",
    " ".join(["a very long caption about a small red circle on a blue background"] * 12),
]


def _images(n: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth blobs, not white noise
        out.append(Image.fromarray(base).resize((320 + 16 * i, 240), Image.Resampling.BICUBIC))
    return out


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a * b).sum(axis=1).min()), 6)


def _speed(fn: Any, *args: Any, repeat: int = 3) -> float:
    fn(*args)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def _cpu() -> dict[str, Any]:
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        info = ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = next(
        (set(ln.split(":", 1)[1].split()) for ln in info.splitlines() if ln.startswith("flags")), set()
    )
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {"model": model or platform.processor(), "extensions": [f for f in wanted if f in flags]}


def int8_cosines(model_arg: str, weights: str | None) -> dict[str, float]:
    """int8 against fp32 on this CPU, from the exports in the cache (ONNX Runtime only, no torch)."""
    from isearchd.models import load_model

    kw: dict[str, Any] = {"weights": Path(weights)} if weights else {}
    fp32 = load_model(model_arg, backend="onnx", **kw)
    int8 = load_model(model_arg, backend="onnx", precision="int8", **kw)
    images = _images()
    return {
        "images": _min_cos(int8.embed_images(images), fp32.embed_images(images)),
        "texts": _min_cos(int8.embed_texts(TEXTS), fp32.embed_texts(TEXTS)),
    }


def _emulated(cpu: str, model_arg: str, weights: Path | None) -> dict[str, float]:
    command = ["qemu-x86_64", "-cpu", cpu, sys.executable, __file__, "--child", model_arg]
    done = subprocess.run(
        [*command, str(weights) if weights else ""], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(key: str, weights: Path, speed: bool, emulate: list[str]) -> dict[str, Any]:
    import torch

    from isearchd.models import load_model
    from isearchd.models.onnx_export import export_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "0")) or torch.get_num_threads())
    model_arg = str(weights) if key.startswith("custom") else key
    ref = load_model(model_arg, weights=None if key.startswith("custom") else weights)
    t = time.perf_counter()
    export_model(ref, "fp32")
    export_fp32 = time.perf_counter() - t
    t = time.perf_counter()
    export_model(ref, "int8")
    export_int8 = time.perf_counter() - t
    kw: dict[str, Any] = {} if key.startswith("custom") else {"weights": weights}
    fp32 = load_model(model_arg, backend="onnx", **kw)
    int8 = load_model(model_arg, backend="onnx", precision="int8", **kw)
    images = _images()
    ti, tt = ref.embed_images(images), ref.embed_texts(TEXTS)
    fi, ft = fp32.embed_images(images), fp32.embed_texts(TEXTS)
    qi, qt = int8.embed_images(images), int8.embed_texts(TEXTS)
    row: dict[str, Any] = {
        "key": key,
        "export_fp32_s": round(export_fp32, 1),
        "quantise_int8_s": round(export_int8, 1),
        "cos_fp32_vs_torch": min(_min_cos(fi, ti), _min_cos(ft, tt)),
        "cos_int8_vs_fp32_images": _min_cos(qi, fi),
        "cos_int8_vs_fp32_texts": _min_cos(qt, ft),
    }
    for cpu in emulate:
        there = _emulated(cpu, model_arg, None if key.startswith("custom") else weights)
        row[f"cos_int8_vs_fp32_images@{cpu}"] = there["images"]
        row[f"cos_int8_vs_fp32_texts@{cpu}"] = there["texts"]
    if speed:
        pixels = np.stack([fp32.preprocess(img) for img in _images(32)] * 1)
        tensor = torch.from_numpy(pixels)
        row["torch_img_per_s"] = round(32 / _speed(ref.embed_pixels, tensor), 1)
        row["ort_fp32_img_per_s"] = round(32 / _speed(fp32.embed_pixels, pixels), 1)
        row["ort_int8_img_per_s"] = round(32 / _speed(int8.embed_pixels, pixels), 1)
        row["torch_text_ms"] = round(1000 * _speed(ref.embed_texts, ["a photo of a dog"], repeat=10), 2)
        row["ort_fp32_text_ms"] = round(1000 * _speed(fp32.embed_texts, ["a photo of a dog"], repeat=10), 2)
        row["ort_int8_text_ms"] = round(1000 * _speed(int8.embed_texts, ["a photo of a dog"], repeat=10), 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", default="ViT-45LY,ViT-8Y,RN-19L,tiny", help="comma list, or 'all'")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--emulate", default="", help="qemu-user CPU models, e.g. EPYC-Milan,Nehalem")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "onnx.json")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # inside qemu-user: the exports are in the parent's cache
        print(json.dumps(int8_cosines(args.child[0], args.child[1] or None)))
        return 0
    emulate = [c for c in args.emulate.split(",") if c]
    from isearchd.models import MODELS
    from isearchd.models.synthetic import write_official_checkpoint

    keys = [*MODELS, "tiny"] if args.keys == "all" else [k.strip() for k in args.keys.split(",") if k.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="isearch-onnx-"))
    os.environ["ISEARCH_CACHE"] = str(tmp / "cache")
    rows = []
    try:
        for key in keys:
            if key == "tiny":
                weights, name = REPO / "tests" / "fixtures" / "tiny-clip.pt", "custom:tiny-clip.pt"
            else:
                weights, name = write_official_checkpoint(key, tmp / f"{key}.pt", seed=0), key
            row = measure(name, weights, args.speed, emulate)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(tmp / "cache" / "onnx", ignore_errors=True)
            if key != "tiny":
                weights.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu(), "rows": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(report))
    return 0


def table(report: dict[str, Any]) -> str:
    """int8 against fp32 (smallest cosine, images / texts) per key and CPU, and the speeds if any."""
    cpus = sorted({k.split("@", 1)[1] for row in report["rows"] for k in row if "@" in k})
    here = f"{report['cpu']['model']} ({', '.join(report['cpu']['extensions'])})"
    head = [
        "key",
        "export s",
        "cos ORT/torch",
        f"int8 img/txt: {here}",
        *[f"int8 img/txt: {c}" for c in cpus],
    ]
    speed = any("ort_int8_img_per_s" in row for row in report["rows"])
    if speed:
        head += ["img/s torch / fp32 / int8"]
    lines = [" | ".join(head)]
    for row in report["rows"]:
        cells = [
            row["key"],
            f"{row['export_fp32_s']} + {row['quantise_int8_s']}",
            f"{row['cos_fp32_vs_torch']:.5f}",
            f"{row['cos_int8_vs_fp32_images']:.4f} / {row['cos_int8_vs_fp32_texts']:.4f}",
        ]
        for cpu in cpus:
            cells.append(
                f"{row[f'cos_int8_vs_fp32_images@{cpu}']:.4f} / {row[f'cos_int8_vs_fp32_texts@{cpu}']:.4f}"
            )
        if speed:
            cells.append(
                f"{row['torch_img_per_s']} / {row['ort_fp32_img_per_s']} / {row['ort_int8_img_per_s']}"
            )
        lines.append(" | ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
