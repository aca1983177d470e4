"""Search the way people look for photos, through the engine and the protocol (in-process): dates,
types, order, combined queries, and exact top-k under filters.

The photos are the tiny model's coloured shapes, written by the test (tests/fixtures/photos.py)
with EXIF dates (with and without a UTC offset), GPS positions and orientation tags; some have no
EXIF at all (their date is the file's modification time). The raw protocol fields are tested
first, then the ``Client.search`` keywords that send them.
"""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import schemas
from harness import InProcessDaemon
from photos import LISBON, PARIS, TOKYO, photo

from isearchd.client import Client
from isearchd.errors import InvalidRequest, NotFound
from isearchd.messages import BackfillProgress, Hit
from isearchd.protocol import validate_request


@dataclass(frozen=True)
class Library:
    root: Path
    beach: Path  # red circle, Lisbon, July 2019 (+01:00)
    dog: Path  # red square, Paris, 2019-12-31 23:30 local
    family: Path  # blue circle in Family/, Tokyo, 2021-03-05
    old: Path  # red circle, no EXIF: its mtime (2015-06-01)
    png: Path  # red triangle PNG, no EXIF, mtime 2020
    sideways: Path  # a portrait photo stored sideways (orientation 6)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, daemon: InProcessDaemon) -> Library:
    root = tmp_path_factory.mktemp("lib")
    ts = time.mktime
    lib = Library(
        root=root,
        beach=photo(
            root / "2019" / "beach.jpg",
            "red",
            "circle",
            1,
            taken="2019:07:14 18:30:05",
            offset="+01:00",
            gps=LISBON,
        ),
        dog=photo(root / "2019" / "dog.jpg", "red", "square", 2, taken="2019:12:31 23:30:00", gps=PARIS),
        family=photo(
            root / "Family" / "tokyo.jpg", "blue", "circle", 3, taken="2021:03:05 09:00:00", gps=TOKYO
        ),
        old=photo(root / "scans" / "old.jpg", "red", "circle", 4, mtime=ts((2015, 6, 1, 12, 0, 0, 0, 0, -1))),
        png=photo(
            root / "scans" / "tri.png",
            "red",
            "triangle",
            5,
            fmt="PNG",
            mtime=ts((2020, 2, 2, 12, 0, 0, 0, 0, -1)),
        ),
        sideways=photo(
            root / "2019" / "portrait.jpg", "green", "star", 6, taken="2019:08:01 10:00:00", orientation=6
        ),
    )
    with daemon.client("filters") as c:
        assert c.add_images([str(root)]) == 6
    return lib


def search(c: Client, **args: object) -> list[Hit]:
    """A search request as the protocol carries it (the daemon's own validation builds its type)."""
    hits: list[Hit] = c.request(validate_request({"op": "search", "db": c.db_name, "num": 10, **args}))
    return hits


def paths(hits: list[Hit]) -> list[str]:
    return [h.path for h in hits]


def test_results_carry_what_each_photo_says(daemon: InProcessDaemon, library: Library) -> None:
    with daemon.client("filters") as c:
        hits = {h.path: h for p in library.__dict__.values() if p != library.root
                for h in search(c, like=str(p), num=1)}  # fmt: skip
    beach = hits[str(library.beach)]
    assert beach.taken == "2019-07-14T18:30:05+01:00" and beach.taken_source == "exif"
    assert beach.place is not None and "Portugal" in str(beach.place) and "Lisbon" in str(beach.place)
    assert (beach.width, beach.height, beach.type) == (64, 64, "jpeg")
    assert beach.bytes == library.beach.stat().st_size
    old = hits[str(library.old)]
    assert old.taken_source == "mtime" and str(old.taken).startswith("2015-06-01")
    assert old.place is None
    assert hits[str(library.png)].type == "png"
    portrait = hits[str(library.sideways)]
    assert portrait.taken == "2019-08-01T10:00:00"


