"""`isearch dups` through the engine and the protocol (in-process), on real photographs
(scikit-image's samples).

Planted copies of each photo (resized to 50 % and 25 %, re-encoded at JPEG quality 60, converted
to PNG and WebP, 2 % border crop, brighter) must be grouped with their original; photos that are
only alike (crops of one large photo that overlap by at most 50 %, the same shape in another
colour) must not. The tiny test model knows only coloured shapes, so on photos its similarity is
weak: the test lowers the model's candidate threshold (``CANDIDATE_SIMILARITY``) and the pixel
checks (perceptual hash, colours, aspect ratio) carry the decision.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import schemas
import skimage.data
from harness import InProcessDaemon
from PIL import Image, ImageEnhance
from shapes import SHAPES, render

from isearchd.client import Client
from isearchd.messages import BackfillProgress

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
# The tiny model puts unrelated photos at 60-90 %: candidates at 50 % leave every decision to
# the pixel checks (a real model puts copies above 90 %, the default).
CANDIDATE_SIMILARITY = 50.0
SCHEMA = Path(__file__).resolve().parents[2] / "contrib" / "launchers" / "dups-result.schema.json"


def _save(img: Image.Image, path: Path, **kw: object) -> str:
    img.save(path, **kw)  # type: ignore[arg-type]
    return str(path)


def planted(root: Path) -> dict[str, str]:
    """Write the test set below ``root``; returns each file's source ("" when it has no copy)."""
    src: dict[str, str] = {}
    root.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        w, h = im.size
        d = root / name
        d.mkdir()
        copies = {
            "original.jpg": (im, {"quality": 95}),
            "half.jpg": (im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), {"quality": 90}),
            "quarter.jpg": (im.resize((w // 4, h // 4), Image.Resampling.LANCZOS), {"quality": 90}),
            "q60.jpg": (im, {"quality": 60}),
            "copy.png": (im, {}),
            "copy.webp": (im, {"quality": 80}),
            "crop.jpg": (im.crop((w // 50, h // 50, w - w // 50, h - h // 50)), {"quality": 90}),
            "bright.jpg": (ImageEnhance.Brightness(im).enhance(1.1), {"quality": 90}),
        }
        for file, (img, kw) in copies.items():
            src[_save(img, d / file, **kw)] = name
    # look-alikes: crops of one large photo, each overlapping its neighbour by 50 % at most
    big = Image.fromarray(skimage.data.retina()).convert("RGB")
    side = big.size[0] // 2
    (root / "retina").mkdir()
    for i, (x, y) in enumerate(itertools.product((0, side // 2, side), (0, side))):
        src[_save(big.crop((x, y, x + side, y + side)), root / "retina" / f"part{i}.png")] = ""
    # the same shape in another colour (red -> blue and green by swapping channels)
    (root / "shapes").mkdir()
    for shape in SHAPES:
        red = render("red", shape, 10_000, size=256)
        r, g, b = red.split()
        for colour, img in (
            ("red", red),
            ("blue", Image.merge("RGB", (b, g, r))),
            ("green", Image.merge("RGB", (g, r, b))),
        ):
            src[_save(img, root / "shapes" / f"{shape}-{colour}.png")] = ""
    return src


def recall_precision(src: dict[str, str], groups: list[list[str]]) -> tuple[float, float]:
    """Recall over the planted copy pairs; precision over the pairs the groups put together."""
    group_of = {path: n for n, g in enumerate(groups) for path in g}
    truth = [(a, b) for a, b in itertools.combinations(sorted(src), 2) if src[a] and src[a] == src[b]]
    found = sum(1 for a, b in truth if a in group_of and group_of.get(a) == group_of.get(b))
    claimed = [(a, b) for g in groups for a, b in itertools.combinations(g, 2)]
    right = sum(1 for a, b in claimed if src.get(a) and src.get(a) == src.get(b))
    return found / len(truth), (right / len(claimed) if claimed else 1.0)


@pytest.fixture(scope="module")
def library(daemon: InProcessDaemon, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    root = tmp_path_factory.mktemp("dups") / "photos"
    src = planted(root)
    with daemon.client("dups") as c:
        c.add_images([str(root)])
        assert c.get_db_info()["size"] == len(src)
    return src, root


def test_planted_copies_are_grouped_and_look_alikes_are_not(
    library: tuple[dict[str, str], Path], client_factory: Callable[..., Client]
) -> None:
    src, _ = library
    found = client_factory("dups").dups(similarity=CANDIDATE_SIMILARITY)
    groups = [[img.path for img in g.images] for g in found.groups]
    recall, precision = recall_precision(src, groups)
    print(f"dups on planted copies (tiny model, candidates >= {CANDIDATE_SIMILARITY} %): "
          f"recall {recall:.3f}, precision {precision:.3f}, {len(groups)} groups")  # fmt: skip
    assert recall >= 0.95 and precision >= 0.95, "\n".join(
        " ".join(p.split("photos/")[1] for p in g) for g in groups
    )
    assert found.total == len(PHOTOS)
    for g in found.groups:  # the kept image: the full-size original (the largest file at most pixels)
        assert g.keep.endswith("original.jpg") or g.keep.endswith("copy.png"), g
        assert g.images[0].path == g.keep and g.reason.startswith("the most pixels")
        assert g.images[0].similarity == 100.0


def test_groups_below_one_folder_and_the_model_threshold(
    library: tuple[dict[str, str], Path], client_factory: Callable[..., Client]
) -> None:
    _, root = library
    c = client_factory("dups")
    found = c.dups(similarity=CANDIDATE_SIMILARITY, within=root / "coffee")
    assert [sorted(Path(i.path).parent.name for i in g.images) for g in found.groups] == [["coffee"] * 8]
    assert c.dups(similarity=100, within=root / "coffee").groups == []  # copies of other files: < 100 %
    assert c.dups(similarity=CANDIDATE_SIMILARITY, num=2).total == len(PHOTOS)
    assert len(c.dups(similarity=CANDIDATE_SIMILARITY, num=2).groups) == 2


def test_cli_json_and_text(library: tuple[dict[str, str], Path], daemon: InProcessDaemon) -> None:
    _, root = library
    base = [
        sys.executable,
        "-m",
        "isearchd.cli",
        "dups",
        "-d",
        "dups",
        "-B",
        daemon.bind,
        "-m",
        str(CANDIDATE_SIMILARITY),
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=daemon.env(), capture_output=True, text=True, timeout=120)

    out = run("--json", "--in", str(root / "chelsea"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["db"] == "dups" and doc["min_similarity"] == CANDIDATE_SIMILARITY
    (group,) = doc["groups"]
    assert set(group) == {"keep", "reason", "images"} and len(group["images"]) == 8
    fields = {"path", "label", "similarity", "width", "height", "bytes", "taken", "id"}
    assert set(group["images"][0]) == fields
    half = next(i for i in group["images"] if i["path"].endswith("half.jpg"))
    assert (half["width"], half["height"]) == (225, 150) and half["bytes"] == (
        root / "chelsea" / "half.jpg"
    ).stat().st_size
    schema = json.loads(SCHEMA.read_text())
    assert set(schema["required"]) == set(doc) and set(
        schema["properties"]["groups"]["items"]["required"]
    ) == set(group)

    text = run("--in", str(root / "chelsea"), "-n", "1")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "Found 1 group of duplicates: 7 images besides the ones to keep.", text.stdout
    assert lines[2].startswith(f"Group 1: keep {group['keep']} (the most pixels")
    assert lines[3].startswith("  keep 100.0%") and lines[3].endswith(group["keep"])
    assert len(lines) == 3 + 8 and any(" 225x150 " in line and "half.jpg" in line for line in lines)

    none = run("--in", str(root / "shapes"))
    assert none.returncode == 0 and none.stdout.startswith("No duplicates found"), none.stdout


def test_a_catalog_from_before_looks_is_hashed_in_the_background(
    make_daemon: Callable[..., InProcessDaemon], tmp_path: Path
) -> None:
    """A database of schema 4 (no looks) is migrated when opened; each image is decoded once in
    the background for its look, and then takes part in `dups` (nothing is embedded again)."""
    photos = tmp_path / "p"
    photos.mkdir()
    coffee = Image.fromarray(skimage.data.coffee())
    _save(coffee, photos / "coffee.jpg", quality=95)
    _save(coffee.resize((300, 200)), photos / "small.png")
    d = make_daemon(listen=True).start()
    with d.client("old") as c:
        assert c.add_images([str(photos)]) == 2
        assert len(c.dups(similarity=CANDIDATE_SIMILARITY).groups) == 1
    assert d.stop() == 0
    conn = sqlite3.connect(d.home / "old" / "catalog.sqlite")
    schemas.undo(conn, 4)  # back to what schema 4 wrote (no looks)
    vectors_before = dict(conn.execute("SELECT id, vector FROM images").fetchall())
    conn.close()
    d.start()
    with d.client("old") as c:
        deadline = time.monotonic() + 60
        while not c.dups(similarity=CANDIDATE_SIMILARITY).groups:
            assert time.monotonic() < deadline, c.status()
            time.sleep(0.2)
        assert c.status().looks["old"] == BackfillProgress(total=2, done=2, unreadable=0)
        (group,) = c.dups(similarity=CANDIDATE_SIMILARITY).groups
        assert group.keep == str(photos / "coffee.jpg")
    status = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "service", "status", "-B", d.bind],
        env=d.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert '* Duplicate hashes of "old": hashed 2 images (0 unreadable)' in status.stdout, status.stdout
    conn = sqlite3.connect(f"file:{d.home / 'old' / 'catalog.sqlite'}?mode=ro", uri=True)
    assert dict(conn.execute("SELECT id, vector FROM images").fetchall()) == vectors_before
    conn.close()
