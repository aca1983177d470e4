"""The web page in a real browser (headless system Chromium, one session for the module), served
by a real daemon with the tiny test model over the synthetic shapes: search by text, by a
dropped, pasted or picked image, the large view, more like this, keyboard navigation, filters,
the database chooser and the duplicates review."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import served_page, wait_for
from daemons import DaemonProcess
from shapes import write_samples


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_samples(folder, 1)  # one of each of the 30 colour-shape classes
    write_samples(folder / "pngs", 1, classes=[("blue", "circle"), ("red", "star")], fmt="png", seed=20_000)
    shutil.copy(folder / "green_star_0.jpg", folder / "green_star_copy.jpg")
    return folder


@pytest.fixture(scope="module")
def page(photos: Path) -> Iterator[tuple[Any, str]]:
    """(driver, page URL): the daemon serves the page; "default" holds ``photos``, "other" two."""

    def fill(d: DaemonProcess, _: str) -> None:
        with d.client() as c:
            assert not c.add([str(photos)]).failed
        with d.client("other") as c:
            assert c.add([str(photos / "pngs")]).added == 2

    with served_page(fill) as (driver, address, _):
        yield driver, f"http://{address}/"


def _results(driver: Any) -> list[dict[str, Any]]:
    """The grid's tiles once every thumbnail in view has loaded: title (path) and image sizes."""
    wait_for(
        driver,
        "const imgs = [...document.querySelectorAll('#results .tile img')];"
        "return imgs.length > 0 && imgs.filter(i => i.getBoundingClientRect().top < innerHeight)"
        "  .every(i => i.complete && i.naturalWidth > 0);",
    )
    return list(driver.execute_script(
        "return [...document.querySelectorAll('#results .tile')].map(t => ({path: t.title.split('\\n')[0],"
        " w: t.querySelector('img').naturalWidth, h: t.querySelector('img').naturalHeight,"
        " sim: t.querySelector('.sim').textContent}));"
    ))  # fmt: skip


def _fresh(driver: Any, url: str) -> None:
    driver.get(url)
    wait_for(driver, "return document.querySelector('#db').options.length > 0")
    driver.execute_script("document.querySelector('#results').replaceChildren()")


def _search_text(driver: Any, text: str) -> list[dict[str, Any]]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    wait_for(driver, "return document.querySelector('#message').textContent.includes(arguments[0])", text)
    return _results(driver)


def test_typing_a_query_shows_thumbnails(page: tuple[Any, str]) -> None:
    driver, url = page
    _fresh(driver, url)
    tiles = _search_text(driver, "a red circle")
    assert Path(tiles[0]["path"]).name == "red_circle_0.jpg"
    in_view = [t for t in tiles if t["w"]]
    assert in_view and all(t["w"] == 256 and t["h"] == 256 for t in in_view)  # thumbnails, not placeholders
    assert tiles[0]["sim"].endswith("%")
    status = driver.find_element("id", "status").text
    assert "images in default" in status


