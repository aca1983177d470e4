"""The install, measured (issue 26): venv sizes by package, pip install time, model import, first start.

Builds fresh venvs in a scratch folder from the locks (the registry pip is configured with; on
our machines a local mirror, so the times are install times more than download times):

- ``default``: ``requirements/runtime.txt`` and the project's wheel, what ``pip install isearchd``
  gets: no torch;
- ``torch`` (``--torch``): the same plus the ``[torch]`` extra, at the test lock's versions.

For each: seconds of ``pip install`` (no pip cache), the venv's size on disk and the largest
packages (the files each distribution's RECORD lists); for ``default`` also the size without the
default-on analyses (dlib and its models for faces, rapidocr and OpenCV for words, PyAV's FFmpeg
for video frames: the packages only they need). Then ``isearch model import ViT-45LY`` of a
random checkpoint in the official layout (the builder in ``default``; ``--exporter torch`` in
``torch``) and the first ``isearch service start`` after it (median of three, the export cached).

Usage:  .venv/bin/python benchmarks/bench_install.py [--torch] [--out benchmarks/results/install.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
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
from machine import cpu_model  # noqa: E402

# The default-on analyses' own requirements (faces, words, video frames): what a "without them"
# install drops.
ANALYSES = ("dlib-bin", "face-recognition-models", "rapidocr", "opencv-python", "av")
TORCH_EXTRA = ("torch", "torchvision", "open_clip_torch")
KEY = "ViT-45LY"

# Run inside a venv: each distribution's size and requirements, as JSON.
_SIZES = r"""
import json, re
from importlib import metadata
out = {}
for dist in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    size = 0
    for f in dist.files or []:
        try:
            size += f.locate().stat().st_size
        except OSError:
            pass
    requires = [r for r in (dist.requires or []) if "extra ==" not in r]
    out[name] = {"bytes": size, "requires": [re.split(r"[ ;<>=!~\[(]", r, 1)[0].lower() for r in requires]}
print(json.dumps(out))
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(venv: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            *args,
            "-q",
            "--no-cache-dir",
            "--disable-pip-version-check",
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def sizes(venv: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _SIZES], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def closure(dists: dict[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        seen.add(name)
        todo.extend(norm(r) for r in dists[name]["requires"])
    return seen


def make_venv(root: Path, name: str, wheel: Path, extra: list[str]) -> tuple[Path, float]:
    venv = root / name
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    seconds = pip(venv, "install", "--require-hashes", "-r", str(REPO / "requirements" / "runtime.txt"))
    seconds += pip(venv, "install", "--no-deps", str(wheel))
    if extra:
        seconds += pip(venv, "install", "-c", str(root / "constraints.txt"), *extra)
    return venv, seconds


def constraints(root: Path) -> None:
    """The test lock's pins without hashes: the torch venv gets the versions the tests ran."""
    pins = [
        line.split()[0]
        for line in (REPO / "requirements" / "test.txt").read_text().splitlines()
        if re.match(r"^[A-Za-z0-9].*==", line)
    ]
    (root / "constraints.txt").write_text("\n".join(pins) + "\n")


def isearch(venv: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(venv / "bin" / "isearch"), *args], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"isearch {' '.join(args)} failed: {done.stderr.strip()}")
    return seconds, done.stdout + done.stderr


def model_times(venv: Path, root: Path, checkpoint: Path, exporter: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISEARCH_", "PYTHON"))}
    env.update(ISEARCH_HOME=str(root / "h"), ISEARCH_CACHE=str(root / f"cache-{venv.name}"))
    env.update(ISEARCH_CONFIG=str(root / "none.toml"), ISEARCH_WEIGHTS_URL="http://127.0.0.1:9/none")
    imported, _ = isearch(venv, env, "model", "import", KEY, str(checkpoint), "--exporter", exporter)
    starts = []
    for _ in range(3):
        seconds, _ = isearch(venv, env, "service", "start", "-m", KEY)
        starts.append(seconds)
        isearch(venv, env, "service", "stop")
    shutil.rmtree(root / f"cache-{venv.name}", ignore_errors=True)
    return {"import_s": round(imported, 1), "first_start_s": round(statistics.median(starts), 2)}


def report(name: str, venv: Path, seconds: float) -> dict[str, Any]:
    dists = sizes(venv)
    total = du(venv)
    everything = closure(dists, ["isearchd"])
    core = closure({**dists, "isearchd": {**dists["isearchd"], "requires": [
        r for r in dists["isearchd"]["requires"] if norm(r) not in ANALYSES
    ]}}, ["isearchd"])  # fmt: skip
    analyses_only = everything - core
    dropped = sum(dists[d]["bytes"] for d in analyses_only)
    top = sorted(dists.items(), key=lambda kv: -kv[1]["bytes"])[:15]
    return {
        "venv": name,
        "pip_install_s": round(seconds, 1),
        "mib": round(total / 2**20),
        "mib_without_analyses": round((total - dropped) / 2**20),
        "analyses_packages": sorted(analyses_only),
        "largest_mib": {d: round(v["bytes"] / 2**20, 1) for d, v in top},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--torch", action="store_true", help="also the venv with the [torch] extra (~6 GB)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "install.json")
    args = parser.parse_args()
    from isearchd.models.synthetic import write_official_checkpoint

    results: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "venvs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-install-") as scratch:
        root = Path(scratch)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
             "-w", str(root / "wheel")],
            check=True, cwd=root, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(REPO / "build", ignore_errors=True)
        wheel = next((root / "wheel").glob("isearchd-*.whl"))
        constraints(root)
        checkpoint = write_official_checkpoint(KEY, root / f"{KEY}.pt")
        plans = [("default", [], "builder")] + ([("torch", list(TORCH_EXTRA), "torch")] if args.torch else [])
        for name, extra, exporter in plans:
            venv, seconds = make_venv(root, name, wheel, extra)
            row = report(name, venv, seconds)
            row.update(model_times(venv, root, checkpoint, exporter), exporter=exporter)
            results["venvs"].append(row)
            shutil.rmtree(venv)
            print(f"{name}: {row}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['cpu']}, {results['cores']} cores, {results['date']}")
    print(f"{'venv':8} {'MiB':>6} {'no analyses':>11} {'pip s':>6} {'import s':>8} {'start s':>7}  exporter")
    for row in results["venvs"]:
        print(
            f"{row['venv']:8} {row['mib']:>6} {row['mib_without_analyses']:>11} {row['pip_install_s']:>6} "
            f"{row['import_s']:>8} {row['first_start_s']:>7}  {row['exporter']}"
        )
    for row in results["venvs"]:
        largest = ", ".join(f"{d} {m}" for d, m in row["largest_mib"].items())
        print(f"\nlargest packages ({row['venv']}): {largest}")


if __name__ == "__main__":
    main()
