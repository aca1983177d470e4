"""Words in pictures through a real daemon process and the real `isearch` command line, with the
real text models: pictures made at test time (tests/fixtures/textpics.py) are read in the
background, then found by `--words` alone and with a query, shown by `info`, and forgotten by
`words --disable`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import FIXTURES, DaemonProcess, cli, module_daemon

sys.path.insert(0, str(FIXTURES))
from textpics import on_photo, plain, scene, screenshot


@pytest.fixture(scope="module")
def words_daemon() -> Iterator[DaemonProcess]:
    yield from module_daemon(words=True)


def found(run: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> list[str]:
    done = run(*args, "--json", "-d", "w")
    assert done.returncode == 0, done.stderr
    return [Path(h["path"]).name for h in json.loads(done.stdout)["results"]]


def test_words_from_the_command_line(words_daemon: DaemonProcess, tmp_path: Path) -> None:
    run = cli(words_daemon)
    pics = tmp_path / "pics"
    pics.mkdir()
    plain(["WiFi password: blue-otter-42", "Guest network"], size=40).save(pics / "wifi.png")
    on_photo(["BOARDING PASS", "GATE B7"], size=44, seed=3).save(pics / "boarding.jpg")
    screenshot(["Network name: harbour lantern", "Password: velvet meadow"]).save(pics / "shot.png")
    scene((1600, 900), 5).save(pics / "nothing.jpg")
    for real in (FIXTURES / "words").glob("*.jpg"):  # real pictures: see their README
        shutil.copy(real, pics / real.name)
    assert run("add", str(pics), "-d", "w").returncode == 0
    deadline = time.monotonic() + 120
    while 'Words of "w": words read in 8 of 8 photos' not in (status := run("service", "status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(0.3)

    assert found(run, "--words", "OTTER") == ["wifi.png"]
    assert set(found(run, "--words", "password")) == {"wifi.png", "shot.png"}
    assert found(run, "--words", "boarding b7") == ["boarding.jpg"]
    assert found(run, "--words", "movieshots 7858") == ["en.jpg"]  # real pictures
    assert found(run, "--words", "ALPHABETUM latinum") == ["latin.jpg"]
    assert found(run, "--words", "我是中国人") == ["img_exif_orientation.jpg"]  # upright by its EXIF
    assert found(run, "--words", "发货") == ["ch_en_num.jpg"]  # two characters: matched on the text
    listed = run("--words", "otter", "-d", "w")
    assert listed.returncode == 0 and "wifi.png" in listed.stdout and "blue-otter-42" in listed.stdout
    combined = run(str(pics / "shot.png"), "--words", "password", "--json", "-d", "w")
    doc = json.loads(combined.stdout)
    assert doc["kind"] == "image" and Path(doc["results"][0]["path"]).name == "shot.png"
    assert doc["results"][0]["similarity"] == 100.0 and "velvet" in doc["results"][0]["words"]
    detailed = json.loads(run(str(pics / "shot.png"), "--details", "--json", "-d", "w").stdout)["results"]
    assert "velvet" in detailed[0]["words"] and all("words" in h for h in detailed)  # no filter
    assert "words" not in json.loads(run(str(pics / "shot.png"), "--json", "-d", "w").stdout)["results"][0]

    shown = json.loads(run("info", str(pics / "wifi.png"), "--json", "-d", "w").stdout)
    assert shown["path"] == str(pics / "wifi.png") and shown["type"] == "png"
    assert (shown["width"], shown["height"]) == (1200, 800)
    assert "blue-otter-42" in shown["words"] and shown["lines"][0]["text"].startswith("WiFi")
    assert shown["people"] == []  # no named people in it
    empty = json.loads(run("info", str(pics / "nothing.jpg"), "--json", "-d", "w").stdout)
    assert empty["words"] == "" and empty["lines"] == []
    text = run("info", str(pics / "boarding.jpg"), "-d", "w")
    assert text.returncode == 0 and "BOARDING PASS" in text.stdout, text.stderr
    missing = run("info", str(tmp_path / "nope.jpg"), "-d", "w")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1

    off = run("words", "--disable", "-d", "w")
    assert off.returncode == 0 and "deleted" in off.stdout, off.stderr
    assert found(run, "--words", "otter") == []
    assert json.loads(run("info", str(pics / "wifi.png"), "--json", "-d", "w").stdout)["words"] is None
