"""Words in pictures in both stores (``isearchd.store.words``, ``isearchd.store.qdrant_words``): text
stored per photo, found by a piece of a word regardless of case and accents, pieces of one or two
characters, a photo deleted or changed loses its text, the switch and forgetting; the ranking's
documented difference; and the embedded catalog's migration from schema 7."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import pytest
from store_backends import BACKENDS, DIM, make_store, records, unit

from isearchd.store import Database, ImageDatabase, ImageRecord, SavePolicy
from isearchd.store.metadata import Filters
from isearchd.store.schema import SCHEMA_VERSION
from isearchd.store.words import WORDS_ANALYSIS, LineRow, fold
from isearchd.store.words_db import WordsStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from schemas import undo

QUIET = SavePolicy(background=False)
VERSION = 1


def open_db(home: Path) -> Database:
    return Database.open(home, "t", model_key="m", dim=DIM, save_policy=QUIET)


def with_images(home: Path, n: int) -> tuple[Database, list[int]]:
    db = open_db(home)
    batch = records(unit(np.random.default_rng(0), n))
    db.add(batch)
    ids = []
    for r in batch:
        row = db.catalog.get(r.label, with_vector=False)
        assert row is not None
        ids.append(row.id)
    return db, ids


class WordsDb(ImageDatabase, WordsStore, Protocol):
    """A database of either store with its words."""


@contextmanager
def both(kind: str, home: Path, n: int) -> Iterator[tuple[WordsDb, list[int]]]:
    """A database of ``n`` images in store ``kind``, as a ``WordsStore``, and their ids by label."""
    store = make_store(kind, home)
    try:
        db = store.open("t", model_key="m", dim=DIM, create=True)
        db.add(records(unit(np.random.default_rng(0), n)))
        ids = [p.id for p in sorted(db.pending(WORDS_ANALYSIS, VERSION, 1000), key=lambda p: p.label)]
        assert isinstance(db, WordsStore)
        yield cast(WordsDb, db), ids
        db.close()
    finally:
        store.close()


def lines(*texts: str) -> list[LineRow]:
    return [LineRow(t, (10, 10 + 30 * i, 200, 24), 0.9) for i, t in enumerate(texts)]


def found(db: ImageDatabase, words: str) -> list[int]:
    return db.matching(Filters(words=words))


def test_fold_drops_case_and_accents() -> None:
    assert fold("Café CRÈME Ångström ﬁne") == "cafe creme angstrom fine"
    assert fold("STRASSE") == fold("strasse")


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_piece_of_a_word_is_found_whatever_its_case_and_accents(kind: str, tmp_path: Path) -> None:
    with both(kind, tmp_path, 4) as (db, ids):
        db.store_words(
            VERSION,
            {
                ids[0]: lines("WiFi password: blue-otter-42", "Guest network"),
                ids[1]: lines("Crème brûlée", "Menu du jour"),
                ids[2]: lines("BOARDING PASS", "Gate B7 seat 12A"),
                ids[3]: [],
            },
        )
        assert found(db, "otter") == [ids[0]]
        assert found(db, "OTTER 42") == [ids[0]]  # every piece must occur; case is ignored
        assert found(db, "creme brulee") == [ids[1]]  # accents are ignored both ways
        assert found(db, "CRÈME") == [ids[1]]
        assert found(db, "boarding pass") == [ids[2]]
        assert found(db, "boarding otter") == []
        assert found(db, "b7") == [ids[2]]  # two characters: no trigram, matched on the text
        assert found(db, "12a gate") == [ids[2]]
        assert sorted(found(db, "e")) == sorted([ids[0], ids[1], ids[2]])  # one character too
        assert found(db, "   ") == []
        assert found(db, 'pass"word') == []  # a quote is a character like any other
        texts = db.words_of(ids)
        assert texts[ids[0]] == "WiFi password: blue-otter-42\nGuest network"
        assert texts[ids[3]] == ""  # read, no text
        assert [ln.text for ln in db.word_lines(ids[1])] == ["Crème brûlée", "Menu du jour"]
        assert db.word_lines(ids[1])[1].box == (10, 40, 200, 24)
        assert db.word_lines(ids[3]) == []
        assert db.image_id_of("/photos/00002.jpg") == ids[2] and db.image_id_of("/nope.jpg") is None


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_best_text_match_ranks_first(kind: str, tmp_path: Path) -> None:
    with both(kind, tmp_path, 3) as (db, ids):
        db.store_words(
            VERSION,
            {
                ids[0]: lines("a long page of other words " * 20 + "ticket"),
                ids[1]: lines("ticket ticket ticket"),
                ids[2]: lines("nothing here"),
            },
        )
        matched = found(db, "ticket")
        assert sorted(matched) == sorted(ids[:2])
        assert db.rank_by_words("ticket", matched) == [ids[1], ids[0]]


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_deleted_or_changed_photo_loses_its_text(kind: str, tmp_path: Path) -> None:
    with both(kind, tmp_path, 3) as (db, ids):
        db.store_words(VERSION, {i: lines(f"harbour lantern {n}") for n, i in enumerate(ids)})
        assert len(found(db, "lantern")) == 3
        db.delete_labels(["/photos/00000.jpg"])
        other = ImageRecord(
            "/photos/00001.jpg", "/photos/00001.jpg", 1, 2, "other", unit(np.random.default_rng(1), 1)[0]
        )
        db.add([other])  # the same label, other content
        assert found(db, "lantern") == [ids[2]]
        assert set(db.words_of(ids)) == {ids[2]}
        assert db.word_lines(ids[1]) == []
        assert db.count_pending(WORDS_ANALYSIS, VERSION) == 1  # the changed photo is read again


@pytest.mark.parametrize("kind", BACKENDS)
def test_off_and_forget(kind: str, tmp_path: Path) -> None:
    with both(kind, tmp_path, 2) as (db, ids):
        assert db.words_enabled()
        db.store_words(VERSION, {ids[0]: lines("velvet meadow")}, {ids[1]: "cannot decode"})
        assert db.count_failed(WORDS_ANALYSIS, VERSION) == 1
        db.set_words_enabled(False)
        assert not db.words_enabled()
        assert found(db, "velvet") == [ids[0]]  # off keeps what was read
        db.forget_words()
        assert found(db, "velvet") == [] and db.words_of(ids) == {}
        assert (
            db.count_pending(WORDS_ANALYSIS, VERSION) == 2 and db.count_failed(WORDS_ANALYSIS, VERSION) == 0
        )
        assert db.word_lines(ids[0]) == []
    store = make_store(kind, tmp_path)
    try:
        again = store.open("t", model_key="m", dim=DIM, create=False)
        assert isinstance(again, WordsStore)
        assert not again.words_enabled()  # the switch is the database's
        again.close()
    finally:
        store.close()


def test_forgetting_empties_the_embedded_tables(tmp_path: Path) -> None:
    db, ids = with_images(tmp_path, 2)
    with db:
        db.store_words(VERSION, {ids[0]: lines("velvet meadow")})
        db.forget_words()
        with db.catalog.reader() as conn:
            assert conn.execute("SELECT count(*) FROM words_index").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM word_lines").fetchone()[0] == 0


def test_a_catalog_of_schema_7_opens_and_gains_words(tmp_path: Path) -> None:
    db, ids = with_images(tmp_path, 2)
    db.close()
    conn = sqlite3.connect(tmp_path / "t" / "catalog.sqlite")
    undo(conn, 7)
    conn.close()
    with open_db(tmp_path) as db:
        assert db.catalog.get_meta("schema_version") == str(SCHEMA_VERSION) == "9"
        assert db.count() == 2 and db.words_of(ids) == {}
        assert db.count_pending(WORDS_ANALYSIS, VERSION) == 2
        db.store_words(VERSION, {ids[0]: lines("copper falcon")})
        assert found(db, "falcon") == [ids[0]]


@pytest.mark.parametrize("kind", BACKENDS)
def test_without_a_piece_of_three_characters_the_order_differs(kind: str, tmp_path: Path) -> None:
    """docs/words.md: the embedded store ranks by bm25 over trigrams and, with no piece of three
    characters or more, newest first; Qdrant (no bm25) always by how often the pieces occur."""
    with both(kind, tmp_path, 2) as (db, ids):
        db.store_words(VERSION, {ids[0]: lines("B7 B7 B7"), ids[1]: lines("gate B7")})
        matched = found(db, "b7")
        assert sorted(matched) == sorted(ids)
        ranked = db.rank_by_words("b7", matched)
        assert ranked == (sorted(ids, reverse=True) if kind == "embedded" else [ids[0], ids[1]])
