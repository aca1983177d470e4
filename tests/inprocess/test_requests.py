"""What each request does, through the Client and the protocol into the engine (in-process), with
the tiny test model: add, search by text and by image, compare, databases, typed errors.

One in-process daemon serves the whole module; each test works in its own database.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from shapes import render, write_samples

from isearchd.client import Client
from isearchd.errors import BadImage, InvalidRequest, NotFound
from isearchd.protocol import to_wire
from isearchd.reports import Progress

if TYPE_CHECKING:
    from harness import InProcessDaemon

ClientFactory = Callable[..., Client]


def test_add_counts_duplicates_changes_and_bad_files(tmp_path: Path, client_factory: ClientFactory) -> None:
    folder = tmp_path / "photos"
    write_samples(folder / "nested" / "deeper", 1, classes=[("red", "circle"), ("blue", "star")])
    write_samples(folder, 1, classes=[("green", "square"), ("yellow", "cross")], fmt="png")
    render("purple", "triangle", 5).save(folder / "UPPER.PNG")
    render("orange", "star", 6).save(folder / ".hidden.png")
    (folder / ".cache").mkdir()
    render("orange", "star", 7).save(folder / ".cache" / "x.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")

    c = client_factory("adds")
    events: list[Progress] = []
    added = c.add_images([str(folder)], progress=events.append)
    report = c.last_add
    assert report is not None
    assert added == report.added == 5  # 2 nested jpgs + 2 pngs + UPPER.PNG; hidden and .txt ignored
    assert report.skipped == 0
    failed = dict(report.failed)
    assert set(failed) == {str(folder / "broken.jpg"), str(folder / "empty.png")}
    assert all(reason for reason in failed.values())
    assert "empty" in failed[str(folder / "empty.png")]
    assert c.get_db_info()["size"] == 5
    assert events, "no progress events"
    assert events[-1].done == events[-1].total == 7
    assert [e.done for e in events] == sorted(e.done for e in events)

    # re-adding: everything present is skipped, the bad files fail again
    assert c.add_images([str(folder)]) == 0
    assert (c.last_add.skipped, len(c.last_add.failed)) == (5, 2)  # type: ignore[union-attr]

    # a changed file is re-embedded, the others skipped; the count does not change
    changed = folder / "nested" / "deeper" / "red_circle_0.jpg"
    render("blue", "square", 99, 256).save(changed, quality=90)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert c.add_images([str(changed), str(folder / "UPPER.PNG")]) == 1
    assert c.last_add.skipped == 1  # type: ignore[union-attr]
    assert c.get_db_info()["size"] == 5
    top = c.search(str(changed), num=1)
    assert top[0] == (str(changed), 100.0)


def test_relative_paths_and_name_labels(tmp_path: Path, client_factory: ClientFactory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_samples(tmp_path / "imgs", 1, classes=[("red", "circle"), ("green", "star")])
    monkeypatch.chdir(tmp_path)
    c = client_factory("names")
    assert c.add_images(["imgs"], label_type="name") == 2
    # search() returns paths, as the original README documents; search_hits() has the labels too
    assert c.search("a red circle", num=1)[0][0] == str(tmp_path / "imgs" / "red_circle_0.jpg")
    record = c.search_hits("a green star", num=1)[0]
    assert record.label == "green_star_0.jpg"
    assert record.path == str(tmp_path / "imgs" / "green_star_0.jpg")  # where the file is
    with pytest.raises(InvalidRequest, match="label_type"):
        c.add_images(["imgs"], label_type="stem")


def test_add_returns_its_report_and_last_add_is_each_threads_own(
    tmp_path: Path, client_factory: ClientFactory
) -> None:
    """``add`` returns the whole ``AddReport``; ``add_images`` keeps the original API (the count,
    the report in ``last_add``), and threads sharing one Client each see the report of their own add."""
    c = client_factory("typed")
    first = write_samples(tmp_path / "first", 1, classes=[("red", "circle"), ("blue", "star")])
    second = write_samples(tmp_path / "second", 1, classes=[("green", "square")])
    (tmp_path / "second" / "broken.jpg").write_bytes(b"not a jpeg")
    report = c.add([str(first[0])])
    assert (report.added, report.skipped, report.failed) == (1, 0, [])
    assert c.last_add is None  # only add_images records it

    done = threading.Barrier(2, timeout=120)
    seen: dict[str, tuple[int, tuple[int, int, int] | None]] = {}
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            added = c.add_images([str(tmp_path / name)])
            done.wait()  # both adds finished before either reads last_add
            mine = c.last_add
            seen[name] = (added, None if mine is None else (mine.added, mine.skipped, len(mine.failed)))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(name,)) for name in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert seen == {"first": (1, (1, 1, 0)), "second": (1, (1, 0, 1))}
    assert c.last_add is None  # this thread added nothing through add_images

    hits = c.search_hits(str(second[0]), num=1)
    assert len(hits) == 1
    assert (hits[0].path, hits[0].label, hits[0].similarity) == (str(second[0]), str(second[0]), 100.0)
    assert set(to_wire(hits[0])) == {
        "path", "label", "similarity", "taken", "taken_source", "width", "height", "place", "type",
        "bytes", "id",
    }  # fmt: skip
    assert isinstance(hits[0].id, int) and c.image_info(hits[0].id).path == str(second[0])
    assert (hits[0].taken_source, hits[0].type, hits[0].place) == ("mtime", "jpeg", None)


def test_text_search_finds_the_described_images(gallery: Path, client_factory: ClientFactory) -> None:
    c = client_factory("semantic")
    assert c.add_images([str(gallery)]) == 90
    for colour, shape in [("red", "circle"), ("blue", "square"), ("yellow", "star")]:
        hits = c.search(f"a {colour} {shape}", num=3)
        assert len(hits) == 3
        names = [Path(label).name for label, _ in hits]
        assert all(n.startswith(f"{colour}_{shape}_") for n in names), (colour, shape, hits)
        sims = [s for _, s in hits]
        assert sims == sorted(sims, reverse=True)
        assert all(isinstance(s, float) and 0 <= s <= 100 for s in sims)


def test_long_and_unicode_text_queries(gallery: Path, client_factory: ClientFactory) -> None:
    c = client_factory("semantic")
    c.add_images([str(gallery)])
    assert len(c.search("a red circle " * 800, num=5)) == 5  # ~10,000 characters, truncated to 77 tokens
    assert all(0 <= sim <= 100 for _, sim in c.search("rött äpple 🍎", num=2))
    with pytest.raises(InvalidRequest, match="empty"):
        c.search("   ")


def test_image_search_and_threshold(gallery: Path, client_factory: ClientFactory, tmp_path: Path) -> None:
    c = client_factory("semantic")
    c.add_images([str(gallery)])
    query = tmp_path / "query.jpg"
    render("green", "triangle", 777, 256).save(query, quality=90)  # not in the database
    hits = c.search(str(query), num=3)
    assert Path(hits[0][0]).name.startswith("green_triangle_")
    # an indexed image finds itself first at 100 %
    own = gallery / "purple_cross_1.jpg"
    first = c.search(str(own), num=1)
    assert first == [(str(own), 100.0)]
    # threshold and count are honoured
    hits = c.search(str(own), num=50, similarity=60)
    assert 1 <= len(hits) <= 50 and all(s >= 60 for _, s in hits)
    assert all(s >= 100.0 for _, s in c.search("a purple cross", num=5, similarity=100))
    assert len(c.search("a purple cross", num=7)) == 7


def test_an_image_search_during_a_long_add_is_answered_while_the_add_runs(
    gallery: Path, client_factory: ClientFactory, daemon: InProcessDaemon, tmp_path: Path
) -> None:
    """Indexing is background work: a search waits for one small slice of a batch, not the add.
    (The add goes over the server's socket: its progress must stream while it runs.)"""
    searcher = client_factory("during-search")
    searcher.add_images([str(gallery)])
    many = tmp_path / "many"
    many.mkdir()
    for i in range(600):
        render("red", "circle", 10_000 + i, 192).save(many / f"{i:04d}.png")
    query = tmp_path / "query.jpg"
    render("green", "triangle", 777, 256).save(query, quality=90)
    adding = threading.Event()
    add_returned = threading.Event()
    reports: list[int] = []

    def add() -> None:
        with daemon.socket_client("during-add") as adder:
            reports.append(adder.add_images([str(many)], progress=lambda p: adding.set()))
        add_returned.set()

    t = threading.Thread(target=add)
    t.start()
    assert adding.wait(60), "the add never reported progress"
    hits = searcher.search(str(query), num=3)
    answered_while_adding = not add_returned.is_set()
    t.join(120)
    assert Path(hits[0][0]).name.startswith("green_triangle_")
    assert answered_while_adding
    assert reports == [600]


def test_compare_images(gallery: Path, client_factory: ClientFactory) -> None:
    c = client_factory()
    a = str(gallery / "red_circle_0.jpg")
    assert c.compare_images(a, a) == 100.0
    same_class = c.compare_images(a, str(gallery / "red_circle_1.jpg"))
    other = c.compare_images(a, str(gallery / "blue_star_0.jpg"))
    assert 0 <= other < same_class < 100
    assert round(same_class, 1) == same_class
    with pytest.raises(NotFound, match=r"missing\.jpg"):
        c.compare_images(a, str(gallery / "missing.jpg"))


def test_database_list_info_clear(gallery: Path, client_factory: ClientFactory) -> None:
    c = client_factory("tmpdb")
    c.add_images([str(gallery / "red_circle_0.jpg"), str(gallery / "red_circle_1.jpg")])
    assert "tmpdb" in c.list_dbs()
    info = c.get_db_info()
    assert info["name"] == "tmpdb" and info["size"] == 2 and info["capacity"] >= 2
    assert Path(info["base"]).name == "tmpdb"
    assert c.clear_db() is True
    assert c.get_db_info()["size"] == 0
    assert c.search("a red circle") == []
    assert "tmpdb" in c.list_dbs()


def test_errors_are_typed(gallery: Path, client_factory: ClientFactory, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        client_factory("never-created").search("a red circle")
    with pytest.raises(NotFound):
        client_factory("never-created").get_db_info()
    with pytest.raises(InvalidRequest, match="database name"):
        client_factory("../escape").search("x")
    c = client_factory("semantic")
    c.add_images([str(gallery)])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(BadImage, match=r"bad\.png"):
        c.search(str(bad))
    with pytest.raises(InvalidRequest):
        c.search("a red circle", num=0)
    with pytest.raises(InvalidRequest):
        c.search("a red circle", similarity=150)
    assert c.hello().protocol == 1  # the connection is still good after errors


def test_a_database_of_another_model_is_refused_not_mixed(daemon: InProcessDaemon, gallery: Path) -> None:
    import numpy as np

    from isearchd.errors import ModelMismatch
    from isearchd.store import Database, ImageRecord

    vec = np.ones(512, dtype=np.float32)
    with Database.open(daemon.home, "vit8", model_key="ViT-8Y", dim=512) as other:
        other.add([ImageRecord("x.jpg", "/x.jpg", 1, 1, "00" * 16, vec)])
    with daemon.client("vit8") as c:
        with pytest.raises(ModelMismatch, match="ViT-8Y"):
            c.search("a red circle")
        with pytest.raises(ModelMismatch):
            c.add_images([str(gallery / "red_circle_0.jpg")])
        info = c.get_db_info()  # info works whatever the model
        assert info["model"] == "ViT-8Y" and info["size"] == 1
        assert c.clear_db() is True
        assert c.add_images([str(gallery / "red_circle_0.jpg")]) == 1  # an empty database is taken over
