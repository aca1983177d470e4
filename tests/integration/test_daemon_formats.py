"""Phone formats end to end: HEIC, HEIF and AVIF files (upper-case names too) through a real
daemon, the Python Client and the ``isearch`` CLI, with the tiny test model.

The pictures are the synthetic coloured shapes the model was trained on, so a text search for
"a green square" only finds the HEIC if its pixels were decoded right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pillow_heif
import pytest
from PIL import Image
from shapes import render

from isearchd.client import Client

if TYPE_CHECKING:
    from daemons import DaemonProcess

ClientFactory = Callable[..., Client]
REPO = Path(__file__).resolve().parents[2]

# name -> (colour, shape, how it is written)
PHONE_FILES = {
    "red_circle.jpg": ("red", "circle", "JPEG"),
    "green_square.heic": ("green", "square", "HEIF"),
    "IMG_0001.HEIC": ("yellow", "cross", "HEIF"),
    "purple_triangle.heif": ("purple", "triangle", "HEIF"),
    "blue_star.avif": ("blue", "star", "AVIF"),
    "IMG_0002.AVIF": ("orange", "circle", "AVIF"),
}


def save(img: Image.Image, path: Path, fmt: str) -> Path:
    if fmt == "HEIF":  # pillow-heif's own encoder: this process registers no Pillow plugin
        pillow_heif.from_pillow(img).save(path, quality=90)
    else:
        img.save(path, fmt, quality=90)
    return path


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phone")
    for i, (name, (colour, shape, fmt)) in enumerate(PHONE_FILES.items()):
        save(render(colour, shape, 500 + i, 128), folder / name, fmt)
    return folder


def test_add_indexes_heic_avif_and_upper_case_names(phone: Path, client_factory: ClientFactory) -> None:
    c = client_factory("phone")
    assert c.add_images([str(phone)]) == len(PHONE_FILES)
    assert c.last_add is not None and c.last_add.failed == []
    assert c.get_db_info()["size"] == len(PHONE_FILES)
    # decoded right: the model recognises what each file shows
    for name, (colour, shape, _) in PHONE_FILES.items():
        top = c.search(f"a {colour} {shape}", num=1)
        assert top[0][0] == str(phone / name), (name, top)


@pytest.mark.parametrize("name", ["green_square.heic", "IMG_0001.HEIC", "blue_star.avif"])
def test_phone_photo_query_finds_itself_first(name: str, phone: Path, client_factory: ClientFactory) -> None:
    c = client_factory("phone")
    c.add_images([str(phone)])
    assert c.search(str(phone / name), num=1) == [(str(phone / name), 100.0)]


def test_compare_heic_and_avif_with_the_same_picture_as_png(
    phone: Path, client_factory: ClientFactory, tmp_path: Path
) -> None:
    c = client_factory("phone")
    picture = render("green", "square", 900, 128)
    png = tmp_path / "square.png"
    picture.save(png)
    other = tmp_path / "other.png"
    render("blue", "star", 901, 128).save(other)
    for fmt, suffix in (("HEIF", "HEIC"), ("AVIF", "avif")):
        lossy = save(picture, tmp_path / f"square.{suffix}", fmt)
        same = c.compare_images(str(lossy), str(png))
        assert same >= 97.0, (fmt, same)
        assert c.compare_images(str(lossy), str(other)) < same


def test_cli_heic_query_and_cmp(phone: Path, daemon: DaemonProcess, client_factory: ClientFactory) -> None:
    client_factory("phone").add_images([str(phone)])
    query = phone / "IMG_0001.HEIC"

    def isearch(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "isearchd.cli", *args, "-B", daemon.bind],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    found = json.loads(isearch(str(query), "-d", "phone", "-n", "1", "--json"))
    assert found["kind"] == "image"
    assert [(r["path"], r["similarity"]) for r in found["results"]] == [(str(query), 100.0)]
    out = isearch("cmp", str(query), str(query))
    assert out.strip() == "Similarity between images: 100.0%"