def test_each_filter_alone_and_combined(daemon: InProcessDaemon, library: Library) -> None:
    """Each filtered result is exactly the unfiltered ranking's images that pass (in order)."""
    year = {library.beach: 2019, library.dog: 2019, library.family: 2021, library.old: 2015,
            library.png: 2020, library.sideways: 2019}  # fmt: skip
    folder = {p: p.parent.name for p in year}
    country = {library.beach: "portugal", library.dog: "france", library.family: "japan"}
    cases = [
        ({"after": "2019", "before": "2019"}, lambda p: year[p] == 2019),
        ({"after": "2019-12-31", "before": "2019-12-31"}, lambda p: p == library.dog),  # 23:30 local
        ({"after": "2020-01"}, lambda p: year[p] >= 2020),
        ({"before": "2019-07-14"}, lambda p: p in (library.old, library.beach)),
        ({"within": [str(library.root / "scans")]}, lambda p: folder[p] == "scans"),
        ({"place": "lisbon"}, lambda p: p == library.beach),
        ({"place": "PORTUGAL"}, lambda p: p == library.beach),
        ({"place": "Japan"}, lambda p: country.get(p) == "japan"),
        ({"types": ["png"]}, lambda p: p == library.png),
        ({"types": ["jpg"]}, lambda p: p != library.png),  # jpg means jpeg
        ({"after": "2019", "within": [str(library.root / "2019")], "types": ["jpeg"]},
         lambda p: year[p] >= 2019 and folder[p] == "2019"),
        ({"place": "Atlantis"}, lambda p: False),
    ]  # fmt: skip
    with daemon.client("filters") as c:
        for query in ("a red circle", "a blue circle", "a green star", "a red triangle"):
            ranked = [Path(p) for p in paths(search(c, text=query, num=10))]
            for args, passes in cases:
                got = paths(search(c, text=query, **args))
                assert got == [str(p) for p in ranked if passes(p)], (query, args)
        # the filters reach photos, not only empty lists
        assert paths(search(c, text="a red circle", place="lisbon")) == [str(library.beach)]
        assert paths(search(c, text="a red triangle", types=["png"])) == [str(library.png)]


def test_sort_by_taken_time(daemon: InProcessDaemon, library: Library) -> None:
    with daemon.client("filters") as c:
        oldest = paths(search(c, text="a red circle", sort="oldest"))
        newest = paths(search(c, text="a red circle", sort="newest"))
    assert oldest[0] == str(library.old) and oldest[-1] == str(library.family)
    assert newest == list(reversed(oldest))


def test_bad_filters_are_one_clear_error(daemon: InProcessDaemon, library: Library) -> None:
    with daemon.client("filters") as c:
        for args, needle in (
            ({"after": "July 2019"}, "YYYY"),
            ({"after": "2019-13"}, "not a date"),
            ({"after": "2020", "before": "2019"}, "no date can pass"),
            ({"sort": "random"}, "sort"),
            ({"types": ["jpg", "foo"]}, "unknown image type 'foo'"),
            ({"within": ["relative/dir"]}, "absolute"),
        ):
            with pytest.raises(InvalidRequest, match=needle):
                search(c, text="x", **args)
        with pytest.raises(NotFound, match="not an image of database"):
            search(c, like=str(library.root / "nope.jpg"))


def test_like_uses_the_stored_vector_and_comes_first(daemon: InProcessDaemon, library: Library) -> None:
    with daemon.client("filters") as c:
        hits = search(c, like=str(library.beach))
    assert hits[0].path == str(library.beach) and hits[0].similarity == 100.0


def test_plus_and_minus_move_the_ranking(daemon: InProcessDaemon, library: Library) -> None:
    with daemon.client("filters") as c:
        plain = search(c, text="a circle")
        towards_blue = search(c, text="a circle", plus=[{"text": "blue", "weight": 2.0}])
        away_from_red = search(c, text="a circle", minus=[{"text": "red"}])
        image_plus = search(c, text="a circle", plus=[{"image": {"path": str(library.family)}}])
    rank = {p: i for i, p in enumerate(paths(plain))}
    assert paths(towards_blue)[0] == str(library.family)
    assert paths(away_from_red).index(str(library.family)) <= rank[str(library.family)]
    assert paths(image_plus)[0] == str(library.family)


