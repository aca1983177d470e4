"""One type per reply: what each op answers, field by field, as the wire carries it.

The engine and the watcher build these; the protocol encodes them (a ``null`` field is sent as
``null``: a photo that says nothing of its date has ``"taken": null``); the Client decodes the
daemon's answer back into them. ``UNSET`` fields are left out of the JSON altogether (``host``
appears only on another machine's images).
"""

from __future__ import annotations

import msgspec

from isearchd.messages.base import Message

__all__ = [
    "BackfillProgress",
    "DbInfo",
    "DupGroup",
    "DupImage",
    "DupsReply",
    "EngineStatus",
    "FolderState",
    "Hello",
    "Hit",
    "ImageInfo",
    "Migrated",
    "PhotoFacts",
    "Status",
    "UiAddress",
    "Unwatched",
    "WatchFailure",
    "WatchSummary",
    "WordLine",
]


class PhotoFacts(Message, frozen=True, kw_only=True):
    """What a photo says of itself (None where it says nothing, or until the daemon has read it):
    ``taken`` (ISO 8601, with the UTC offset when the camera wrote one), ``taken_source``
    (``"exif"``, ``"video"``: the container's creation time, or ``"mtime"``: the file's
    modification time), ``width`` and ``height`` (as displayed: after EXIF rotation, or a video's
    display matrix), ``place`` (``"Intendente, Lisbon, Portugal"``), ``type`` (the detected format:
    ``"jpeg"``, ``"png"``...; ``"video"`` for a video). Only on a video: ``at``, the time of its
    moment in seconds, and ``duration``, its length in seconds."""

    taken: str | None = None
    taken_source: str | None = None
    width: int | None = None
    height: int | None = None
    place: str | None = None
    type: str | None = None
    at: float | msgspec.UnsetType = msgspec.UNSET
    duration: float | msgspec.UnsetType = msgspec.UNSET


class Hit(PhotoFacts, frozen=True, kw_only=True):
    """One search result: ``label`` as added (a path or a file name), ``path`` where the file was
    when added, ``similarity`` in percent (one decimal), ``bytes`` (file size), ``id`` (the image's
    id in its database); ``host`` only on images another machine indexed into a shared store;
    ``raw`` only on a JPEG/HEIC that has a camera RAW file of the same name beside it."""

    label: str
    path: str
    similarity: float
    bytes: int | None = None
    id: int | None = None
    host: str | msgspec.UnsetType = msgspec.UNSET
    # the camera RAW file of a RAW+JPEG pair shown as this JPEG/HEIC (isearchd.engine.rawpairs)
    raw: str | msgspec.UnsetType = msgspec.UNSET
    people: list[str] | msgspec.UnsetType = msgspec.UNSET  # the named people in it, when asked
    # the first HIT_WORDS characters of its text when words were asked ("": none; null: not read yet)
    words: str | msgspec.UnsetType | None = msgspec.UNSET


class ImageInfo(PhotoFacts, frozen=True, kw_only=True):
    """One image of a database by id: where it is, its file's size, time and content hash (and
    the named people in it, when asked)."""

    id: int
    label: str
    path: str
    host: str | None = None
    bytes: int | None = None
    mtime_ns: int | None = None
    hash: str | None = None
    people: list[str] | msgspec.UnsetType = msgspec.UNSET
    # ``photo_info``: the text read in it ("": none; null: not read yet) and its lines
    words: str | msgspec.UnsetType | None = msgspec.UNSET
    lines: list[WordLine] | msgspec.UnsetType = msgspec.UNSET


class WordLine(Message, frozen=True, kw_only=True):
    """A line of text read in a photo: its box (left, top, width, height in the photo's own
    pixels) and the recogniser's confidence (0-1)."""

    text: str
    box: tuple[int, int, int, int]
    score: float


class DupImage(Message, frozen=True, kw_only=True):
    """An image of a duplicate group: ``similarity`` to the kept image (that one: 100.0)."""

    label: str
    path: str
    similarity: float
    width: int | None
    height: int | None
    bytes: int
    taken: str | None
    id: int | None = None


class DupGroup(Message, frozen=True, kw_only=True):
    """Near-duplicates, the image to ``keep`` (its label) first in ``images``, and why it is kept."""

    keep: str
    reason: str
    images: list[DupImage]


class DupsReply(Message, frozen=True, kw_only=True):
    """The first groups asked for, of ``total``, largest first."""

    min_similarity: float
    total: int
    groups: list[DupGroup]


