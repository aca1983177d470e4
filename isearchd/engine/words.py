"""The words analysis: reads the text in every photo and screenshot, so pictures can be found by
the words in them (``search --words``).

An ``Analysis`` (``isearchd.engine.analysis``): it runs on the analyses' background thread after
the image tower and after faces (``priority``), never while a search computes or indexing has
work. It reads the picture the indexer decoded (no second decode) at ``WORDS_SIDE``, or (for a
photo the indexer left no picture of) has the reader decode the file, in its worker processes
(``TextWorkers``: on every core, below the daemon's priority; ONNX Runtime in the daemon's own
process would take a core from searches). For each photo it stores every line read with a score
of at least ``min_score`` (text, box in the photo's pixels, score) and the models' version; a
photo that cannot be read is recorded with its reason.

Side: ``WORDS_SIDE`` is the shorter side of the picture read, 800: a 1080p photo is read at
1422x800 and a 1280x800 screenshot at its own size. Detection runs on a further reduced copy
(``isearchd.models.ocr.DETECT_LONG_SIDE``); lines are recognised in this picture. The inbox keeps
each new photo at the largest side an analysis asks for (faces: 720), so this side costs the
indexer's hand-off ~0.6 MB more per 1080p photo.

Databases of both stores keep words (the embedded store in its tables, Qdrant in the images'
points), only while words are on for them (``[words] enabled``, ``isearch words --disable``):
``applies`` says so. The text models are loaded on first use and released after
``MODELS_IDLE_S`` without work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from isearchd.engine.analysis import Failed, Outcome, Photo
from isearchd.engine.idle import IdleRelease, ReaderLifecycle
from isearchd.models.ocr import TextRead, TextWorkers
from isearchd.models.workers import PictureFile
from isearchd.store import ImageDatabase
from isearchd.store.words import LineRow
from isearchd.store.words_db import WordsStore

log = logging.getLogger(__name__)

__all__ = ["HIT_WORDS", "WORDS_SIDE", "WordsAnalysis", "WordsFound"]

WORDS_SIDE = 800
# A line of one character is kept only when the recogniser is at least this sure of it: in 20
# JPEG photos without text (bench_words.py's scenes) the detector took 10 blobs and edges for
# text, read as one character each ("8", "O", "三"); 8 scored under min_score (0.5), the other two
# 0.61 and 0.86.
MIN_SINGLE_SCORE = 0.9
# Characters of a photo's text that a search hit carries.
HIT_WORDS = 200
# Seconds without text to read after which the text models are released (~40 MB a worker).
MODELS_IDLE_S = 60.0


@dataclass(frozen=True)
class WordsFound:
    """The lines of one photo, in the coordinates of the picture that was read (``size``)."""

    lines: tuple[LineRow, ...]
    size: tuple[int, int]


class WordsAnalysis(ReaderLifecycle):
    """See the module docstring. ``reader``: where the text models run (``TextWorkers``)."""

    name: str = "words"
    priority: int = 4  # after faces (3): the slower analysis last
    side: int = WORDS_SIDE
    # photos per step: ~0.2-1 s on two workers (a photo without text ~90 core-ms, a screenshot ~1 s)
    chunk: int = 8
    tables: tuple[str, ...] = ("word_lines", "words", "words_index")
    reads_new: bool = True
    decodes_files: bool = True  # in the reader's worker processes

    def __init__(
        self, reader: TextWorkers, min_score: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reader = reader
        self.min_score = min_score
        self.version = reader.version
        self._idle = IdleRelease(reader.close, MODELS_IDLE_S, clock=clock)

    def applies(self, db: ImageDatabase) -> bool:
        return isinstance(db, WordsStore) and db.words_enabled()

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        pictures = [p.picture or PictureFile(p.file.path, self.side) for p in photos]
        out: dict[int, Outcome] = {}
        for photo, read in zip(photos, self.reader.read(pictures), strict=True):
            out[photo.file.id] = Failed(read) if isinstance(read, str) else self._found(read)
        self._idle.used()
        return out

    def _found(self, read: TextRead) -> WordsFound:
        kept = tuple(
            LineRow(line.text, line.box, line.score)
            for line in read.lines
            if line.score >= (self.min_score if len(line.text) > 1 else max(self.min_score, MIN_SINGLE_SCORE))
        )
        return WordsFound(kept, read.size)

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        if not isinstance(db, WordsStore) or not db.words_enabled():  # turned off meanwhile: keep nothing
            return
        rows: dict[int, Sequence[LineRow]] = {}
        failures: dict[int, str] = {}
        for image_id, outcome in outcomes.items():
            if isinstance(outcome, WordsFound):
                rows[image_id] = _in_photo_pixels(db, image_id, outcome)
            else:
                failures[image_id] = outcome.reason if isinstance(outcome, Failed) else "no result"
        db.store_words(self.version, rows, failures)



def _in_photo_pixels(db: ImageDatabase, image_id: int, found: WordsFound) -> tuple[LineRow, ...]:
    """The lines with their boxes scaled from the picture that was read to the photo's own pixels
    (its stored width and height; as read when they are unknown)."""
    record = db.record_by_id(image_id)
    info = record.info if record is not None else None
    width, height = found.size
    if info is None or not info.width or not info.height or not width or not height:
        return found.lines
    sx, sy = info.width / width, info.height / height
    out = []
    for ln in found.lines:
        left, top, width, height = ln.box
        box = (round(left * sx), round(top * sy), round(width * sx), round(height * sy))
        out.append(LineRow(ln.text, box, ln.score))
    return tuple(out)
