"""isearchd.engine.rawpairs: a RAW+JPEG pair is one result (the JPEG, with ``raw``); each alone is
a result; pairs never leave a search short."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from isearchd.engine.rawpairs import LOOKAHEAD, fold, raws_beside_in, top_folded, with_raws
from isearchd.store import SearchHit


def hit(path: str, sim: float = 50.0, host: str | None = None) -> SearchHit:
    return SearchHit(label=path, path=path, similarity=sim, host=host)


def nothing_beside(_paths: list[str]) -> dict[str, str]:
    return {}


def paths(hits: list[SearchHit]) -> list[tuple[str, str | None]]:
    return [(h.path, h.raw) for h in hits]


def test_a_pair_among_the_hits_is_one_result_the_jpeg() -> None:
    hits = [hit("/p/IMG_1.CR2", 90), hit("/p/a.png", 80), hit("/p/IMG_1.JPG", 70)]
    assert paths(fold(hits)) == [("/p/a.png", None), ("/p/IMG_1.JPG", "/p/IMG_1.CR2")]
    assert fold(hits)[1].similarity == 70  # the JPEG's own similarity


def test_each_alone_is_a_result_and_names_must_match() -> None:
    hits = [
        hit("/p/IMG_2.NEF"),  # alone
        hit("/p/IMG_3.heic"),  # alone
        hit("/q/IMG_4.dng"),  # same stem, another folder: not a pair
        hit("/p/IMG_4.jpg"),
        hit("/p/img_5.ARW"),  # the stem's case differs: not a pair
        hit("/p/IMG_5.jpg"),
        hit("/p/IMG_6.raf", host="nas"),  # another machine's file ...
        hit("/p/IMG_6.jpg"),  # ... and this machine's: not a pair
    ]
    assert paths(fold(hits)) == [(h.path, None) for h in hits]


def test_heic_pairs_too_and_the_best_developed_file_takes_the_raw() -> None:
    hits = [hit("/p/IMG_7.heic"), hit("/p/IMG_7.DNG"), hit("/p/IMG_7.jpg")]
    assert paths(fold(hits)) == [("/p/IMG_7.heic", "/p/IMG_7.DNG"), ("/p/IMG_7.jpg", None)]


def test_a_jpeg_whose_raw_did_not_come_up_still_names_it() -> None:
    beside = {"/p/IMG_8.JPG": "/p/IMG_8.CR3"}
    hits = [
        hit("/p/IMG_8.JPG"),
        hit("/p/other.jpg"),
        hit("/p/IMG_9.jpg", host="nas"),
        hit("/p/IMG_8.heic"),
        hit("/p/clip.mp4"),
        replace(hit("/p/IMG_1.JPG"), raw="/p/IMG_1.CR2"),
    ]  # the last: paired already
    asked: list[list[str]] = []

    def raws_beside(paths: list[str]) -> dict[str, str]:
        asked.append(paths)
        return {p: beside[p] for p in paths if p in beside}

    assert paths(with_raws(hits, raws_beside)) == [
        ("/p/IMG_8.JPG", "/p/IMG_8.CR3"), ("/p/other.jpg", None), ("/p/IMG_9.jpg", None),
        ("/p/IMG_8.heic", None), ("/p/clip.mp4", None), ("/p/IMG_1.JPG", "/p/IMG_1.CR2"),
    ]  # fmt: skip
    # once, for all: never another machine's path, a second file of a stem, a video or a paired JPEG
    assert asked == [["/p/IMG_8.JPG", "/p/other.jpg"]]
    assert with_raws([hit("/p/a.png", host="nas")], raws_beside) == [hit("/p/a.png", host="nas")]
    assert len(asked) == 1  # nothing to ask: not asked


def test_pairs_never_leave_a_search_short() -> None:
    # 30 pairs ranked RAW, JPEG, RAW, JPEG...: 60 hits, 30 photos
    pool = [hit(f"/p/IMG_{i}{ext}") for i in range(30) for ext in (".NEF", ".JPG")]
    asked: list[int] = []

    def fetch(k: int) -> list[SearchHit]:
        asked.append(k)
        return pool[:k]

    got = top_folded(fetch, 20, nothing_beside)
    assert [h.path for h in got] == [f"/p/IMG_{i}.JPG" for i in range(20)]
    assert all(h.raw == f"/p/IMG_{i}.NEF" for i, h in enumerate(got))
    assert asked == [20 + LOOKAHEAD, 2 * (20 + LOOKAHEAD)]
    asked.clear()
    assert len(top_folded(fetch, 100, nothing_beside)) == 30  # all there is
    assert asked == [100 + LOOKAHEAD]  # the store had fewer: no second search


class FakeDb:
    def __init__(self, indexed: set[str]) -> None:
        self.indexed = indexed
        self.lookups = 0

    def indexed_paths(self, paths: list[str]) -> set[str]:
        self.lookups += 1
        return self.indexed & set(paths)


def test_raw_beside_needs_the_file_on_disk_and_in_the_database(tmp_path: Path) -> None:
    (tmp_path / "A.JPG").touch()
    (tmp_path / "A.CR2").touch()
    (tmp_path / "B.jpg").touch()
    (tmp_path / "B.nef").touch()  # on disk, not indexed
    (tmp_path / "C.jpg").touch()
    db = FakeDb({str(tmp_path / "A.CR2"), str(tmp_path / "C.dng")})  # C.dng indexed, since deleted
    beside = raws_beside_in(db)  # type: ignore[arg-type]
    asked = [str(tmp_path / name) for name in ("A.JPG", "B.jpg", "C.jpg")]
    assert beside(asked) == {str(tmp_path / "A.JPG"): str(tmp_path / "A.CR2")}
    assert db.lookups == 1  # one look-up for all the results
