"""The web page's figures: page weight, time to the first thumbnails of a 50-result search (cold
and warm thumbnail cache) in headless Chromium, thumbnail making rate and cache size per 1,000
photos; and, with ``--screenshot``, the README's picture of the results grid (``--people-screenshot``:
docs/people.md's picture of the People view).

Photos: N camera-like JPEGs (default 1,000 of 1920x1280; ``--size 4000x3000`` for 12 MP; quality
90) cut at random from the photographs shipped with scikit-image, so thumbnails weigh what real
ones do; indexed by a real daemon with the tiny test model (the page's costs do not depend on the
model). The screenshot uses the demo's synthetic shapes (``contrib/demo.sh``).

Usage: python benchmarks/bench_ui.py [--n 1000] [--size 1920x1280] [--out benchmarks/results/ui.json]
       python benchmarks/bench_ui.py --screenshot docs/ui.png
       python benchmarks/bench_ui.py --people-screenshot docs/people.png
Not a test: numbers depend on the machine and its load; the script prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
for sub in ("tests/integration", "tests/fixtures"):
    sys.path.insert(0, str(REPO / sub))

from browser import chromium  # noqa: E402
from daemons import DaemonProcess, free_tcp_port  # noqa: E402

# Resolves when the 50 results are shown, with the time of the first loaded thumbnail and of the
# last one in view (performance.now() from the moment the query is submitted).
TIMING_JS = """
const [text, done] = [arguments[0], arguments[arguments.length - 1]];
document.querySelector('#results').replaceChildren();
const q = document.querySelector('#q'); q.value = text;
const t0 = performance.now(); let first = null;
document.querySelector('#search').requestSubmit();
(function poll() {
  const imgs = [...document.querySelectorAll('#results .tile img')];
  const loaded = imgs.filter(i => i.complete && i.naturalWidth > 0);
  if (first === null && loaded.length) first = performance.now() - t0;
  const inView = imgs.filter(i => i.getBoundingClientRect().top < innerHeight);
  if (imgs.length && inView.every(i => i.complete && i.naturalWidth > 0)) {
    done({results: imgs.length, in_view: inView.length, first_ms: first, view_ms: performance.now() - t0});
  } else { requestAnimationFrame(poll); }
})();
"""


def photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    from skimage import data

    sources = [
        getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    ]
    sources = [np.asarray(Image.fromarray(s).convert("RGB")) for s in sources]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(src[y : y + ch, x : x + cw])
        crop = crop.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR, expand=False)
        img = crop.resize(size, Image.Resampling.BICUBIC)
        jitter = rng.uniform(0.85, 1.15, size=3)
        arr = np.clip(np.asarray(img, dtype=np.float32) * jitter, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"IMG_{i:05d}.jpg", quality=90)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as r:
        return bytes(r.read())


def dir_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.webp"))


def measure(n: int, runs: int, size: tuple[int, int]) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="bui-", dir="/tmp"))
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, extra_args=("--ui", address)).start()
    url = f"http://{address}"
    try:
        t = time.perf_counter()
        photos(root / "photos", n, size)
        made_s = time.perf_counter() - t
        with d.client() as c:
            report = c.add([str(root / "photos")])
        assert report.added == n, report
        assets = (("index.html", "/"), ("app.js", "/static/app.js"), ("app.css", "/static/app.css"))
        weight = {name: len(get(f"{url}{path}")) for name, path in assets}
        driver = chromium()
        cold, warm = [], []
        try:
            for run in range(runs):
                shutil.rmtree(d.home / "thumbnails", ignore_errors=True)
                driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
                driver.get(url + "/")
                cold.append(driver.execute_async_script(TIMING_JS, f"a photo {run}"))
                driver.get(url + "/")
                warm.append(driver.execute_async_script(TIMING_JS, f"a photo {run}"))
        finally:
            driver.quit()
        # every thumbnail once (two at a time, as the page's pool makes them): rate and cache size
        shutil.rmtree(d.home / "thumbnails", ignore_errors=True)
        ids: list[int] = []
        with d.client() as c:
            hits = c.call("search", {"db": "default", "text": "a photo", "num": n})
            ids = [h["id"] for h in hits]
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            sizes = list(pool.map(lambda i: len(get(f"{url}/thumb/default/{i}")), ids))
        thumb_s = time.perf_counter() - t
        cache = dir_bytes(d.home / "thumbnails")
        per_1000 = cache / len(ids) * 1000
        corpus = sum(f.stat().st_size for f in (root / "photos").iterdir())
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)

    def med(xs: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(x[key] for x in xs), 1)

    return {
        "photos": n,
        "photo_size": f"{size[0]}x{size[1]}",
        "photo_mb_each": round(corpus / n / 1e6, 2),
        "photos_made_s": round(made_s, 1),
        "page_bytes": weight,
        "page_total_bytes": sum(weight.values()),
        "search_results": cold[0]["results"],
        "in_view": cold[0]["in_view"],
        "cold_first_thumb_ms": med(cold, "first_ms"),
        "cold_view_ms": med(cold, "view_ms"),
        "warm_first_thumb_ms": med(warm, "first_ms"),
        "warm_view_ms": med(warm, "view_ms"),
        "thumbs_made": len(sizes),
        "thumbs_per_s": round(len(sizes) / thumb_s, 1),
        "thumb_kb_mean": round(sum(sizes) / len(sizes) / 1024, 1),
        "cache_mb_per_1000": round(per_1000 / 1e6, 2),
        "runs": runs,
    }


def _shoot(out: Path, address: str, show: Callable[[Any], None]) -> None:
    """Open the page at ``address`` in a 1280x800 window, ``show(driver)``, save a screenshot."""
    driver = chromium(1280, 800)
    try:
        driver.get(f"http://{address}/")
        show(driver)
        driver.execute_script("document.activeElement.blur()")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    print(f"wrote {out}")


def screenshot(out: Path) -> None:
    from shapes import write_samples

    root = Path(tempfile.mkdtemp(prefix="bui-", dir="/tmp"))
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, extra_args=("--ui", address)).start()
    try:
        write_samples(root / "images", 2)  # the demo's pictures: 6 colours x 5 shapes, 2 of each
        with d.client() as c:
            c.add([str(root / "images")])
        _shoot(out, address, lambda driver: driver.execute_async_script(TIMING_JS, "a blue star"))
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def people_screenshot(out: Path) -> None:
    """The People view over the test face photos (tests/fixtures/faces), two people named."""
    from daemons import FIXTURES
    from selenium.webdriver.support.ui import WebDriverWait

    def show(driver: Any) -> None:
        driver.find_element("id", "tab-people").click()
        WebDriverWait(driver, 30).until(lambda drv: drv.execute_script(
            "const imgs = [...document.querySelectorAll('#people-grid .person img')];"
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
        ))  # fmt: skip

    root = Path(tempfile.mkdtemp(prefix="bui-", dir="/tmp"))
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, people=True, extra_args=("--ui", address)).start()
    try:
        with d.client() as c:
            c.add_images([str(FIXTURES / "faces")])
            deadline = time.monotonic() + 120
            while (found := c.people()).analysed < found.total:
                if time.monotonic() > deadline:
                    raise SystemExit(f"faces not read in 120 s: {found}")
                time.sleep(0.3)
            for person, name in zip(found.people, ("Ana", "Bo"), strict=False):
                c.name_person(person.id, name)
        _shoot(out, address, show)
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size", default="1920x1280", help="photo size, WxH (4000x3000: 12 MP)")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/ui.json"))
    p.add_argument("--screenshot", default=None, help="only write the README's screenshot there")
    p.add_argument("--people-screenshot", default=None, help="only write the People view's screenshot there")
    args = p.parse_args()
    if args.screenshot:
        screenshot(Path(args.screenshot))
        return
    if args.people_screenshot:
        people_screenshot(Path(args.people_screenshot))
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    r = measure(args.n, args.runs, (width, height))
    rows = [
        ("page weight (HTML+JS+CSS)", f"{r['page_total_bytes'] / 1024:.1f} KB"),
        ("50-result search: first thumbnail, cold cache", f"{r['cold_first_thumb_ms']} ms"),
        (f"50-result search: all {r['in_view']} in view, cold cache", f"{r['cold_view_ms']} ms"),
        ("50-result search: first thumbnail, warm cache", f"{r['warm_first_thumb_ms']} ms"),
        (f"50-result search: all {r['in_view']} in view, warm cache", f"{r['warm_view_ms']} ms"),
        (f"thumbnails made ({r['photo_mb_each']} MB JPEGs)", f"{r['thumbs_per_s']} /s"),
        ("thumbnail size (mean)", f"{r['thumb_kb_mean']} KB"),
        ("thumbnail cache per 1,000 photos", f"{r['cache_mb_per_1000']} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    doc = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "result": r}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
