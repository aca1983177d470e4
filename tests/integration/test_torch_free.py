"""The install without torch (issue 26): the project's default dependencies only, in a venv of its own.

``.ci/run`` builds that venv from ``requirements/runtime.txt`` and the project's wheel (not the
checkout: the wheel is what ``pip install isearchd`` gets, package data included) and names its
Python in ``ISEARCH_TORCHFREE_PYTHON``. Here, in it: no torch, torchvision, open_clip or CUDA
library is installed; every architecture's checkpoint (random values in the official layout,
written by this venv's torch) imports, and its embeddings there equal the torch model's here; the
daemon indexes and searches with the tiny model, reads faces and words, through the real socket.
Runs from a temporary folder so that the checkout's ``isearchd`` never shadows the installed one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from isearchd.models import MODELS, load_model
from isearchd.models.synthetic import write_official_checkpoint

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))
from shapes import render  # noqa: E402
from textpics import screenshot  # noqa: E402

VENV_PYTHON = os.environ.get("ISEARCH_TORCHFREE_PYTHON", "")
if not VENV_PYTHON and os.environ.get("ISEARCH_REQUIRE_TORCHFREE") == "1":
    raise RuntimeError("ISEARCH_TORCHFREE_PYTHON is not set; .ci/run builds the torch-free venv")
pytestmark = pytest.mark.skipif(not VENV_PYTHON, reason="no torch-free venv (.ci/run builds one)")

TIMEOUT_S = 300
# What the torch extra brings; none of it may be in the default install.
TORCH_MODULES = ("torch", "torchvision", "open_clip", "triton", "timm")
IMAGE_TEXTS = ["a red circle", "a photo of a dog on the beach"]


def run_in_venv(
    env: dict[str, str], cwd: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [VENV_PYTHON, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def venv_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"isnt-{os.getpid()}"  # short: socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISEARCH_", "PYTHON"))}
    env.update(
        ISEARCH_HOME=str(root / "home"),
        ISEARCH_CACHE=str(tmp_path / "cache"),
        ISEARCH_CONFIG=str(tmp_path / "config.toml"),
        ISEARCH_WEIGHTS_URL="http://127.0.0.1:9/none",  # never the network
    )
    yield env
    subprocess.run(
        [VENV_PYTHON, "-m", "isearchd.cli", "service", "stop"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    shutil.rmtree(root, ignore_errors=True)


def test_the_default_install_has_no_torch(tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, json, isearchd, pathlib\n"
        f"print(json.dumps({{'missing': [m for m in {TORCH_MODULES!r} if u.find_spec(m) is None],"
        " 'package': str(pathlib.Path(isearchd.__file__).parent)}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    found = json.loads(run_in_venv(env, tmp_path, "-c", probe).stdout)
    assert found["missing"] == list(TORCH_MODULES)
    # the installed wheel, not the checkout (whose folder may hold the venv: .ci/run's .venv-notorch)
    assert "site-packages" in found["package"] and found["package"] != str(REPO / "isearchd")
    listed = run_in_venv(
        env, tmp_path, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not {n for n in names if n.startswith(("torch", "nvidia-", "triton", "open-clip"))}, names


@pytest.mark.parametrize("key", list(MODELS))
def test_every_architecture_imports_and_embeds_as_torch_does(
    key: str, tmp_path: Path, venv_env: dict[str, str]
) -> None:
    checkpoint = write_official_checkpoint(key, tmp_path / f"{key}.pt", seed=3)
    imported = run_in_venv(venv_env, tmp_path, "-m", "isearchd.cli", "model", "import", key, str(checkpoint))
    assert "Imported" in imported.stdout, imported.stderr
    images = [render("red", "circle", 1, 96), render("blue", "square", 2, 96)]
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
    script = (
        "import json, sys; from PIL import Image; from isearchd.models import load_model\n"
        f"m = load_model({key!r}, backend='onnx')\n"
        f"i = m.embed_images([Image.open(f'{tmp_path}/{{n}}.png') for n in range({len(images)})])\n"
        f"t = m.embed_texts({IMAGE_TEXTS!r})\n"
        "print(json.dumps({'images': i.tolist(), 'texts': t.tolist(), 'sys': sorted(sys.modules)}))"
    )
    free = json.loads(run_in_venv(venv_env, tmp_path, "-c", script).stdout.splitlines()[-1])
    assert not set(free["sys"]) & set(TORCH_MODULES)
    reference = load_model(key, weights=checkpoint)  # torch, in this venv
    for ours, theirs in (
        (np.array(free["images"]), reference.embed_images(images)),
        (np.array(free["texts"]), reference.embed_texts(IMAGE_TEXTS)),
    ):
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() >= 0.99999, (key, cosines)


def test_the_daemon_indexes_and_searches_without_torch(tmp_path: Path, venv_env: dict[str, str]) -> None:
    tiny = tmp_path / "tiny-clip.pt"
    shutil.copy(FIXTURES / "tiny-clip.pt", tiny)
    shutil.copy(FIXTURES / "tiny-clip.json", tmp_path / "tiny-clip.json")
    photos = tmp_path / "photos"
    photos.mkdir()
    for colour in ("red", "green", "blue"):
        for shape in ("circle", "square"):
            render(colour, shape, 7, 128).save(photos / f"{colour}_{shape}.jpg")
    screenshot(["Network password: blue-otter-42", "Connected to the harbour"]).save(photos / "wifi.png")
    faces = tmp_path / "faces"
    shutil.copytree(FIXTURES / "faces", faces, ignore=shutil.ignore_patterns("*.md", "*.json"))

    def isearch(*args: str) -> subprocess.CompletedProcess[str]:
        return run_in_venv(venv_env, tmp_path, "-m", "isearchd.cli", *args)

    started = isearch("service", "start", "-m", str(tiny))
    assert "ImgSearch service started" in started.stdout, started.stderr
    assert "Added 7 images" in isearch("add", str(photos)).stdout
    found = isearch("-n", "2", "--json", "a red circle")
    assert [Path(h["path"]).name for h in json.loads(found.stdout)["results"]][:1] == ["red_circle.jpg"]
    like = json.loads(isearch("-n", "1", "--json", str(photos / "green_square.jpg")).stdout)["results"]
    assert Path(like[0]["path"]).name == "green_square.jpg" and like[0]["similarity"] == 100.0
    assert "Added 12 images" in isearch("add", str(faces), "-d", "fam").stdout
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # faces and words are read in the background
        people = json.loads(isearch("people", "--json", "-d", "fam").stdout)
        words = isearch("--words", "otter", "--json").stdout
        if people["analysed"] == 12 and len(people["people"]) == 4 and json.loads(words)["results"]:
            break
        time.sleep(0.3)
    assert len(people["people"]) == 4 and all(p["photos"] == 3 for p in people["people"])
    assert [Path(h["path"]).name for h in json.loads(words)["results"]] == ["wifi.png"]
    status = isearch("service", "status").stdout
    assert "Model: custom:tiny-clip.pt" in status


def test_what_needs_torch_says_how_to_get_it(tmp_path: Path, venv_env: dict[str, str]) -> None:
    checkpoint = write_official_checkpoint("ViT-8Y", tmp_path / "vit8y.pt")
    torch_export = run_in_venv(
        venv_env, tmp_path, "-m", "isearchd.cli", "model", "import", "ViT-8Y", str(checkpoint),
        "--exporter", "torch", check=False,
    )  # fmt: skip
    on_cuda = run_in_venv(
        {**venv_env, "ISEARCH_DEVICE": "cuda"}, tmp_path, "-m", "isearchd.cli",
        "service", "start", "-m", str(FIXTURES / "tiny-clip.pt"), check=False,
    )  # fmt: skip
    for failed, what in ((torch_export, "the torch exporter"), (on_cuda, "the torch backend")):
        lines = failed.stderr.strip().splitlines()
        assert failed.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), failed.stderr
        assert what in lines[0] and "pip install 'isearchd[torch]'" in lines[0]
    assert not (Path(venv_env["ISEARCH_CACHE"]) / "TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt").exists()
