"""Words in pictures on a Qdrant database through the engine (qdrant-client's local mode): the
words analysis applies to it and saves what it read into the images' points, a query-less
``--words`` search lists the pictures holding them (most occurrences first), ``info`` shows the
text and lines, and ``words --disable`` deletes every text read."""

from __future__ import annotations

from pathlib import Path

from test_store_qdrant import FakeModel, write_images

from isearchd.engine.analysis import Failed
from isearchd.engine.engine import Engine
from isearchd.engine.query import SearchQuery
from isearchd.engine.words import WordsAnalysis, WordsFound
from isearchd.engine.words_ops import photo_info, words_settings
from isearchd.store.metadata import Filters
from isearchd.store.qdrant_link import QdrantLink
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
