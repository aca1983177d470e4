"""JPEG decode: full decode vs ``Image.draft`` reduced-scale decode (isearchd.files.images.load_image).

For real photos shipped inside the scikit-image wheel (astronaut, chelsea, coffee, rocket,
hubble_deep_field, retina), plus a worst case made of fine natural texture at native resolution
(skimage's gravel and brick tiled, no upscaling), each encoded as a JPEG (quality 90) at
4000x3000 and 1920x1080, this reports

- decode time: full decode vs draft decode (median of ``--repeat`` runs, one thread);
- pixel difference after CLIP preprocessing (shorter side -> 224 bicubic, centre crop 224):
  PSNR in dB and the largest absolute difference of a channel value;
- embedding cosine between full and draft decode, when a model can be loaded (``--model KEY``
  with cached weights or ``--weights FILE``, or a checkpoint path; default: the test model at
  tests/fixtures/tiny-clip.pt if it exists). A random-initialised checkpoint (for example from
  ``isearchd.models.synthetic``) measures only how sensitive the architecture is to the change
  in pixels, not how far search results move.

Usage:  .venv/bin/python benchmarks/bench_decode.py [--repeat 5] [--model KEY_OR_PATH]

The photos are upscaled from at most 1411 px, so they are smoother than a real 12 MP photo; the
texture mosaic is the pessimistic case.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isearchd.files.images import load_image  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
SIZES = ((4000, 3000), (1920, 1080))
CLIP_SIZE = 224


def photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def texture_mosaic(size: tuple[int, int]) -> Image.Image:
    """Fine natural texture at native resolution: tiles of skimage's gravel, brick and grass."""
    from skimage import data

    tiles = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in ("gravel", "brick", "grass")]
    out = Image.new("RGB", size)
    tw, th = tiles[0].size
    for i, y in enumerate(range(0, size[1], th)):
        for j, x in enumerate(range(0, size[0], tw)):
            out.paste(tiles[(i + j) % len(tiles)], (x, y))
    return out


def cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover ``size`` and centre-crop to it (like a camera frame)."""
    w, h = img.size
    scale = max(size[0] / w, size[1] / h)
    big = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
    return big.crop((left, top, left + size[0], top + size[1]))


def clip_view(img: Image.Image, size: int = CLIP_SIZE) -> np.ndarray:
    """CLIP preprocessing up to the pixels: shorter side -> size bicubic, centre crop."""
    w, h = img.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = round((nh - size) / 2), round((nw - size) / 2)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def load_model_for_cos(spec: str | None, weights: str | None) -> Any:
    try:
        from isearchd.models import load_model
    except ImportError:
        return None
    if spec is None:
        default = REPO / "tests" / "fixtures" / "tiny-clip.pt"
        if not default.exists():
            return None
        spec = str(default)
    return load_model(spec, weights=weights)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default=None, help="model key or checkpoint path for the cosine column")
    parser.add_argument("--weights", default=None, help="weights file for --model KEY (default: the cache)")
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    model = load_model_for_cos(args.model, args.weights)
    print(f"model for cosine: {model.key if model is not None else 'none'}")
    header = f"{'image':<18} {'size':>9} {'full ms':>8} {'draft ms':>8} {'speedup':>7} {'draft px':>9}"
    header += f" {'PSNR dB':>7} {'maxdiff':>7}" + (f" {'cos':>9}" if model is not None else "")
    print(header)
    rows: list[tuple[float, float, float, float | None]] = []
    sources = [(n, lambda n=n: photo(n)) for n in PHOTOS]
    for size in SIZES:
        for name, make in [*sources, ("texture-mosaic", None)]:
            img = texture_mosaic(size) if make is None else cover(make(), size)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=args.quality)
            data = buf.getvalue()
            # min_side larger than the picture disables the draft path: the full decode
            t_full, full = timed(lambda data=data: load_image(data, min_side=100_000), args.repeat)
            t_draft, draft = timed(lambda data=data: load_image(data), args.repeat)
            a, b = clip_view(full), clip_view(draft)
            p, md = psnr(a, b), float(np.abs(a - b).max())
            cos = None
            if model is not None:
                e = model.embed_images([full, draft])
                cos = float(np.dot(e[0], e[1]))
            rows.append((t_full, t_draft, p, cos))
            line = f"{name:<18} {size[0]}x{size[1]:<4} {t_full * 1e3:8.1f} {t_draft * 1e3:8.1f}"
            line += f" {t_full / t_draft:6.1f}x {draft.width}x{draft.height:<4} {p:7.1f} {md:7.0f}"
            line += f" {cos:9.6f}" if cos is not None else ""
            print(line)
    worst = min(r[2] for r in rows)
    print(f"worst PSNR {worst:.1f} dB", end="")
    cosines = [r[3] for r in rows if r[3] is not None]
    print(f"; lowest cos {min(cosines):.6f}" if cosines else "")


if __name__ == "__main__":
    main()
