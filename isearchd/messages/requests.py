"""One type per request op: its fields, their types and defaults, and the checks of their shape.

Wire form: ``{"id": 7, "op": "search", "db": "default", "text": "a red circle", ...}``. A field
that is missing or ``null`` takes its default. What the values mean (a date, a sort order, a
number of results in range) is the engine's to check, once, for every caller; what is checked
here is their shape, and that names are names a file system can hold and daemon-side paths are
absolute.
"""

from __future__ import annotations

import re
from typing import ClassVar

import msgspec

from isearchd.errors import BadField
from isearchd.files.names import check_name
from isearchd.messages.base import Absolute, ImageRef, Message, Name, NonEmpty, daemon_path

__all__ = [
    "AddRequest",
    "AuthRequest",
    "ClearDbRequest",
    "CompareRequest",
    "DbInfoRequest",
    "DupsRequest",
    "FileItem",
    "FileStat",
    "HelloRequest",
    "ImageInfoRequest",
    "ListDbsRequest",
    "MigrateRequest",
    "QueryPart",
    "Request",
    "SearchRequest",
    "ShutdownRequest",
    "StatusRequest",
    "UiRequest",
    "UnchangedRequest",
    "UnwatchRequest",
    "WatchErrorsRequest",
    "WatchListRequest",
    "WatchRequest",
]

DEFAULT_DB = "default"


class Request(Message, omit_defaults=True, frozen=True, kw_only=True):
    """Common to every request: the ``id`` its replies carry back, and a ``token`` that may ride
    on any request (TCP clients authenticate with it)."""

    op: ClassVar[str]
    id: int | str | None = None
    token: str | None = None


class HelloRequest(Request, frozen=True, kw_only=True):
    op = "hello"


class AuthRequest(Request, frozen=True, kw_only=True):
    op = "auth"
    token: str


class StatusRequest(Request, frozen=True, kw_only=True):
    op = "status"


class ShutdownRequest(Request, frozen=True, kw_only=True):
    op = "shutdown"


class ListDbsRequest(Request, frozen=True, kw_only=True):
    op = "list_dbs"


class FileItem(Message, omit_defaults=True, frozen=True, kw_only=True):
    """A file a remote client sends to ``add``: its label, where it is on the client, its bytes."""

    label: Name
    data: bytes
    path: Name | None = None
    size: int | None = None
    mtime_ns: int | None = None

    def __post_init__(self) -> None:
        check_name(self.label, "'label'")
        if self.path is not None:
            check_name(self.path, "'path'")


class AddRequest(Request, frozen=True, kw_only=True):
    """Daemon-side ``paths`` (files and folders, recursively: local clients only) or the ``files``
    a remote client sends; exactly one of the two."""

    op = "add"
    db: NonEmpty = DEFAULT_DB
    paths: list[Absolute] | None = None
    files: list[FileItem] | None = None
    label_type: str = "path"

    def __post_init__(self) -> None:
        if (self.paths is None) == (self.files is None):
            raise BadField("needs exactly one of 'paths' (daemon-side files) or 'files' (bytes)")
        for path in self.paths or ():
            daemon_path(path, "'paths'")


class FileStat(Message, frozen=True, kw_only=True):
    """A file a remote client holds: its label, size and modification time."""

    label: Name
    size: int
    mtime_ns: int

    def __post_init__(self) -> None:
        check_name(self.label, "'label'")
        if self.size < 0 or self.mtime_ns < 0:
            raise BadField("'size' and 'mtime_ns' must be non-negative")


class UnchangedRequest(Request, frozen=True, kw_only=True):
    """Which of a remote client's files the daemon already holds unchanged (so it need not send them)."""

    op = "unchanged"
    db: NonEmpty = DEFAULT_DB
    files: list[FileStat]


# A video frame's label after its NUL: its moment in seconds (``isearchd.store.videos.frame_label``).
_FRAME_AT = re.compile(r"\d+\.\d{3}")


def check_like(text: str) -> str:
    """``like``: an image of the database by label, a file's name or a video frame's (the video's
    label, NUL, the moment: how a video's further frames are stored, and what the web page's "more
    like this" sends for a video hit at such a moment); ``InvalidRequest`` otherwise."""
    name, mark, at = text.partition("\x00")
    check_name(name if mark and _FRAME_AT.fullmatch(at) else text, "'like'")
    return text


class QueryPart(Message, omit_defaults=True, frozen=True, kw_only=True):
    """One part of a query: a ``text``, an ``image``, or ``like`` (an image of the database, by
    label: its stored vector), with a ``weight`` in (0, 100]."""

    text: NonEmpty | None = None
    image: ImageRef | None = None
    like: Name | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.text, self.image, self.like)) != 1:
            raise BadField("needs exactly one of 'text', 'image' or 'like'")
        if not 0 < self.weight <= 100:
            raise BadField(f"'weight' must be a number in (0, 100], not {self.weight}")
        if self.like is not None:
            check_like(self.like)


