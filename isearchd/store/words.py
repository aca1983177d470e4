"""Words in pictures in the embedded store: the lines of text read in each photo, and a full-text
index to find photos by them (migration ``m008_words``).

Tables
    word_lines(image_id, line, text, left, top, width, height, score)
        every line of text the words analysis read, in reading order; box in the photo's pixels.
    words(image_id, text)
        the photo's text, its lines joined by newlines ("" when it holds none): one row for every
        photo read, so "read, no text" and "not read yet" differ.
    words_index(folded)  -- FTS5, rowid = image id, ``tokenize = 'trigram case_sensitive 0'``
        the text folded (``fold``: case and accents off). Trigrams find a word inside a longer
        token ("otter" in "blue-otter-42"), which a word tokenizer cannot.

Rules
- A search's words (``Filters.words``) are folded the same way and split at spaces: every piece
  must occur in the photo's folded text. Pieces of three characters or more go through the
  trigram index (``MATCH``); shorter ones cannot (a trigram index has nothing to look up for
  them) and are matched with ``instr`` on the folded text of the photos that pass the rest.
- Everything here is derived: the words analysis rebuilds it. A photo deleted or changed loses its
  text (the triggers, as ``m006_analyses`` does for ``analyses``).
- ``words_enabled`` (``meta.words_enabled``, '1' or '0', on when absent): whether the daemon reads
  the words of this database's photos; ``forget_words`` deletes all that was read.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from isearchd.errors import StoreError

__all__ = [
    "ENABLED_KEY",
    "WORDS_ANALYSIS",
    "LineRow",
    "fold",
    "forget_words",
    "m008_words",
    "pieces",
    "set_words_enabled",
    "store_words",
    "words_enabled",
    "words_where",
]

# The analysis that writes these tables (its rows in ``analyses``; ``forget_words`` clears them).
WORDS_ANALYSIS = "words"
ENABLED_KEY = "words_enabled"
# A piece of a search shorter than this has no trigram to look up.
TRIGRAM = 3
_CHUNK = 500


@dataclass(frozen=True)
class LineRow:
    """A line of text read in a photo: its text, box (left, top, width, height, in the photo's
    pixels) and the recogniser's score (0-1)."""

    text: str
    box: tuple[int, int, int, int]
    score: float


def fold(text: str) -> str:
    """``text`` without case or accents: NFKD, combining marks dropped, casefolded ("Café" and
    "CAFE" both fold to "cafe"; "ﬁ" to "fi")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def m008_words(db: sqlite_utils.Database) -> None:
    # Why: finding pictures by the words in them needs the text read in each photo and an index
    # that finds a piece of a word regardless of case and accents (FTS5 trigrams over folded
    # text); an image deleted or changed must lose its text, on every write path.
    db.execute(
        """CREATE TABLE word_lines (
            image_id INTEGER NOT NULL,
            line INTEGER NOT NULL,
            text TEXT NOT NULL,
            left INTEGER NOT NULL,
            top INTEGER NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            score REAL NOT NULL,
            PRIMARY KEY (image_id, line)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE TABLE words (image_id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    try:
        db.execute(
            "CREATE VIRTUAL TABLE words_index USING fts5(folded, tokenize = 'trigram case_sensitive 0')"
        )
    except sqlite3.OperationalError as e:  # no FTS5, or no trigram tokenizer (SQLite < 3.34)
        raise StoreError(
            f"this Python's SQLite {sqlite3.sqlite_version} cannot index words ({e}): words in pictures"
            " need SQLite 3.34 or later with FTS5; use a Python built with a newer SQLite"
        ) from e
    for event, when, image in (
        ("deleted", "AFTER DELETE ON images", "old.id"),
        (
            "changed",
            "AFTER UPDATE OF content_hash ON images WHEN old.content_hash IS NOT new.content_hash",
            "new.id",
        ),
    ):
        db.execute(
            f"""CREATE TRIGGER words_image_{event} {when}
               BEGIN
                 DELETE FROM word_lines WHERE image_id = {image};
                 DELETE FROM words WHERE image_id = {image};
                 DELETE FROM words_index WHERE rowid = {image};
               END"""  # noqa: S608 - fixed names
        )


def store_words(conn: sqlite3.Connection, rows: Mapping[int, Sequence[LineRow]]) -> None:
    """Replace the text of these images with ``rows`` (an empty sequence: read, no text). Ids no
    longer in the catalog (deleted meanwhile) are left out."""
    ids = list(rows)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        present = [i for (i,) in conn.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk)]  # noqa: S608
        for table, column in (("word_lines", "image_id"), ("words", "image_id"), ("words_index", "rowid")):
            conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)  # noqa: S608
        for image_id in present:
            lines = rows[image_id]
            conn.executemany(
                "INSERT INTO word_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(image_id, n, ln.text, *ln.box, float(ln.score)) for n, ln in enumerate(lines)],
            )
            text = "\n".join(ln.text for ln in lines)
            conn.execute("INSERT INTO words(image_id, text) VALUES (?, ?)", [image_id, text])
            if text:
                conn.execute("INSERT INTO words_index(rowid, folded) VALUES (?, ?)", [image_id, fold(text)])


