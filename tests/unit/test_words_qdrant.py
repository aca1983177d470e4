"""Words in pictures on a Qdrant database through the engine (qdrant-client's local mode): the
words analysis applies to it and saves what it read into the images' points, a query-less
``--words`` search lists the pictures holding them (most occurrences first), ``info`` shows the
text and lines, and ``words --disable`` deletes every text read; the switch is cached, another
daemon's seen after ``SETTING_TTL_S``; a search ranks by the folded text alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_backends import DIM, records, unit
from test_store_qdrant import FakeModel, write_images

from isearchd.engine.analysis import Failed
from isearchd.engine.engine import Engine
from isearchd.engine.query import SearchQuery
from isearchd.engine.words import WordsAnalysis, WordsFound
from isearchd.engine.words_ops import photo_info, words_settings
from isearchd.store.metadata import Filters
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_meta import SETTING_TTL_S
from isearchd.store.qdrant_store import QdrantStore
from isearchd.store.words import WORDS_ANALYSIS, LineRow
from isearchd.store.words_db import WordsStore

VERSION = 3


class NoReader:
    """Stands for the text workers: the test hands the analysis what they would have read."""

    version = VERSION

    def close(self) -> None:
        pass


def test_a_qdrant_database_keeps_and_finds_words_through_the_engine(tmp_path: Path) -> None:
    engine = Engine(
        FakeModel(),
        tmp_path / "home",
        batch_size=4,
        store=QdrantStore(QdrantLink.connect(f"qdrant://{tmp_path}/q"), host="alpha"),
    )
    try:
        paths = write_images(tmp_path / "photos", 3, seed=1)
        engine.add_paths("lib", [str(tmp_path / "photos")])
        db = engine.database("lib", create=False)
        analysis = WordsAnalysis(NoReader(), min_score=0.5)  # type: ignore[arg-type]
        assert analysis.applies(db)
        ids = {Path(p.path).name: p.id for p in db.pending(WORDS_ANALYSIS, VERSION, 10)}
        a, b, c = (ids[p.name] for p in paths)
        ticket = LineRow("Ticket: TICKET", (2, 2, 8, 4), 0.9)
        analysis.save(
            db,
            {
                a: WordsFound((LineRow("Boarding ticket", (1, 1, 8, 4), 0.8), ticket), (32, 32)),
                b: WordsFound((ticket,), (16, 16)),
                c: Failed("cannot decode"),
            },
        )
        assert (
            db.count_pending(WORDS_ANALYSIS, VERSION) == 0 and db.count_failed(WORDS_ANALYSIS, VERSION) == 1
        )
        hits = engine.search("lib", SearchQuery(terms=(), filters=Filters(words="TICKET")))
        assert [h.id for h in hits] == [a, b]  # three occurrences, then two
        assert [h.id for h in engine.search("lib", SearchQuery((), filters=Filters(words="board tick")))] == [
            a
        ]
        info = photo_info(engine, "lib", str(paths[0]))
        assert info.words == "Boarding ticket\nTicket: TICKET"
        assert [(ln.text, ln.box) for ln in info.lines] == [
            ("Boarding ticket", (0, 0, 4, 2)),
            ("Ticket: TICKET", (1, 1, 4, 2)),
        ]
        assert engine.words_of("lib", [a, b, c]) == {a: info.words, b: "Ticket: TICKET"}
        state = words_settings(engine, "lib", False)
        assert not state.enabled and state.read == 0 and state.total == 3
        assert isinstance(db, WordsStore) and not db.words_enabled() and not analysis.applies(db)
        assert engine.search("lib", SearchQuery(terms=(), filters=Filters(words="ticket"))) == []
    finally:
        engine.close()


def test_the_switch_is_cached_and_another_daemons_is_seen_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons ("alpha", "beta") on one store: each asks Qdrant for the switch once per
    ``SETTING_TTL_S``; its own switch it sees at once, the other's after that long. What alpha read
    before beta turned words off and forgot them is not written after (its check is fresh)."""
    link = QdrantLink.connect(f"qdrant://{tmp_path}/q")
    now = [0.0]
    alpha_store, beta_store = (QdrantStore(link, host=h, clock=lambda: now[0]) for h in ("alpha", "beta"))
    alpha = alpha_store.open("lib", model_key="m", dim=DIM, create=True)
    beta = beta_store.open("lib", model_key="m", dim=DIM, create=False)
    alpha.add(records(unit(np.random.default_rng(0), 2)))
    ids = [p.id for p in alpha.pending(WORDS_ANALYSIS, VERSION, 10)]
    reads: list[Any] = []
    with link.guard() as client:
        retrieve = client.retrieve
        meta = alpha_store.meta.collection

        def counted(collection: str, *args: Any, **kwargs: Any) -> Any:
            if collection == meta:
                reads.append(args)
            return retrieve(collection, *args, **kwargs)

        monkeypatch.setattr(client, "retrieve", counted)

    assert alpha.words_enabled() and beta.words_enabled()
    assert all(alpha.words_enabled() for _ in range(20)) and len(reads) == 2  # one read per daemon
    beta.set_words_enabled(False)
    beta.forget_words()
    assert not beta.words_enabled()  # its own switch at once
    assert alpha.words_enabled()  # beta's not yet
    alpha.store_words(VERSION, {ids[0]: [LineRow("read before the switch", (0, 0, 4, 2), 0.9)]})
    assert alpha.words_of(ids) == {}  # not written after beta's forget
    now[0] += SETTING_TTL_S
    assert not alpha.words_enabled() and not beta.words_enabled()
    alpha.set_words_enabled(True)
    assert alpha.words_enabled() and not beta.words_enabled()
    now[0] += SETTING_TTL_S
    assert beta.words_enabled()
    alpha_store.close()


def test_ranking_reads_only_the_folded_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rank_by_words`` asks Qdrant for ``words_folded`` alone (not the lines nor the rest of the
    payload), and ranks by it."""
    store = QdrantStore(QdrantLink.connect(f"qdrant://{tmp_path}/q"), host="alpha")
    db = store.open("lib", model_key="m", dim=DIM, create=True)
    db.add(records(unit(np.random.default_rng(0), 2)))
    a, b = sorted(p.id for p in db.pending(WORDS_ANALYSIS, VERSION, 10))
    db.store_words(
        VERSION,
        {a: [LineRow("one ticket", (0, 0, 4, 2), 0.9)], b: [LineRow("Ticket TICKET", (0, 0, 4, 2), 0.9)]},
    )
    asked: list[Any] = []
    with store.link.guard() as client:
        scroll = client.scroll

        def recorded(*args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs.get("with_payload"))
            return scroll(*args, **kwargs)

        monkeypatch.setattr(client, "scroll", recorded)
    assert db.rank_by_words("ticket", [a, b]) == [b, a]
    assert asked == [["iid", "words_folded"]]
    store.close()
