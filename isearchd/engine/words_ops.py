"""What the words ops do (``isearchd.messages.words``): everything the database knows of one photo
(``photo_info``: its facts, the named people in it and the text read in it), and turning the
reading of words on or off for a database (``words_settings``). Writes go through the engine's
write queue, as every write."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import msgspec

from isearchd.errors import NotFound
from isearchd.messages import ImageInfo, WordLine, WordsState
from isearchd.store.words import WORDS_ANALYSIS
from isearchd.store.words_db import words_store

if TYPE_CHECKING:
    from isearchd.engine.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["photo_info", "words_settings"]


def photo_info(engine: Engine, db_name: str, label: str) -> ImageInfo:
    """The photo labelled ``label`` (else, for a database of name labels, its file name)."""
    words = words_store(engine.database(db_name, create=False))
    image_id = words.image_id_of(label)
    if image_id is None and PurePosixPath(label).is_absolute():
        image_id = words.image_id_of(PurePosixPath(label).name)
    if image_id is None:
        raise NotFound(f"{label} is not an image of database {db_name!r}; add it first")
    info = engine.image(db_name, image_id)
    names = engine.people.named_in_image(db_name, image_id)
    lines = [
        WordLine(text=ln.text, box=ln.box, score=round(ln.score, 3)) for ln in words.word_lines(image_id)
    ]
    return msgspec.structs.replace(
        info,
        people=names,
        words=words.words_of([image_id]).get(image_id),
        lines=lines,
    )


def words_settings(engine: Engine, db_name: str, enabled: bool) -> WordsState:
    """Turn words on (the photos not read yet are read in the background) or off (and delete
    every text read in the database, in the same job: nothing is read again between the two)."""
    db = engine.database(db_name, create=False)
    words = words_store(db)

    def change() -> None:
        words.set_words_enabled(enabled)
        if not enabled:
            words.forget_words()

    engine.jobs.run(change, f"words of {db_name}")
    if enabled:
        engine.analyses.start(db)
    else:
        log.warning("words off for database %r: every text read in it was deleted", db_name)
    version = engine.words.version if engine.words is not None else 1
    total = db.count()
    return WordsState(
        db=db_name, enabled=enabled, read=total - db.count_pending(WORDS_ANALYSIS, version), total=total
    )
