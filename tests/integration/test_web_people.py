"""The web page's People view in a real browser (headless system Chromium, one session for the
module), served by a real daemon with people on over the face photos (tests/fixtures/faces: four
labelled people, three photos each): the faces, naming in place, a person's photos, merging,
taking a face out of a person in the large view, the person filter of the search form, undoing a
merge and hiding a person (and showing them again).

The tests run in file order and build on each other (one database): Ana is named, then shown,
then loses a photo; Cy and Dee are merged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import served_page, wait_for
from daemons import FIXTURES, DaemonProcess
from web import request

LABELS: dict[str, str] = json.loads((FIXTURES / "faces" / "people.json").read_text())


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Any, str, dict[str, int]]]:
    """(driver, page address, person id by label) once the faces of every photo are read."""

    def fill(d: DaemonProcess, address: str) -> dict[str, int]:
        with d.client() as c:
            c.add_images([str(FIXTURES / "faces")])
        deadline = time.monotonic() + 120
        while (doc := _api(address, "/api/people"))["analysed"] < len(LABELS) or len(doc["people"]) < 4:
            assert time.monotonic() < deadline, doc
            time.sleep(0.3)
        assert len(doc["people"]) == 4, doc
        return {LABELS[Path(p["sample"]).name]: p["id"] for p in doc["people"]}

    with served_page(fill, people=True) as served:
        yield served


def _api(address: str, path: str) -> Any:
    got = request(address, "GET", path)
    assert got.status == 200, got.body
    return got.json()


def _people_view(driver: Any, count: int) -> None:
    """Open the People view and wait for ``count`` people with their faces loaded: the cards of
    this opening (the view lists people again each time it opens; the old cards are marked)."""
    driver.execute_script(
        "document.querySelectorAll('#people-grid .person').forEach(c => c.dataset.old = '1')"
    )
    driver.find_element("id", "tab-people").click()
    wait_for(
        driver,
        "const cards = [...document.querySelectorAll('#people-grid .person')];"
        "const imgs = cards.map(c => c.querySelector('img'));"
        "return cards.length === arguments[0] && cards.every(c => !c.dataset.old)"
        " && imgs.every(i => i.complete && i.naturalWidth > 0);",
        count,
    )


def _card(driver: Any, person: int) -> Any:
    return driver.find_element("css selector", f"#people-grid .person[data-id='{person}']")


def _shown_photos(driver: Any, text: str) -> set[str]:
    """The file names in the results grid once the message says ``text`` and thumbnails loaded."""
    wait_for(driver, "return document.querySelector('#message').textContent.includes(arguments[0])", text)
    wait_for(
        driver,
        "const imgs = [...document.querySelectorAll('#results .tile img')];"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);",
    )
    titles = driver.execute_script(
        "return [...document.querySelectorAll('#results .tile')].map(x => x.title)"
    )
    return {Path(t).name for t in titles}


def _photos_of(label: str) -> set[str]:
    return {name for name, who in LABELS.items() if who == label}


def test_the_people_view_shows_a_face_per_person(site: tuple[Any, str, dict[str, int]]) -> None:
    driver, _, ids = site
    _people_view(driver, 4)
    cards = driver.execute_script(
        "return [...document.querySelectorAll('#people-grid .person')].map(c => ({id: Number(c.dataset.id),"
        " count: c.querySelector('.count').textContent, w: c.querySelector('img').naturalWidth,"
        " h: c.querySelector('img').naturalHeight}))"
    )
    assert {c["id"] for c in cards} == set(ids.values())
    assert all(c["count"] == "3 photos" for c in cards)
    assert all(c["w"] == c["h"] and c["w"] >= 80 for c in cards)  # square crops, not placeholders


def test_a_name_is_edited_in_place(site: tuple[Any, str, dict[str, int]]) -> None:
    from selenium.webdriver.common.keys import Keys

    driver, address, ids = site
    _people_view(driver, 4)
    name = _card(driver, ids["person-a"]).find_element("css selector", ".name")
    name.click()
    name.send_keys("Ana", Keys.ENTER)
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is Ana')")
    assert _api(address, f"/api/people/{ids['person-a']}")["name"] == "Ana"
    name.click()
    name.send_keys(Keys.BACKSPACE * 3, "Zed", Keys.ESCAPE)  # Escape: nothing is saved
    assert name.get_attribute("value") == "Ana"
    assert _api(address, f"/api/people/{ids['person-a']}")["name"] == "Ana"
    other = _card(driver, ids["person-b"]).find_element("css selector", ".name")
    other.send_keys("Bo", Keys.ENTER)
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is Bo')")
    assert _api(address, f"/api/people/{ids['person-b']}")["name"] == "Bo"
    other.send_keys(Keys.BACKSPACE * 2, Keys.ENTER)  # an empty name takes the name away
    wait_for(driver, "return document.querySelector('#message').textContent.includes('has no name now')")
    assert _api(address, f"/api/people/{ids['person-b']}")["name"] is None


def test_a_person_opens_on_their_photos(site: tuple[Any, str, dict[str, int]]) -> None:
    driver, _, ids = site
    _people_view(driver, 4)
    _card(driver, ids["person-a"]).find_element("css selector", ".face").click()
    assert _shown_photos(driver, "3 photos of Ana") == _photos_of("person-a")
    assert driver.execute_script("return !document.querySelector('#query-image').hidden")


def test_people_are_merged_by_selecting_them(site: tuple[Any, str, dict[str, int]]) -> None:
    driver, address, ids = site
    _people_view(driver, 4)
    merge = driver.find_element("id", "merge")
    assert not merge.is_enabled()
    for label in ("person-c", "person-d"):
        _card(driver, ids[label]).find_element("css selector", ".pick").click()
    assert merge.is_enabled() and merge.text == "Merge 2 people"
    merge.click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('Merged 2 people')")
    wait_for(driver, "return document.querySelectorAll('#people-grid .person').length === 3")
    kept = min(ids["person-c"], ids["person-d"])  # neither has a name: into the lowest id
    merged = _api(address, f"/api/people/{kept}")
    assert {Path(p["path"]).name for p in merged["photos"]} == _photos_of("person-c") | _photos_of("person-d")
    assert len(_api(address, "/api/people")["people"]) == 3


def test_a_face_is_taken_out_of_a_person_in_the_large_view(site: tuple[Any, str, dict[str, int]]) -> None:
    driver, address, ids = site
    _people_view(driver, 3)
    _card(driver, ids["person-a"]).find_element("css selector", ".face").click()
    _shown_photos(driver, "3 photos of Ana")
    first = driver.find_elements("css selector", "#results .tile")[0]
    path = first.get_attribute("title")
    first.click()
    wait_for(driver, "return document.querySelector('#viewer').open")
    wait_for(driver, "return document.querySelector('#v-people').textContent.includes('Ana')")
    button = driver.find_element("id", "v-not")
    assert button.is_displayed() and button.text == "Not Ana"
    button.click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is not in')")
    assert not driver.execute_script("return document.querySelector('#viewer').open")
    assert len(driver.find_elements("css selector", "#results .tile")) == 2
    left = {p["path"] for p in _api(address, f"/api/people/{ids['person-a']}")["photos"]}
    assert path not in left and len(left) == 2


def test_the_person_filter_of_the_search_form(site: tuple[Any, str, dict[str, int]]) -> None:
    from selenium.webdriver.common.keys import Keys

    driver, address, ids = site
    driver.find_element("id", "tab-search").click()
    driver.find_element("css selector", "#filters summary").click()
    field = driver.find_element("css selector", "#filter-form input[name=person]")
    field.send_keys("Ana", Keys.ENTER)
    hers = {Path(p["path"]).name for p in _api(address, f"/api/people/{ids['person-a']}")["photos"]}
    assert _shown_photos(driver, "2 photos of Ana") == hers
    field.clear()
    field.send_keys("Anna", Keys.ENTER)  # nobody's name: the page shows the daemon's error
    wait_for(
        driver,
        "const m = document.querySelector('#message');"
        "return m.classList.contains('error') && m.textContent.includes('Ana');",
    )


def test_a_merge_is_undone_and_a_person_hidden_and_shown_again(site: tuple[Any, str, dict[str, int]]) -> None:
    driver, address, ids = site
    driver.find_element("id", "tab-search").click()
    _people_view(driver, 3)  # Cy and Dee merged (above); the page still offers to undo it
    undo = driver.find_element("id", "undo-merge")
    assert undo.is_displayed()
    undo.click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is undone')")
    wait_for(driver, "return document.querySelectorAll('#people-grid .person').length === 4")
    assert not undo.is_displayed()
    for label in ("person-c", "person-d"):  # each back with exactly their own photos
        photos = _api(address, f"/api/people/{ids[label]}")["photos"]
        assert {Path(p["path"]).name for p in photos} == _photos_of(label)

    hide = _card(driver, ids["person-b"]).find_element("css selector", ".hide")
    assert hide.text == "Hide"
    hide.click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is hidden')")
    wait_for(driver, "return document.querySelectorAll('#people-grid .person').length === 3")
    assert ids["person-b"] not in {p["id"] for p in _api(address, "/api/people")["people"]}
    everyone = _api(address, "/api/people?all=1")["people"]
    assert [p["hidden"] for p in everyone if p["id"] == ids["person-b"]] == [True]

    driver.find_element("id", "show-hidden").click()  # the hidden too, marked, with "Unhide"
    _people_view(driver, 4)
    card = _card(driver, ids["person-b"])
    assert "hidden-person" in card.get_attribute("class")
    card.find_element("css selector", ".hide").click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('is shown again')")
    assert ids["person-b"] in {p["id"] for p in _api(address, "/api/people")["people"]}
    driver.find_element("id", "show-hidden").click()
    _people_view(driver, 4)
    assert "hidden-person" not in _card(driver, ids["person-b"]).get_attribute("class")
