"""The README's main-job command, contrib/demo.sh, run end to end.

The test runs inside the project's environment, so it sets ISEARCH_DEMO_SKIP_VENV=1 (the script
then uses the python3 on PATH instead of creating .venv). The weights cache is the test's empty
temporary one, so the demo must fall back to the bundled test model and say so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "contrib" / "demo.sh"
RESULT_LINE = re.compile(r"^ ?\d+\. (?P<path>\S+)\t(?P<sim>\d+\.\d)%$")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """The demo's TMPDIR: short, since its data home holds a Unix socket (~107-byte path limit)."""
    root = Path(tempfile.mkdtemp(prefix="isdemo-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_demo_runs_end_to_end(short_tmp: Path) -> None:
    root = short_tmp
    env = dict(os.environ)
    env.update(
        ISEARCH_DEMO_SKIP_VENV="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TMPDIR=str(root),
    )
    proc = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=600, cwd=root)
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in out + proc.stderr

    # it says which model it uses, and why
    assert "bundled TEST model tests/fixtures/tiny-clip.pt" in out
    assert "ViT-45LY weights are not cached" in out

    # every step ran, in order
    steps = [
        "$ isearch service start -m tests/fixtures/tiny-clip.pt",
        "ImgSearch service started (PID ",
        "$ isearch service status",
        "ImgSearch service is running",
        "$ isearch add ",
        'Added 60 images to database "default"; skipped 0 already present; 0 failed',
        '$ isearch -n 5 "a red circle"',
        "Searching a red circle...",
        "Found 5 similar images (similarity ≥ 0.0%):",
        "$ isearch search -n 5 ",
        "Similarity between images: ",
        "$ isearch db --info",
        "* Size: 60",
        "$ isearch ui --no-browser --listen 127.0.0.1:0",
        "ImgSearch web page: http://127.0.0.1:",
        "$ isearch service stop",
        "ImgSearch service stopped (PID ",
        "Demo finished",
    ]
    pos = 0
    for step in steps:
        found = out.find(step, pos)
        assert found >= 0, f"missing {step!r} after position {pos} in:\n{out}"
        pos = found + len(step)

    # the text search finds red circles first, the image search finds blue squares first
    sections = out.split("\n$ isearch ")
    text_hits = _hits(next(s for s in sections if s.startswith('-n 5 "a red circle"')))
    image_hits = _hits(next(s for s in sections if s.startswith("search -n 5 ")))
    assert len(text_hits) == 5 and len(image_hits) == 5
    assert Path(text_hits[0][0]).name.startswith("red_circle_")
    assert Path(image_hits[0][0]).name.startswith("blue_square_")

    # nothing is left behind: no daemon, no temporary home
    pid = int(re.search(r"ImgSearch service stopped \(PID (\d+)\)", out).group(1))  # type: ignore[union-attr]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not list(root.glob("isearch-demo.*"))


def test_demo_fails_loudly(short_tmp: Path) -> None:
    """A broken step makes the script exit non-zero and still clean up."""
    root = short_tmp
    env = dict(os.environ)
    env.update(
        ISEARCH_DEMO_SKIP_VENV="1",
        ISEARCH_DEMO_MODEL=str(root / "missing.pt"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TMPDIR=str(root),
    )
    proc = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode != 0
    assert "missing.pt" in proc.stderr
    assert not list(root.glob("isearch-demo.*"))


def _hits(section: str) -> list[tuple[str, float]]:
    hits = []
    for line in section.splitlines():
        m = RESULT_LINE.match(line)
        if m:
            hits.append((m.group("path"), float(m.group("sim"))))
    return hits
