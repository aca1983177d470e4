"""The words-in-pictures ops: everything the database knows of one photo (``photo_info``, with the
text read in it), and turning the reading on or off for a database (``words_settings``: off
deletes what was read)."""

from __future__ import annotations

from isearchd.files.names import check_name
from isearchd.messages.base import Message, Name, NonEmpty
from isearchd.messages.requests import DEFAULT_DB, Request


class PhotoInfoRequest(Request, frozen=True, kw_only=True):
    """One photo of ``db`` by its label (its absolute path, or its file name in a database of name
    labels): what ``image_info`` answers, the named people in it and the text read in it."""

    op = "photo_info"
    db: NonEmpty = DEFAULT_DB
    label: Name

    def __post_init__(self) -> None:
        check_name(self.label, "'label'")


class WordsSettingsRequest(Request, frozen=True, kw_only=True):
    """Turn the reading of words on or off for ``db``; off also deletes all the text read in its
    photos (turned on again, they are read again)."""

    op = "words_settings"
    db: NonEmpty = DEFAULT_DB
    enabled: bool


class WordsState(Message, frozen=True, kw_only=True):
    """Whether words are read in ``db``'s photos, and how many of its ``total`` photos have been."""

    db: str
    enabled: bool
    read: int
    total: int
