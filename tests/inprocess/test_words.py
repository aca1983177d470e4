"""Words in pictures through the Client and the protocol into the engine (in-process), with the
real text models in a worker process: pictures made at test time (text drawn with DejaVu fonts on
plain backgrounds and synthetic photos, a screenshot, a photo without text) are read in the
background, then found by their words alone and combined with a query; a changed picture is read
again."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from harness import FIXTURES, InProcessDaemon

from isearchd.client import Client
from isearchd.engine.words import WordsAnalysis
from isearchd.errors import InvalidRequest
from isearchd.messages import Hit

sys.path.insert(0, str(FIXTURES))
from textpics import on_photo, plain, scene, screenshot


def words_analysis() -> WordsAnalysis:
    from isearchd.models.ocr import RapidTextModels, TextWorkers

    return WordsAnalysis(TextWorkers(RapidTextModels, 1), min_score=0.5)


def make_pictures(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plain(["WiFi password: blue-otter-42", "Guest network"], size=40).save(folder / "wifi.png")
    on_photo(["BOARDING PASS", "GATE B7 SEAT 12A"], size=44, seed=3).save(folder / "boarding.jpg")
    on_photo(["Creme brulee", "Menu du jour"], size=40, seed=4, angle=3).save(folder / "menu.jpg")
    screenshot(["Network name: harbour lantern", "Password: velvet meadow copper"]).save(folder / "shot.png")
    scene((1600, 900), 5).save(folder / "nothing.jpg")
    return folder


def read_all(c: Client, db: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = c.status().analyses.get("words", {}).get(db)
        if found is not None and found.total and found.done == found.total:
            return
        assert time.monotonic() < deadline, f"words not read in time: {found}"
        time.sleep(0.2)


def names(hits: list[Hit]) -> list[str]:
    return [Path(h.path).name for h in hits]


@pytest.fixture
def daemon_with_words(make_daemon: Callable[..., InProcessDaemon]) -> InProcessDaemon:
    return make_daemon(words=words_analysis).start()


def test_pictures_are_found_by_their_words(daemon_with_words: InProcessDaemon, tmp_path: Path) -> None:
    folder = make_pictures(tmp_path / "pics")
    with daemon_with_words.client("w") as c:
        assert c.add_images([str(folder)]) == 5
        read_all(c, "w")
        status = c.status().analyses["words"]["w"]
        assert (status.total, status.done, status.unreadable) == (5, 5, 0)

        # alone: the pictures holding every word, with their text
        assert names(c.search_hits(words="otter")) == ["wifi.png"]  # inside "blue-otter-42"
        assert set(names(c.search_hits(words="PASSWORD"))) == {"shot.png", "wifi.png"}
        assert names(c.search_hits(words="boarding b7")) == ["boarding.jpg"]  # a 2-character word too
        assert names(c.search_hits(words="CRÈME")) == ["menu.jpg"]  # case and accents ignored
        assert names(c.search_hits(words="velvet copper")) == ["shot.png"]
        assert c.search_hits(words="otter boarding") == []
        hit = c.search_hits(words="guest")[0]
        assert isinstance(hit.words, str) and "blue-otter-42" in hit.words and len(hit.words) <= 200
        assert hit.similarity == 0.0

        # combined with a query: only pictures with the words, ranked by the query
        ranked = c.search_hits(str(folder / "shot.png"), words="password", num=10)
        assert names(ranked)[0] == "shot.png" and ranked[0].similarity == 100.0  # the query's order
        assert set(names(ranked)) <= {"shot.png", "wifi.png"}  # only pictures holding the words
        assert all(isinstance(h.words, str) and h.words for h in ranked)
        assert c.search_hits(str(folder / "shot.png"))[0].words is msgspec.UNSET  # no words asked
        every = c.search_hits(str(folder / "shot.png"), with_words=True, num=10)
        assert every[0].words == c.search_hits(words="velvet")[0].words  # its text, unfiltered
        assert all(isinstance(h.words, str) for h in every)

        with pytest.raises(InvalidRequest):
            c.search_hits(words="   ")


def test_a_changed_picture_is_read_again(daemon_with_words: InProcessDaemon, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    sign = folder / "sign.png"
    plain(["harbour lantern"], size=48).save(sign)
    with daemon_with_words.client("c") as c:
        assert c.add_images([str(sign)]) == 1
        read_all(c, "c")
        assert names(c.search_hits(words="lantern")) == ["sign.png"]
        plain(["copper falcon"], size=48).save(sign)
        assert c.add_images([str(sign)]) == 1
        read_all(c, "c")
        assert c.search_hits(words="lantern") == []
        assert names(c.search_hits(words="falcon")) == ["sign.png"]
