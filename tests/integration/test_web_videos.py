"""Videos on the web page, through a real daemon serving it (raw HTTP) and in a real browser (one
headless Chromium for the module): a video hit's frame at its moment as thumbnail and picture,
``/video/DB/ID`` with range requests and its refusals, and the large view playing from the moment.

The videos are made here with PyAV from scenes of the tiny model's coloured shapes (each colour and
shape in one file only), so a text search finds a video at a moment inside its scene: VP9/WebM
(which Debian's Chromium plays; it may lack H.264), H.264/MP4, and MJPEG/AVI (which no browser
plays: the large view falls back to the frame and "Open").
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from browser import served_page, wait_for
from daemons import DaemonProcess
from PIL import Image
from shapes import COLOURS, render
from videos import Scene, span_of, write_video
from web import Reply, csrf_token, request

VIDEOS = {
    "party.webm": [Scene("red", "circle", 3), Scene("blue", "square", 4), Scene("green", "triangle", 3)],
    "clip.mp4": [Scene("orange", "star", 3)],
    "old.avi": [Scene("yellow", "cross", 3), Scene("green", "star", 3)],
    "changed.webm": [Scene("purple", "circle", 3)],
}
PHOTO = "blue_circle.png"


class Site(NamedTuple):
    driver: Any
    address: str  # host:port of the page
    home: Path  # the daemon's data home (its thumbnails)
    opened: Path  # what the fake opener was asked to open, a line each


def scene_span(name: str, colour: str, shape: str) -> tuple[float, float]:
    return span_of(VIDEOS[name], colour, shape)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for name, scenes in VIDEOS.items():
        write_video(root / name, scenes)
    render("blue", "circle", 700, 96).save(root / PHOTO)
    return root


@pytest.fixture(scope="module")
def site(folder: Path) -> Iterator[Site]:
    """The page served with ``folder`` in "default", and one browser on it."""
    opened = folder / "opened.txt"
    opener = folder / "opener.sh"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    opener.chmod(opener.stat().st_mode | stat.S_IXUSR)

    def fill(d: DaemonProcess, _: str) -> Path:
        with d.client() as c:
            report = c.add([str(folder)])
            assert not report.failed and report.added == len(VIDEOS) + 1, report
        return d.home

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ISEARCH_OPENER", str(opener))
        with served_page(fill) as (driver, address, home):
            yield Site(driver, address, home, opened)


def _hit(address: str, colour: str, shape: str) -> dict[str, Any]:
    """The first hit of a text search for ``a COLOUR SHAPE``."""
    reply = request(address, "GET", f"/api/search?q=a+{colour}+{shape}&n=10")
    assert reply.status == 200, reply.body
    return dict(reply.json()["results"][0])


def _share(reply: Reply, colour: str) -> float:
    """The share of the picture's pixels of a shape colour (the video's codec blurs it a little)."""
    picture = Image.open(io.BytesIO(reply.body)).convert("RGB")
    pixels = np.asarray(picture, dtype=np.int32).reshape(-1, 3)
    return float((((pixels - np.array(COLOURS[colour])) ** 2).sum(axis=1) < 60**2).mean())


# -- HTTP ----------------------------------------------------------------------------------------


def test_a_video_hit_shows_the_frame_at_its_moment(site: Site, folder: Path) -> None:
    address = site.address
    blue = _hit(address, "blue", "square")
    assert blue["path"] == str(folder / "party.webm") and blue["type"] == "video"
    start, end = scene_span("party.webm", "blue", "square")
    assert start <= blue["at"] < end and blue["duration"] == pytest.approx(10, abs=0.5)
    assert blue["video"] == f"/video/default/{blue['id']}"
    red = _hit(address, "red", "circle")
    assert red["path"] == blue["path"] and red["id"] != blue["id"] and red["at"] < 3
    thumbs = {}
    for colour, hit in (("blue", blue), ("red", red)):
        thumb = request(address, "GET", hit["thumbnail"])
        assert thumb.status == 200 and thumb.headers["content-type"] == "image/webp", thumb.headers
        assert _share(thumb, colour) > 0.01, colour  # that moment's shape, not the video's start
        thumbs[colour] = thumb.body
        full = request(address, "GET", hit["image"])
        assert full.status == 200 and full.headers["content-type"] == "image/jpeg", full.headers
        assert Image.open(io.BytesIO(full.body)).size == (128, 128) and _share(full, colour) > 0.01
    assert thumbs["blue"] != thumbs["red"]
    # each moment has its thumbnail in the cache, keyed by the video's hash and the moment
    info = request(address, "GET", f"/api/image/default/{blue['id']}").json()
    assert info["type"] == "video" and info["at"] == blue["at"] and info["video"] == blue["video"]
    digest = info["hash"].split("@")[0]
    cached = {f.stem for f in (site.home / "thumbnails").glob(f"*/{digest}-*.webp")}
    assert cached == {f"{digest}-{round(h['at'] * 1000)}" for h in (red, blue)}, cached


def test_more_like_a_video_s_moment(site: Site) -> None:
    hit = _hit(site.address, "blue", "square")
    reply = request(site.address, "GET", f"/api/search?like={hit['id']}&n=3")
    assert reply.status == 200, reply.body
    top = reply.json()["results"][0]
    assert (top["id"], top["at"], top["similarity"]) == (hit["id"], hit["at"], 100.0)


def test_range_requests_give_the_file_s_bytes(site: Site, folder: Path) -> None:
    address = site.address
    hit = _hit(address, "blue", "square")
    data = (folder / "party.webm").read_bytes()
    whole = request(address, "GET", hit["video"])
    assert whole.status == 200 and whole.body == data
    assert whole.headers["content-type"] == "video/webm" and whole.headers["accept-ranges"] == "bytes"
    part = request(address, "GET", hit["video"], headers={"Range": "bytes=100-1099"})
    assert part.status == 206, part.headers
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert part.body == data[100:1100]
    tail = request(address, "GET", hit["video"], headers={"Range": "bytes=-500"})
    assert tail.status == 206 and tail.body == data[-500:]
    beyond = request(address, "GET", hit["video"], headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status == 416
    mp4 = _hit(address, "orange", "star")
    assert mp4["path"].endswith("clip.mp4")
    assert request(address, "GET", mp4["video"]).headers["content-type"] == "video/mp4"


def test_a_photo_or_an_unknown_id_is_not_a_video(site: Site) -> None:
    address = site.address
    photo = _hit(address, "blue", "circle")
    assert photo["path"].endswith(PHOTO) and "video" not in photo
    for path in (f"/video/default/{photo['id']}", "/video/default/987654", f"/video/nosuchdb/{photo['id']}",
                 "/video/default/..%2f..%2fetc%2fpasswd", "/video/default/-1"):  # fmt: skip
        reply = request(address, "GET", path)
        assert reply.status == 404, (path, reply.status)
        assert b"root:" not in reply.body
        if path.split("/")[-1].isdigit():
            assert reply.json()["error"]["code"] == "not_found" and reply.json()["error"]["message"]


def test_a_changed_video_is_refused(site: Site, folder: Path) -> None:
    address = site.address
    hit = _hit(address, "purple", "circle")
    assert hit["path"].endswith("changed.webm")
    assert request(address, "GET", hit["thumbnail"]).headers["content-type"] == "image/webp"  # cached
    path = folder / "changed.webm"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: same bytes, new time
    for url in (hit["video"], hit["thumbnail"], hit["image"]):
        reply = request(address, "GET", url)
        if url == hit["video"]:
            assert reply.status == 404 and "no longer" in reply.json()["error"]["message"]
        else:
            assert reply.status == 200 and reply.placeholder, url
    with path.open("ab") as f:
        f.write(b"\0" * 10)
    assert request(address, "GET", hit["video"]).status == 404


def test_other_sites_cannot_fetch_or_embed_a_video(site: Site) -> None:
    address = site.address
    hit = _hit(address, "blue", "square")
    for site_kind in ("cross-site", "same-site"):
        for mode, dest in (("no-cors", "video"), ("navigate", "document"), ("cors", "empty")):
            headers = {"Sec-Fetch-Site": site_kind, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest,
                       "Range": "bytes=0-99"}  # fmt: skip
            reply = request(address, "GET", hit["video"], headers=headers)
            assert reply.status == 403 and reply.json()["error"]["code"] == "forbidden", (site_kind, mode)
    assert request(address, "GET", hit["video"], host="evil.example.com").status == 403
    own = request(address, "GET", hit["video"], headers={"Sec-Fetch-Site": "same-origin",
                                                        "Range": "bytes=0-9"})  # fmt: skip
    assert own.status == 206 and "media-src 'self'" in own.headers["content-security-policy"]


def test_open_plays_a_video_in_this_machine_s_player(site: Site) -> None:
    address, opened = site.address, site.opened
    hit, photo = _hit(address, "yellow", "cross"), _hit(address, "blue", "circle")
    headers = {"Content-Type": "application/json", "Origin": f"http://{address}",
               "X-CSRF-Token": csrf_token(address)}  # fmt: skip
    body = f'{{"db": "default", "id": {hit["id"]}, "file": true}}'.encode()
    reply = request(address, "POST", "/api/open", headers=headers, body=body)
    assert reply.status == 200 and reply.json()["opened"] == hit["path"], reply.body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (opened.exists() and opened.read_text().endswith("\n")):
        time.sleep(0.05)  # (the opener runs on its own: its line is there once it ends)
    assert opened.read_text().splitlines()[-1] == hit["path"]
    refused = request(address, "POST", "/api/open", headers=headers,
                      body=f'{{"db": "default", "id": {photo["id"]}, "file": true}}'.encode())  # fmt: skip
    assert refused.status == 400


# -- the browser ---------------------------------------------------------------------------------


def _open_first_tile(driver: Any, address: str, text: str) -> dict[str, Any]:
    """Search ``text`` on a fresh page, wait for the tiles, open the first one; its tile's badge."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"http://{address}/")
    wait_for(driver, "return document.querySelector('#db').options.length > 0")
    box = driver.find_element(By.ID, "q")
    box.send_keys(text, Keys.ENTER)
    wait_for(driver, "return document.querySelector('#message').textContent.includes(arguments[0])", text)
    wait_for(driver, "const i = document.querySelector('#results .tile img');"
                     "return i && i.complete && i.naturalWidth > 0")  # fmt: skip
    tile = driver.execute_script(
        "const t = document.querySelector('#results .tile'); const b = t.querySelector('.play');"
        "return {title: t.title, badge: b && b.textContent, w: t.querySelector('img').naturalWidth};"
    )
    # the moment's position as the page found it, recorded when the first frame is there
    driver.execute_script(
        "const v = document.querySelector('#v-video'); window.startedAt = null;"
        "v.addEventListener('loadeddata', () => { window.startedAt = v.currentTime; }, {once: true});"
    )
    driver.find_element(By.CSS_SELECTOR, "#results .tile").click()
    wait_for(driver, "return document.querySelector('#viewer').open")
    return dict(tile)