class SearchRequest(Request, frozen=True, kw_only=True):
    """The query (exactly one of ``text``, ``image``, ``like``), more parts (``plus``, ``minus``),
    the filters (results are the exact top ``num`` of the images that pass) and the order."""

    op = "search"
    db: NonEmpty = DEFAULT_DB
    text: NonEmpty | None = None
    image: ImageRef | None = None
    like: Name | None = None
    num: int = 10
    similarity: float = 0
    after: str | None = None
    before: str | None = None
    within: list[Absolute] = msgspec.field(default_factory=list)
    place: str | None = None
    types: list[NonEmpty] = msgspec.field(default_factory=list)
    sort: str = "similarity"
    plus: list[QueryPart] = msgspec.field(default_factory=list)
    minus: list[QueryPart] = msgspec.field(default_factory=list)
    # named people who must all be in the photo; with no query: their photos, newest first
    people: list[NonEmpty] = msgspec.field(default_factory=list)
    # every word of it must occur in the photo's text; with no query: the photos holding them, best
    # text match first; hits then carry their text ("words")
    words: NonEmpty | None = None
    with_words: bool = False  # hits carry their text ("words") without filtering on it

    def __post_init__(self) -> None:
        queries = sum(v is not None for v in (self.text, self.image, self.like))
        if queries > 1 or (queries == 0 and not self.people and self.words is None):
            raise BadField("needs exactly one of 'text', 'image' or 'like' (or 'people' or 'words' alone)")
        if queries == 0 and (self.plus or self.minus):
            raise BadField("'plus' and 'minus' need a query ('text', 'image' or 'like')")
        if self.like is not None:
            check_like(self.like)
        for folder in self.within:
            daemon_path(folder, "'within'")

    @property
    def main(self) -> QueryPart | None:
        """The query as a part of weight 1 (None: the photos of ``people`` or ``words``, no query)."""
        if self.text is None and self.image is None and self.like is None:
            return None
        return QueryPart(text=self.text, image=self.image, like=self.like)


class CompareRequest(Request, frozen=True, kw_only=True):
    op = "compare"
    a: ImageRef
    b: ImageRef


class DupsRequest(Request, frozen=True, kw_only=True):
    """Groups of near-duplicates (of the images below the folder ``within``): the first ``num``."""

    op = "dups"
    db: NonEmpty = DEFAULT_DB
    similarity: float = 90
    within: Absolute | None = None
    num: int = 1000

    def __post_init__(self) -> None:
        if self.within is not None:
            daemon_path(self.within, "'within'")
        if self.num < 1:
            raise BadField(f"the number of groups must be at least 1, not {self.num}")


class DbInfoRequest(Request, frozen=True, kw_only=True):
    op = "db_info"
    db: NonEmpty = DEFAULT_DB


class ClearDbRequest(Request, frozen=True, kw_only=True):
    op = "clear_db"
    db: NonEmpty = DEFAULT_DB


class ImageInfoRequest(Request, frozen=True, kw_only=True):
    """One image of a database by its id (as search hits and dups groups carry it); ``people``:
    with the named people in it (a database that keeps people); ``words``: with its text."""

    op = "image_info"
    db: NonEmpty = DEFAULT_DB
    image_id: int
    people: bool = False
    words: bool = False  # with the text read in it (a database that keeps words)


class UiRequest(Request, frozen=True, kw_only=True):
    """Serve the web page at ``listen`` ("HOST:PORT"; default: the configured or 127.0.0.1:8765)."""

    op = "ui"
    listen: str | None = None


class MigrateRequest(Request, rename={"source": "from"}, frozen=True, kw_only=True):
    """Copy a database between the embedded store and a Qdrant store (exactly one of the two URLs)."""

    op = "migrate"
    db: NonEmpty = DEFAULT_DB
    to: str | None = None
    source: str | None = None


class WatchRequest(Request, frozen=True, kw_only=True):
    """Register daemon-side folders in a database and keep it in sync with them (local clients only)."""

    op = "watch"
    db: NonEmpty = DEFAULT_DB
    paths: list[Absolute]
    exclude: list[NonEmpty] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for path in self.paths:
            daemon_path(path, "'paths'")


class UnwatchRequest(Request, frozen=True, kw_only=True):
    op = "unwatch"
    db: NonEmpty = DEFAULT_DB
    path: Absolute
    purge: bool = False

    def __post_init__(self) -> None:
        daemon_path(self.path, "'path'")


class WatchListRequest(Request, frozen=True, kw_only=True):
    """Each watched folder's state (of one database, or of all when ``db`` is left out)."""

    op = "watch_list"
    db: NonEmpty | None = None


class WatchErrorsRequest(Request, frozen=True, kw_only=True):
    """The files of watched folders that could not be indexed (of one db / below one folder)."""

    op = "watch_errors"
    db: NonEmpty | None = None
    path: Absolute | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            daemon_path(self.path, "'path'")