class BackfillProgress(Message, frozen=True, kw_only=True):
    """A background pass over a database: ``done`` (read or failed) of its ``total`` images, and
    ``unreadable`` ones (failed)."""

    total: int = 0
    done: int = 0
    unreadable: int = 0


class WatchSummary(Message, frozen=True, kw_only=True):
    """A watched folder in ``status``."""

    path: str
    db: str
    state: str
    mode: str
    pending: int


class EngineStatus(Message, frozen=True, kw_only=True):
    """The engine's part of ``status``: the process, the model, the open databases, the queue of
    writes, and what the background passes have read, per database: photo ``metadata``, ``looks``
    (for dups), and each other analysis by name in ``analyses``."""

    pid: int
    rss_bytes: int
    model: str
    dim: int
    home: str
    databases: list[str]
    uptime_s: float
    queue: int
    metadata: dict[str, BackfillProgress] = msgspec.field(default_factory=dict)
    looks: dict[str, BackfillProgress] = msgspec.field(default_factory=dict)
    analyses: dict[str, dict[str, BackfillProgress]] = msgspec.field(default_factory=dict)


class Status(EngineStatus, frozen=True, kw_only=True):
    """``status``: the engine's part, the watched folders, and where the daemon answers."""

    watch: list[WatchSummary] = msgspec.field(default_factory=list)
    bind: str | None = None
    ui: str | None = None
    version: str = ""
    protocol: int = 1


class Hello(Message, frozen=True, kw_only=True):
    """``hello``: protocol and server versions, the model, where the daemon listens and how this
    connection came (``transport``: "unix", "tcp"), whether it must authenticate and has."""

    protocol: int
    server: str
    version: str
    model: str
    dim: int
    authenticated: bool
    bind: str | None = None
    max_line_bytes: int | None = None
    transport: str = "unix"
    auth_required: bool = False


class DbInfo(Message, frozen=True, kw_only=True):
    """A database: where it is, how many images (``size``: files, photos and videos, a video
    once), the ``vectors`` they are (a video one per indexed frame; None from a daemon that did
    not say), the index's ``capacity`` in vectors, its files' ``disk_bytes`` (None in a server's
    store), its model, and whether the daemon has it open. A database in a Qdrant store also
    names the ``store``, its ``collection`` and this machine (``host``)."""

    name: str
    base: str
    size: int
    capacity: int
    disk_bytes: int | None
    model: str
    dim: int
    created: str | None = None
    loaded: bool = False
    vectors: int | None = None
    store: str | msgspec.UnsetType = msgspec.UNSET
    collection: str | msgspec.UnsetType = msgspec.UNSET
    host: str | msgspec.UnsetType | None = msgspec.UNSET


class FolderState(Message, frozen=True, kw_only=True):
    """A watched folder: its ``state`` (scanning, watching, polling, error, missing...) and ``mode``
    (inotify, polling), why (``reason``), its images and changes not applied yet (``pending``), the
    subfolders it cannot read (``errors``, the first few, and ``error_count``), the files that
    failed (``failed_files``, the ``last_failure`` as [path, reason]), how long its last scan took,
    and what it has done since the daemon started (``indexed``, ``unchanged``, ``moved``,
    ``removed``, ``failed``). ``source``: "catalog" (``isearch watch``) or "config"."""

    path: str
    db: str
    state: str
    mode: str
    reason: str | None = None
    images: int | None = None
    pending: int = 0
    exclude: list[str] = msgspec.field(default_factory=list)
    source: str = "catalog"
    errors: list[tuple[str, str]] = msgspec.field(default_factory=list)
    error_count: int = 0
    failed_files: int = 0
    last_failure: tuple[str, str] | None = None
    scan_seconds: float | None = None
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0


class WatchFailure(Message, frozen=True, kw_only=True):
    """A file of a watched ``folder`` that could not be indexed, and why."""

    db: str
    folder: str
    path: str
    reason: str


class Unwatched(Message, frozen=True, kw_only=True):
    """A folder no longer watched; ``removed``: images taken out of the database (``purge``)."""

    path: str
    db: str
    removed: int


class Migrated(Message, rename={"source": "from"}, frozen=True, kw_only=True):
    """A database copied between stores (``from`` and ``to`` as the user named them)."""

    db: str
    source: str
    to: str
    copied: int


class UiAddress(Message, frozen=True, kw_only=True):
    """Where the web page is served (``url``, ``listen``), and whether it asks for the token."""

    url: str
    listen: str
    login: bool