def pieces(words: str) -> list[str]:
    """A search's words, folded and split at white space (each must occur)."""
    return fold(words).split()


def _quoted(piece: str) -> str:
    return '"' + piece.replace('"', '""') + '"'


def words_where(words: str) -> tuple[str, list[Any]]:
    """The SQL condition on ``images.id`` that the photo's text holds every piece of ``words``."""
    long = [p for p in pieces(words) if len(p) >= TRIGRAM]
    short = [p for p in pieces(words) if len(p) < TRIGRAM]
    where, args = [], []
    if long:
        where.append("words_index MATCH ?")
        args.append(" AND ".join(_quoted(p) for p in long))
    for piece in short:
        where.append("instr(folded, ?) > 0")
        args.append(piece)
    if not where:  # nothing to look for: no photo holds "no words"
        return "0", []
    # (only fixed conditions with "?" placeholders are joined here)
    return "id IN (SELECT rowid FROM words_index WHERE " + " AND ".join(where) + ")", args  # noqa: S608


def ranked(conn: sqlite3.Connection, words: str, ids: Sequence[int]) -> list[int]:
    """``ids`` best text match first (FTS5's bm25 over the trigram pieces; without a piece of three
    characters or more, newest first)."""
    long = [p for p in pieces(words) if len(p) >= TRIGRAM]
    if not long:
        return sorted(ids, reverse=True)
    wanted = set(ids)
    sql = "SELECT rowid FROM words_index WHERE words_index MATCH ? ORDER BY bm25(words_index), rowid DESC"
    order = [i for (i,) in conn.execute(sql, [" AND ".join(_quoted(p) for p in long)]) if i in wanted]
    return order + sorted(wanted - set(order), reverse=True)


def texts(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, str]:
    """The text of these images that have been read ("" when they hold none); unread ones are left out."""
    out: dict[int, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        out.update(conn.execute(f"SELECT image_id, text FROM words WHERE image_id IN ({marks})", chunk))  # noqa: S608
    return out


def lines_of(conn: sqlite3.Connection, image_id: int) -> list[LineRow]:
    """The lines read in one image, in reading order."""
    sql = "SELECT text, left, top, width, height, score FROM word_lines WHERE image_id = ? ORDER BY line"
    return [LineRow(t, (lf, tp, w, h), s) for t, lf, tp, w, h, s in conn.execute(sql, [image_id])]


def words_enabled(conn: sqlite3.Connection) -> bool:
    """Whether the words of this database's photos are read (on unless turned off)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [ENABLED_KEY]).fetchone()
    return row is None or str(row[0]) != "0"


def set_words_enabled(conn: sqlite3.Connection, enabled: bool) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [ENABLED_KEY, "1" if enabled else "0"],
    )


def forget_words(conn: sqlite3.Connection) -> None:
    """Delete all text read, and the words analysis's record of which photos it read (so they are
    read again if words are turned back on). The switch stays."""
    for table in ("word_lines", "words", "words_index"):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    conn.execute("DELETE FROM analyses WHERE analysis = ?", [WORDS_ANALYSIS])