def test_client_keywords_send_the_protocol_fields(
    daemon: InProcessDaemon, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Client.search``/``search_hits`` keywords give what the raw fields give: dates as
    ``datetime.date`` (a ``datetime``: its day), folders made absolute, one type or folder as a
    plain str, parts as texts, image paths or (part, weight); ``like`` instead of the query."""
    monkeypatch.chdir(library.root)  # relative folders and like paths are made absolute
    with daemon.client("filters") as c:
        raw = search(c, text="a red circle", after="2019-07-14", before="2019-12-31",
                     within=[str(library.root / "2019")], types=["jpg"])  # fmt: skip
        day, evening = datetime.date(2019, 7, 14), datetime.datetime(2019, 12, 31, 8, 0)
        hits = c.search_hits("a red circle", after=day, before=evening, within="2019", types="jpg")
        assert hits == raw
        assert (
            {str(library.beach), str(library.dog)}
            <= set(paths(hits))
            <= set(map(str, (library.beach, library.sideways, library.dog)))
        )
        beach = next(h.similarity for h in hits if h.path == str(library.beach))
        assert c.search("a red circle", place="lisbon") == [(str(library.beach), beach)]
        assert c.search("a red circle", within=[Path("scans")], types=["png", "jpeg"], num=1)[0][0] == str(
            library.old
        )
        oldest = c.search("a red circle", sort="oldest")
        assert [p for p, _ in oldest] == paths(search(c, text="a red circle", sort="oldest"))
        for keywords, fields in (
            ({"plus": [("blue", 2)]}, {"plus": [{"text": "blue", "weight": 2.0}]}),
            ({"plus": ("blue", 2.5)}, {"plus": [{"text": "blue", "weight": 2.5}]}),  # one part
            ({"minus": "red"}, {"minus": [{"text": "red"}]}),
            ({"plus": [library.family, (str(library.dog), 0.5)], "minus": ["green"]},
             {"plus": [{"image": {"path": str(library.family)}},
                       {"image": {"path": str(library.dog)}, "weight": 0.5}],
              "minus": [{"text": "green"}]}),
        ):  # fmt: skip
            assert c.search_hits("a circle", **keywords) == search(c, text="a circle", **fields), keywords
        like = c.search_hits(like="2019/beach.jpg", num=3)
        assert like == search(c, like=str(library.beach), num=3) and like[0].similarity == 100.0
        assert c.search(like=library.beach, num=1) == [(str(library.beach), 100.0)]
        for call, needle in (
            (lambda: c.search("x", like=library.beach), "not both"),
            (lambda: c.search(), "empty"),
            (lambda: c.search("x", after="July 2019"), "YYYY"),
            (lambda: c.search("x", after=2019), "datetime.date"),  # type: ignore[arg-type]
            (lambda: c.search("x", plus=[("blue", "heavy")]), "weight must be a number"),  # type: ignore[list-item]
            (lambda: c.search("x", plus=[("blue", 0)]), "weight"),  # the daemon's range
        ):
            with pytest.raises(InvalidRequest, match=needle):
                call()
        with pytest.raises(NotFound, match="no such file"):
            c.search("x", plus=[library.root / "missing.jpg"])


def test_filtered_results_are_the_exact_top_k(daemon: InProcessDaemon, tmp_path: Path) -> None:
    """Against brute force over the stored vectors: no short lists because a filter ran late."""
    for i in range(40):
        colour = ("red", "green", "blue", "yellow")[i % 4]
        photo(tmp_path / f"d{i % 5}" / f"{i}.jpg", colour, ("circle", "square")[i % 2], 100 + i,
              taken=f"{2010 + i % 10}:01:01 12:00:00")  # fmt: skip
    with daemon.client("exact") as c:
        assert c.add_images([str(tmp_path)]) == 40
        ref = paths(search(c, text="a red circle", num=40))
        sims = {h.path: h.similarity for h in search(c, text="a red circle", num=40)}
        for within, after in ((str(tmp_path / "d3"), None), (None, "2015"), (str(tmp_path / "d1"), "2012")):
            args: dict[str, object] = {"text": "a red circle", "num": 3}
            if within:
                args["within"] = [within]
            if after:
                args["after"] = after
            got = search(c, **args)
            passing = [p for p in ref if (not within or p.startswith(within + "/"))
                       and (not after or int(Path(p).stem) % 10 + 2010 >= int(after))]  # fmt: skip
            assert paths(got) == passing[:3] or [sims[p] for p in paths(got)] == [
                sims[p] for p in passing[:3]
            ]
            assert np.all(np.diff([h.similarity for h in got]) <= 0)


def test_a_catalog_from_before_metadata_is_backfilled_in_the_background(
    make_daemon: Callable[..., InProcessDaemon], tmp_path: Path
) -> None:
    """A database of schema 3 (no metadata columns) is migrated when opened; its photos' metadata
    is read from their files in the background (nothing embedded again), with progress in status."""
    beach = photo(tmp_path / "p" / "beach.jpg", "red", "circle", 1, taken="2019:07:14 18:30:05", gps=LISBON)
    plain = photo(tmp_path / "p" / "plain.png", "blue", "square", 2, fmt="PNG")
    d = make_daemon(listen=True).start()
    with d.client("old") as c:
        assert c.add_images([str(tmp_path / "p")]) == 2
    assert d.stop() == 0
    catalog = d.home / "old" / "catalog.sqlite"
    conn = sqlite3.connect(catalog)
    schemas.undo(conn, 3)  # back to what schema 3 wrote (no metadata)
    vectors_before = dict(conn.execute("SELECT id, vector FROM images").fetchall())
    conn.close()
    d.start()
    with d.client("old") as c:
        deadline = time.monotonic() + 60
        while True:
            hits = {h.path: h for h in search(c, text="a red circle")} | {
                h.path: h for h in search(c, like=str(plain), num=1)
            }
            if hits[str(beach)].taken and hits[str(plain)].type:
                break
            assert time.monotonic() < deadline, hits
            time.sleep(0.2)
        progress = c.status().metadata["old"]
    assert progress == BackfillProgress(total=2, done=2, unreadable=0)
    status = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "service", "status", "-B", d.bind],
        env=d.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert '* Photo metadata of "old": read for 2 images (0 unreadable)' in status.stdout, status.stdout
    assert "Portugal" in str(hits[str(beach)].place) and hits[str(plain)].type == "png"
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    assert dict(conn.execute("SELECT id, vector FROM images").fetchall()) == vectors_before  # not re-embedded
    conn.close()