def test_the_large_view_plays_the_video_from_the_hit_s_moment(site: Site) -> None:
    driver, address = site.driver, site.address
    hit = _hit(address, "blue", "square")
    tile = _open_first_tile(driver, address, "a blue square")
    at = hit["at"]
    clock = f"{int(at) // 60}:{int(at) % 60:02d}"
    assert tile["badge"] == f"\u25b6 {clock}" and f"party.webm @ {clock}" in tile["title"]
    assert tile["w"] == 128  # the frame (the video's size), not the 240 px placeholder
    wait_for(
        driver,
        "const v = document.querySelector('#v-video');"
        "return v.error !== null || (v.readyState >= 2 && window.startedAt !== null)",
    )
    state = driver.execute_script(
        "const v = document.querySelector('#v-video'); v.pause();"
        "return {error: v.error && v.error.code, hidden: v.hidden, src: v.currentSrc, duration: v.duration,"
        " started: window.startedAt, now: v.currentTime, big: document.querySelector('#big').hidden,"
        " facts: document.querySelector('#v-facts').textContent};"
    )
    assert state["error"] is None and not state["hidden"] and state["big"], state
    assert state["src"].endswith(f"/video/default/{hit['id']}#t={at:g}"), state
    assert state["duration"] == pytest.approx(10, abs=0.5)
    assert abs(state["started"] - at) < 1.0 and abs(state["now"] - at) < 1.5, state
    assert "Moment" in state["facts"] and clock in state["facts"]
    # Esc closes the view and stops the player
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait_for(driver, "return !document.querySelector('#viewer').open")
    assert driver.execute_script("return document.querySelector('#v-video').paused")


def test_a_video_the_browser_cannot_play_shows_its_frame_and_open(site: Site) -> None:
    driver, address = site.driver, site.address
    hit = _hit(address, "yellow", "cross")
    assert hit["path"].endswith("old.avi")  # MJPEG in AVI: no browser plays it
    _open_first_tile(driver, address, "a yellow cross")
    wait_for(driver, "return !document.querySelector('#v-cannot').hidden")
    wait_for(driver, "const b = document.querySelector('#big');"
                     "return !b.hidden && b.complete && b.naturalWidth > 0")  # fmt: skip
    shown = driver.execute_script(
        "return {video: document.querySelector('#v-video').hidden,"
        " open: !document.querySelector('#v-open-video').hidden,"
        " src: document.querySelector('#big').getAttribute('src')};"
    )
    assert shown == {"video": True, "open": True, "src": hit["image"]}, shown
