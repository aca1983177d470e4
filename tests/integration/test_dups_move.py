"""`isearch dups --move-to DIR` and `--undo MANIFEST` through the real daemon and CLI.

Each test writes one photo and three copies of it (one under a name that is not UTF-8), lets the
daemon group them, and checks what a user relies on: the kept image stays, the others land below
DIR where the manifest says, nothing is overwritten or deleted, and `--undo` puts everything back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import skimage.data
from daemons import DaemonProcess
from PIL import Image

from isearchd.files.names import from_db

CANDIDATES = "50"  # the tiny model knows only shapes: the pixel checks decide (see test_dups.py)
ODD = os.fsdecode(b"caf\xe9 copy.webp")  # a name that is not UTF-8
DEADLINE_S = 30.0


def copies(folder: Path) -> tuple[Path, list[Path]]:
    """The original and its three copies below ``folder``."""
    im = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    (folder / "web").mkdir(parents=True)
    original = folder / "original.png"  # the largest file at the most pixels: the one kept
    im.save(original)
    half = folder / "web" / "half.jpg"
    im.resize((im.width // 2, im.height // 2)).save(half, quality=90)
    jpeg = folder / "copy.jpg"
    im.save(jpeg, quality=95)
    odd = folder / "web" / ODD
    im.save(odd, format="WEBP", quality=80)
    return original, [half, jpeg, odd]


def cli(d: DaemonProcess, db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "isearchd.cli", "dups", "-d", db, "-B", d.bind, "-m", CANDIDATES, *args]
    return subprocess.run(
        cmd,
        env=d.env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
    )


def below(move_to: Path, path: Path) -> Path:
    """Where an image that is in no watched folder lands: its absolute path's parts below DIR."""
    return move_to / str(path).lstrip("/")


def labels(d: DaemonProcess, db: str) -> set[str]:
    conn = sqlite3.connect(f"file:{d.home / db / 'catalog.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return {from_db(label) for (label,) in conn.execute("SELECT label FROM images")}
    finally:
        conn.close()


def wait_for(cond: Callable[[], bool], what: str, d: DaemonProcess) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}\n{d.output()[-3000:]}"
        time.sleep(0.1)


def test_dry_run_move_and_undo(daemon: DaemonProcess, tmp_path: Path) -> None:
    original, others = copies(tmp_path / "photos")
    with daemon.client("mv") as c:
        assert c.add_images([str(tmp_path / "photos")]) == 4
    move_to = tmp_path / "aside"

    dry = cli(daemon, "mv", "--move-to", str(move_to), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would move ") == 3 and "nothing was moved" in dry.stdout, dry.stdout
    assert not move_to.exists() and all(p.exists() for p in others)

    unasked = cli(daemon, "mv", "--move-to", str(move_to))  # no terminal, no answer: refused
    assert unasked.returncode == 1 and "pass -y" in unasked.stderr, unasked.stderr
    said_no = cli(daemon, "mv", "--move-to", str(move_to), stdin="n\n")
    assert said_no.returncode == 1 and "Nothing was moved." in said_no.stdout
    assert not move_to.exists() and all(p.exists() for p in others)

    moved = cli(daemon, "mv", "--move-to", str(move_to), "-y")
    assert moved.returncode == 0, moved.stderr
    out = moved.stdout.splitlines()
    manifest_line = next(i for i, line in enumerate(out) if line.startswith("Manifest: "))
    assert manifest_line < len(out) - 1 and out[-1].startswith("Moved 3 images"), moved.stdout
    manifest = Path(out[manifest_line].removeprefix("Manifest: "))
    assert manifest.parent == move_to and manifest.name.startswith("isearch-dups-")
    assert original.exists() and not any(p.exists() for p in others)  # the kept image stays
    for p in others:
        assert below(move_to, p).is_file()
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    assert {(m["source"], m["destination"]) for m in doc["moves"]} == {
        (str(p), str(below(move_to, p))) for p in others
    }  # the name that is not UTF-8 survives the JSON

    back = cli(daemon, "mv", "--undo", str(manifest))
    assert back.returncode == 0 and "Put back 3 images" in back.stdout, back.stdout + back.stderr
    assert all(p.is_file() for p in others) and not any(below(move_to, p).exists() for p in others)
    again = cli(daemon, "mv", "--undo", str(manifest))
    assert again.returncode == 0 and "3 already in place" in again.stdout, again.stdout

    # undo never overwrites: a file that appears at an old place keeps it
    moved = cli(daemon, "mv", "--move-to", str(move_to), "-y")
    manifest = Path(next(x for x in moved.stdout.splitlines() if x.startswith("Manifest: "))[10:])
    others[0].write_bytes(b"new file")
    back = cli(daemon, "mv", "--undo", str(manifest))
    assert back.returncode == 1 and "exists again" in back.stderr, back.stderr
    assert others[0].read_bytes() == b"new file" and below(move_to, others[0]).is_file()
    assert others[1].is_file() and others[2].is_file()


def test_a_taken_name_is_never_overwritten(daemon: DaemonProcess, tmp_path: Path) -> None:
    _, others = copies(tmp_path / "photos")
    with daemon.client("clash") as c:
        assert c.add_images([str(tmp_path / "photos")]) == 4
    move_to = tmp_path / "aside"
    taken = below(move_to, others[0])
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"already here")
    moved = cli(daemon, "clash", "--move-to", str(move_to), "-y")
    assert moved.returncode == 0, moved.stderr
    renamed = taken.with_name("half (2).jpg")
    assert f"-> {renamed}   (name taken below the folder: renamed)" in moved.stdout, moved.stdout
    assert taken.read_bytes() == b"already here" and renamed.is_file() and not others[0].exists()


def test_watched_folders_and_the_data_home_are_refused(daemon: DaemonProcess, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    _, others = copies(folder)
    with daemon.client("refuse") as c:
        c.watch([str(folder)])
        wait_for(lambda: len(labels(daemon, "refuse")) == 4, "the folder indexed", daemon)
    for inside, why in ((folder / "aside", "inside the watched folder"), (daemon.home / "x", "data home")):
        out = cli(daemon, "refuse", "--move-to", str(inside), "-y")
        assert out.returncode == 1 and why in out.stderr, out.stderr
        assert not inside.exists() and all(p.exists() for p in others)
    with daemon.client("refuse") as c:
        c.unwatch(str(folder))


def test_moving_out_of_a_watched_folder_removes_from_the_database(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    original, others = copies(folder)
    with daemon.client("watched") as c:
        c.watch([str(folder)])
        wait_for(lambda: len(labels(daemon, "watched")) == 4, "the folder indexed", daemon)
        move_to = tmp_path / "aside"
        moved = cli(daemon, "watched", "--move-to", str(move_to), "-y")
        assert moved.returncode == 0, moved.stderr
        for p in others:  # below DIR, each keeps its path relative to the watched folder
            assert (move_to / p.relative_to(folder)).is_file()
        wait_for(lambda: labels(daemon, "watched") == {str(original)}, "the moved copies removed", daemon)
        manifest = next(x for x in moved.stdout.splitlines() if x.startswith("Manifest: "))[10:]
        back = cli(daemon, "watched", "--undo", manifest)
        assert back.returncode == 0, back.stderr
        wait_for(lambda: len(labels(daemon, "watched")) == 4, "the copies found again", daemon)
        assert len(c.dups(similarity=float(CANDIDATES)).groups[0].images) == 4
        c.unwatch(str(folder))
