"""Videos end to end through a real daemon: a folder with videos (H.264/MP4 with audio, VP9/WebM,
MJPEG/AVI), photos and broken videos; searches find the right moment; watch follows changes.

The videos are made here with PyAV from scenes of the tiny model's coloured shapes, so a search
for "a blue square" finds the video at a time inside the blue square's scene.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from shapes import render
from videos import Scene, span_of, upright_size, write_audio_only, write_video
from watching import wait_for

from isearchd.client import Client
from isearchd.errors import InvalidRequest

if TYPE_CHECKING:
    from daemons import DaemonProcess

ClientFactory = Callable[..., Client]
REPO = Path(__file__).resolve().parents[2]

# file -> scenes; each scene's colour and shape appears in no other file
VIDEOS = {
    "party.mp4": [Scene("red", "circle", 4), Scene("blue", "square", 5), Scene("green", "triangle", 4)],
    "Beach.WEBM": [Scene("yellow", "star", 3), Scene("purple", "cross", 3)],
    "old.avi": [Scene("orange", "square", 3), Scene("green", "star", 3)],
    "phone.mov": [Scene("yellow", "triangle", 3), Scene("orange", "circle", 3)],
}
ROTATED = {"phone.mov": -90}  # filmed upright on a phone: stored sideways, turned by its display matrix
PHOTOS = {"red_star.png": ("red", "star"), "blue_circle.png": ("blue", "circle")}
BROKEN = {"truncated.mp4", "corrupt.mov", "sound.mp4"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for name, scenes in VIDEOS.items():
        write_video(root / name, scenes, audio=name.endswith(".mp4"), rotation=ROTATED.get(name, 0),
                    metadata={"creation_time": "2021-06-05T10:00:00.000000Z"})  # fmt: skip
    for i, (name, (colour, shape)) in enumerate(PHOTOS.items()):
        render(colour, shape, 700 + i, 96).save(root / name)
    whole = write_video(root / "whole.mp4", [Scene("red", "circle", 3)]).read_bytes()
    (root / "whole.mp4").unlink()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the index (moov) is lost
    (root / "corrupt.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + bytes(range(256)) * 40)
    write_audio_only(root / "sound.mp4")
    return root


def scene_span(name: str, colour: str, shape: str) -> tuple[float, float]:
    return span_of(VIDEOS[name], colour, shape)


def test_add_indexes_videos_and_broken_ones_fail_alone(folder: Path, client_factory: ClientFactory) -> None:
    c = client_factory("videos")
    added = c.add_images([str(folder)])
    report = c.last_add
    assert report is not None
    failed = {Path(path).name: reason for path, reason in report.failed}
    assert set(failed) == BROKEN, failed
    assert "no video stream" in failed["sound.mp4"]
    assert all("\n" not in reason for reason in failed.values())
    assert added == len(VIDEOS) + len(PHOTOS)


@pytest.mark.parametrize(
    ("name", "colour", "shape"),
    [("party.mp4", "blue", "square"), ("party.mp4", "green", "triangle"), ("Beach.WEBM", "purple", "cross"),
     ("old.avi", "green", "star"), ("phone.mov", "orange", "circle")],
)  # fmt: skip
def test_search_finds_the_moment(
    name: str, colour: str, shape: str, folder: Path, client_factory: ClientFactory
) -> None:
    c = client_factory("videos")
    c.add_images([str(folder)])
    hits = c.search_hits(f"a {colour} {shape}", num=10)
    assert hits[0].path == str(folder / name), hits[:3]
    top = hits[0]
    assert top.type == "video" and top.label == str(folder / name)
    start, end = scene_span(name, colour, shape)
    assert isinstance(top.at, float) and start <= top.at < end, (top.at, start, end)
    assert isinstance(top.duration, float) and abs(top.duration - sum(s.seconds for s in VIDEOS[name])) < 0.5
    paths = [h.path for h in hits]
    assert len(paths) == len(set(paths)), "a video comes back once"


def test_a_phone_s_portrait_video_is_stored_as_displayed(folder: Path, client_factory: ClientFactory) -> None:
    # (searches find its scenes read sideways too: the tiny model learnt shapes at every angle; its
    # size says which way the video was read)
    c = client_factory("videos")
    c.add_images([str(folder)])
    top = c.search_hits("a yellow triangle", num=1)[0]
    assert top.path == str(folder / "phone.mov") and (top.width, top.height) == upright_size(128)


def test_type_filters_and_dates(folder: Path, client_factory: ClientFactory) -> None:
    c = client_factory("videos")
    c.add_images([str(folder)])
    # (a result's similarity is at least 0: a video far from the query may not come back)
    videos = c.search_hits("a red circle", num=20, types=["video"])
    assert Path(videos[0].path).name == "party.mp4"
    assert {Path(h.path).name for h in videos} <= set(VIDEOS) and all(h.type == "video" for h in videos)
    photos = c.search_hits("a red star", num=20, types=["photo"])
    assert Path(photos[0].path).name == "red_star.png" and {Path(h.path).name for h in photos} <= set(PHOTOS)
    assert Path(c.search_hits("a red circle", num=1, types=["mp4"])[0].path).name == "party.mp4"
    dated = c.search_hits("a red circle", num=20, after="2021-06", before="2021-06")
    assert {Path(h.path).name for h in dated} <= set(VIDEOS) and dated[0].taken_source == "video"


def test_cli_text_json_and_cmp(folder: Path, daemon: DaemonProcess, client_factory: ClientFactory) -> None:
    client_factory("videos").add_images([str(folder)])

    def isearch(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "isearchd.cli", *args, "-B", daemon.bind, "-d", "videos"],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
        assert (proc.returncode == 0) == ok, proc.stderr
        return proc

    out = isearch("a blue square", "-n", "1").stdout
    assert f"{folder / 'party.mp4'} @ 0:0" in out, out
    found = json.loads(isearch("a blue square", "-n", "1", "--json").stdout)
    hit = found["results"][0]
    assert hit["type"] == "video" and 4 <= hit["at"] < 9 and hit["duration"] == pytest.approx(13, abs=0.5)
    err = isearch("cmp", str(folder / "party.mp4"), str(folder / "red_star.png"), ok=False).stderr
    assert "is a video" in err and len(err.strip().splitlines()) == 1
    shown = isearch("db", "--info").stdout.splitlines()  # a video counts once; its frames apart
    assert shown[2] == f"* Size: {len(VIDEOS) + len(PHOTOS)}" and shown[3].startswith("* Vectors: "), shown


def test_compare_with_a_video_is_an_error(folder: Path, client_factory: ClientFactory) -> None:
    c = client_factory("videos")
    with pytest.raises(InvalidRequest, match="is a video"):
        c.compare_images(str(folder / "party.mp4"), str(folder / "red_star.png"))


def _rows(daemon: DaemonProcess, db: str, path: Path) -> int:
    conn = sqlite3.connect(f"file:{daemon.home / db / 'catalog.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        sql = "SELECT count(*) FROM images WHERE path = ?"
        return int(conn.execute(sql, [str(path).encode()]).fetchone()[0])
    finally:
        conn.close()


def test_watch_changes_and_deletes_a_video(
    daemon: DaemonProcess, client_factory: ClientFactory, tmp_path: Path
) -> None:
    c = client_factory("watched")
    clip = write_video(tmp_path / "clip.mp4", [Scene("red", "circle", 3), Scene("blue", "square", 12)])
    c.watch([str(tmp_path)])
    wait_for(lambda: _rows(daemon, "watched", clip) >= 3, "the video's frames indexed", daemon)
    assert c.search_hits("a blue square", num=1)[0].path == str(clip)
    info = c.db_info()  # one file, however many frames
    assert (info.size, info.vectors) == (1, _rows(daemon, "watched", clip))
    assert [f.images for f in c.watch_list() if f.path == str(tmp_path)] == [1]
    # changed: shorter, other scenes; the old moments go with it
    write_video(tmp_path / ".clip.tmp.mp4", [Scene("yellow", "star", 2)]).rename(clip)
    wait_for(lambda: _rows(daemon, "watched", clip) == 1, "the changed video re-indexed", daemon)
    top = c.search_hits("a yellow star", num=1)[0]
    assert top.path == str(clip) and top.at is not None and top.at < 2
    clip.unlink()
    wait_for(lambda: _rows(daemon, "watched", clip) == 0, "the deleted video's frames removed", daemon)
