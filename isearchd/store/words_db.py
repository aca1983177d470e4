"""Words in pictures on an embedded ``Database``: the reads on ``DatabaseReader`` (``WordsReads``),
the writes on ``Database`` (``WordsWrites``: each one transaction under the writer lock), and
``WordsStore``, the protocol the engine checks a database against (the Qdrant store's is
``qdrant_words.QdrantWords``). The tables and rules are ``words.py``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from isearchd.store import analyses, words
from isearchd.store.catalog import Catalog
from isearchd.store.words import WORDS_ANALYSIS, LineRow

if TYPE_CHECKING:
    from isearchd.store.interface import ImageDatabase

__all__ = ["WordsReads", "WordsStore", "WordsWrites", "words_store"]


@runtime_checkable
class WordsStore(Protocol):
    """A database that keeps the words read in its photos (both stores' do)."""

    def words_enabled(self) -> bool: ...

    def words_of(self, image_ids: Sequence[int]) -> dict[int, str]: ...

    def rank_by_words(self, words: str, image_ids: Sequence[int]) -> list[int]: ...

    def word_lines(self, image_id: int) -> list[LineRow]: ...

    def image_id_of(self, label: str) -> int | None: ...

    def set_words_enabled(self, enabled: bool) -> None: ...

    def store_words(
        self, version: int, rows: Mapping[int, Sequence[LineRow]], failures: Mapping[int, str] | None = None
    ) -> None: ...

    def forget_words(self) -> None: ...


def words_store(db: ImageDatabase) -> WordsStore:
    """``db`` as the ``WordsStore`` it is: every database of both stores keeps words
    (``database.Database``, ``qdrant.QdrantDatabase``); anything else is a bug, not a user's error."""
    if not isinstance(db, WordsStore):
        raise TypeError(f"{type(db).__name__} is not a WordsStore")
    return db


class WordsReads:
    """The words queries of a ``DatabaseReader`` (on a pooled reader connection)."""

    if TYPE_CHECKING:
        catalog: Catalog

    def words_enabled(self) -> bool:
        with self.catalog.reader() as conn:
            return words.words_enabled(conn)

    def words_of(self, image_ids: Sequence[int]) -> dict[int, str]:
        """The text of these images ("" when read and none was found); unread images are left out."""
        with self.catalog.reader() as conn:
            return words.texts(conn, image_ids)

    def word_lines(self, image_id: int) -> list[LineRow]:
        """The lines read in one image, in reading order ([] when none, or not read yet)."""
        with self.catalog.reader() as conn:
            return words.lines_of(conn, image_id)

    def image_id_of(self, label: str) -> int | None:
        row = self.catalog.get(label, with_vector=False)
        return None if row is None else int(row.id)

    def rank_by_words(self, words_: str, image_ids: Sequence[int]) -> list[int]:
        """``image_ids`` best match of ``words_`` first (bm25)."""
        with self.catalog.reader() as conn:
            return words.ranked(conn, words_, image_ids)


class WordsWrites(WordsReads):
    """The words writes of a ``Database``: one transaction each, under its writer lock."""

    if TYPE_CHECKING:

        def _writing(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def set_words_enabled(self, enabled: bool) -> None:
        with self._writing() as conn:
            words.set_words_enabled(conn, enabled)

    def store_words(
        self, version: int, rows: Mapping[int, Sequence[LineRow]], failures: Mapping[int, str] | None = None
    ) -> None:
        """The text version ``version`` of the words analysis read in these images, and the images
        it could not read (the reasons), recorded as read in the same transaction."""
        outcomes: dict[int, str | None] = {i: None for i in rows}
        outcomes.update(failures or {})
        with self._writing() as conn:
            words.store_words(conn, rows)
            analyses.record_outcomes(conn, WORDS_ANALYSIS, version, outcomes)

    def forget_words(self) -> None:
        """Delete all text read; photos will be read again if words stay on."""
        with self._writing() as conn:
            words.forget_words(conn)