def test_keyboard_moves_through_the_grid_and_opens_the_large_view(
    page: tuple[Any, str], photos: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver, url = page
    _fresh(driver, url)
    tiles = _search_text(driver, "a blue square")
    driver.execute_script("document.querySelector('#results .tile').focus()")
    keys = ActionChains(driver)
    keys.send_keys(Keys.ARROW_RIGHT).perform()
    assert driver.execute_script("return document.activeElement.dataset.index") == "1"
    columns = driver.execute_script(
        "const t = [...document.querySelectorAll('#results .tile')];"
        "return t.filter(x => x.offsetTop === t[0].offsetTop).length"
    )
    keys.send_keys(Keys.ARROW_DOWN).perform()
    assert driver.execute_script("return document.activeElement.dataset.index") == str(1 + columns)
    keys.send_keys(Keys.ARROW_UP, Keys.ARROW_LEFT, Keys.ENTER).perform()
    wait_for(driver, "return document.querySelector('#viewer').open")
    wait_for(driver, "const b = document.querySelector('#big'); return b.complete && b.naturalWidth > 0")
    assert driver.find_element("id", "v-path").text == tiles[0]["path"]
    facts = driver.find_element("id", "v-facts").text
    assert "Size" in facts and "256 × 256" in facts and "Taken" in facts and "jpeg" in facts
    assert driver.execute_script("return document.querySelector('#big').naturalWidth") == 256
    keys.send_keys(Keys.ARROW_RIGHT).perform()
    wait_for(
        driver, "return document.querySelector('#v-path').textContent === arguments[0]", tiles[1]["path"]
    )
    keys.send_keys(Keys.ESCAPE).perform()
    wait_for(driver, "return !document.querySelector('#viewer').open")
    # closing puts the focus back on the grid, on the picture last viewed
    wait_for(driver, "return document.activeElement.classList.contains('tile')")
    assert driver.execute_script("return document.activeElement.dataset.index") == "1"
    # "/" goes back to the search box
    keys.send_keys("/").perform()
    assert driver.execute_script("return document.activeElement.id") == "q"


def test_more_like_this_from_the_large_view(page: tuple[Any, str]) -> None:
    driver, url = page
    _fresh(driver, url)
    tiles = _search_text(driver, "a yellow star")
    driver.find_elements("css selector", "#results .tile")[2].click()
    wait_for(driver, "return document.querySelector('#viewer').open")
    driver.find_element("id", "v-like").click()
    wait_for(driver, "return document.querySelector('#message').textContent.includes('more like this')")
    like = _results(driver)
    assert like[0]["path"] == tiles[2]["path"] and like[0]["sim"] == "100.0%"


def _drop_script(kind: str) -> str:
    make = (
        "const [b64, name] = arguments;"
        "const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));"
        "const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));"
    )
    if kind == "drop":
        return make + (
            "document.body.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));"
            "document.body.dispatchEvent("
            "  new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));"
        )
    return (
        make + "document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true}));"
    )


@pytest.mark.parametrize("kind", ["drop", "paste"])
def test_dropping_or_pasting_an_image_searches_by_it(page: tuple[Any, str], photos: Path, kind: str) -> None:
    driver, url = page
    _fresh(driver, url)
    query = photos / "purple_cross_0.jpg"
    driver.execute_script(_drop_script(kind), base64.b64encode(query.read_bytes()).decode(), "query.jpg")
    wait_for(driver, "return document.querySelector('#message').textContent.includes('for the image')")
    tiles = _results(driver)
    assert tiles[0]["path"] == str(query) and tiles[0]["sim"] == "100.0%"
    assert driver.execute_script("return !document.querySelector('#query-image').hidden")
    assert driver.execute_script("return document.querySelector('#drop').hidden")


def test_picking_an_image_file_searches_by_it(page: tuple[Any, str], photos: Path) -> None:
    driver, url = page
    _fresh(driver, url)
    query = photos / "orange_triangle_0.jpg"
    driver.find_element("id", "pick").send_keys(str(query))
    wait_for(driver, "return document.querySelector('#message').textContent.includes('for the image')")
    assert _results(driver)[0]["path"] == str(query)


def test_filters_narrow_the_results(page: tuple[Any, str], photos: Path) -> None:
    from selenium.webdriver.support.ui import Select

    driver, url = page
    _fresh(driver, url)
    everything = _search_text(driver, "a blue circle")
    assert any(t["path"].endswith(".jpg") for t in everything)
    driver.find_element("css selector", "#filters summary").click()
    Select(driver.find_element("css selector", "#filter-form select[name=type]")).select_by_value("png")
    wait_for(
        driver, "return [...document.querySelectorAll('#results .tile')].every(t => t.title.includes('.png'))"
    )
    pngs = _results(driver)
    assert pngs and all(t["path"].endswith(".png") for t in pngs)
    assert Path(pngs[0]["path"]).name == "blue_circle_0.png"
    Select(driver.find_element("css selector", "#filter-form select[name=type]")).select_by_value("")
    folder = driver.find_element("css selector", "#filter-form input[name=folder]")
    folder.send_keys(str(photos / "pngs"))
    driver.execute_script("document.querySelector('#filter-form').dispatchEvent(new Event('change'))")
    wait_for(
        driver,
        "return [...document.querySelectorAll('#results .tile')].every(t => t.title.includes('/pngs/'))",
    )
    assert all("/pngs/" in t["path"] for t in _results(driver))


def test_database_chooser_switches_the_search(page: tuple[Any, str]) -> None:
    from selenium.webdriver.support.ui import Select

    driver, url = page
    _fresh(driver, url)
    _search_text(driver, "a red star")
    chooser = Select(driver.find_element("id", "db"))
    assert {o.text for o in chooser.options} >= {"default", "other"}
    chooser.select_by_value("other")
    wait_for(driver, "const t = [...document.querySelectorAll('#results .tile')];"
                  "return t.length > 0 && t.every(x => x.title.includes('/pngs/'))")  # fmt: skip
    assert all("/pngs/" in t["path"] for t in _results(driver))
    wait_for(driver, "return document.querySelector('#status').textContent.includes('2 images in other')")


def test_duplicates_review_marks_the_keeper(page: tuple[Any, str]) -> None:
    driver, url = page
    _fresh(driver, url)
    driver.find_element("id", "tab-dups").click()
    wait_for(driver, "return document.querySelectorAll('#groups .group').length > 0")
    group = driver.execute_script(
        "const g = [...document.querySelectorAll('#groups .group')]"
        "  .find(x => x.textContent.includes('green_star'));"
        "return g && {tiles: [...g.querySelectorAll('.tile')].map(t => t.title.split('\\n')[0]),"
        " keep: [...g.querySelectorAll('.tile')].map(t => !!t.querySelector('.badge'))};"
    )
    assert group is not None
    assert {Path(p).name for p in group["tiles"]} == {"green_star_0.jpg", "green_star_copy.jpg"}
    assert group["keep"] == [True, False]
    wait_for(
        driver,
        "return [...document.querySelectorAll('#groups img')].every(i => i.complete && i.naturalWidth > 0)",
    )
