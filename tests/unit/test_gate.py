"""QueryGate: the add's decode threads start no new file while a search computes (bounded)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from test_indexer import FakeModel, items_for

from isearchd.engine.gate import QueryGate
from isearchd.engine.indexer import Indexer
from isearchd.store import Database


def test_wait_clear_returns_at_once_when_no_search_holds_it() -> None:
    gate = QueryGate(max_wait_s=30)
    assert gate.active == 0
    assert gate.wait_clear() is True


def test_wait_clear_waits_for_the_last_search_to_finish() -> None:
    gate = QueryGate(max_wait_s=30)
    release = threading.Event()

    def search() -> None:
        with gate.query(), gate.query():  # two searches at once
            release.wait(30)

    t = threading.Thread(target=search)
    t.start()
    while gate.active < 2:
        time.sleep(0.001)
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(gate.wait_clear()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not waited  # still waiting: the searches hold the gate
    release.set()
    waiter.join(30)
    t.join(30)
    assert waited == [True] and gate.active == 0


def test_the_wait_is_bounded() -> None:
    gate = QueryGate(max_wait_s=0.05)
    with gate.query():
        assert gate.wait_clear() is False  # searches back to back slow an add, never stop it
    assert gate.active == 0


def test_a_failing_search_releases_the_gate() -> None:
    gate = QueryGate()
    with pytest.raises(RuntimeError), gate.query():
        raise RuntimeError("bad image")
    assert gate.active == 0


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database.open(tmp_path / "home", "t", model_key="fake", dim=8)
    yield d
    d.close()


def test_an_add_prepares_no_file_while_a_search_holds_the_gate(tmp_path: Path, db: Database) -> None:
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (40, 30), (i * 40, 10, 10)).save(paths[-1])

    class CountingModel(FakeModel):
        fitted = 0

        def fit_image(self, image: Image.Image) -> Image.Image:
            CountingModel.fitted += 1
            return image

    gate = QueryGate(max_wait_s=60)
    reports = []
    with gate.query():
        add = threading.Thread(
            target=lambda: reports.append(Indexer(CountingModel(), db, gate=gate).run(items_for(paths)))
        )
        add.start()
        add.join(0.3)
        assert add.is_alive() and CountingModel.fitted == 0 and db.count() == 0
    add.join(60)
    assert reports[0].added == 6 and CountingModel.fitted == 6 and db.count() == 6


def test_listeners_hear_the_first_search_begin_and_the_last_end() -> None:
    gate = QueryGate()
    heard: list[bool] = []
    gate.listen(heard.append)
    with gate.query():
        with gate.query():  # a second search meanwhile: nothing new to tell
            assert heard == [True]
        assert heard == [True]
    assert heard == [True, False]
    with gate.query():
        pass
    assert heard == [True, False, True, False]
