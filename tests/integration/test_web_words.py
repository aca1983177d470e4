"""Words in pictures on the web page in a real browser (headless system Chromium), served by a
real daemon with words on over pictures made at test time (tests/fixtures/textpics.py): the Words
field of the filters lists the pictures holding the words, and the large view shows the picture's
text with those words marked."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import served_page, wait_for
from daemons import FIXTURES, DaemonProcess
from web import request

sys.path.insert(0, str(FIXTURES))
from textpics import plain, scene


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """(driver, page address) once the words of every picture are read."""
    pics = tmp_path_factory.mktemp("pics")
    plain(["WiFi password: blue-otter-42", "Guest network"], size=40).save(pics / "wifi.png")
    plain(["Crème brûlée", "Menu du jour"], size=44).save(pics / "menu.png")
    scene((1200, 800), 5).save(pics / "nothing.jpg")

    def fill(d: DaemonProcess, address: str) -> None:
        with d.client() as c:
            c.add_images([str(pics)])
        deadline = time.monotonic() + 120
        while (words := _status(address).get("words")) is None or words["done"] < 3:
            assert time.monotonic() < deadline, words
            time.sleep(0.3)

    with served_page(fill, words=True) as (driver, address, _):
        yield driver, address


def _status(address: str) -> Any:
    got = request(address, "GET", "/api/status?db=default")
    assert got.status == 200, got.body
    return got.json()


def test_the_words_field_lists_pictures_and_the_large_view_marks_the_words(site: tuple[Any, str]) -> None:
    from selenium.webdriver.common.keys import Keys

    driver, _ = site
    driver.find_element("css selector", "#filters summary").click()
    field = driver.find_element("css selector", "#filter-form input[name=words]")
    field.send_keys("OTTER guest", Keys.ENTER)
    wait_for(driver, "return document.querySelector('#message').textContent.includes('1 photos with')")
    tiles = driver.find_elements("css selector", "#results .tile")
    assert [Path(t.get_attribute("title")).name for t in tiles] == ["wifi.png"]
    tiles[0].click()
    wait_for(driver, "return document.querySelector('#viewer').open")
    wait_for(driver, "return document.querySelectorAll('#v-words mark').length > 0")
    text = driver.find_element("id", "v-words").text
    marked = [m.text for m in driver.find_elements("css selector", "#v-words mark")]
    assert "blue-otter-42" in text and "Guest network" in text
    assert marked == ["otter", "Guest"]  # the words as the picture has them, whatever their case
    driver.find_element("id", "v-close").click()

    field.clear()
    field.send_keys("creme", Keys.ENTER)  # accents ignored both ways
    wait_for(
        driver, "return document.querySelector('#message').textContent.includes('with \u201ccreme\u201d')"
    )
    tiles = driver.find_elements("css selector", "#results .tile")
    assert [Path(t.get_attribute("title")).name for t in tiles] == ["menu.png"]
    tiles[0].click()
    wait_for(driver, "return document.querySelectorAll('#v-words mark').length > 0")
    first = driver.find_elements("css selector", "#v-words mark")[0].text.casefold()
    assert first in {"creme", "crème"}  # as the recogniser read it
    driver.find_element("id", "v-close").click()
