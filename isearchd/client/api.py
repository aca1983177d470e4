"""The ``Client`` class: the original ImgSearch API, and ours, over the protocol."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Unpack

from isearchd.client.connection import Channel, ProgressCallback
from isearchd.client.people import PeopleMethods
from isearchd.client.uploads import add_by_bytes, image_ref
from isearchd.client.words import WordsMethods
from isearchd.config import settings
from isearchd.config.home import default_bind
from isearchd.errors import InvalidRequest
from isearchd.files.scan import absolute
from isearchd.messages import (
    AddReport,
    AddRequest,
    ClearDbRequest,
    CompareRequest,
    DbInfo,
    DbInfoRequest,
    DupsReply,
    DupsRequest,
    FolderState,
    Hello,
    HelloRequest,
    Hit,
    ImageInfo,
    ImageInfoRequest,
    JsonObject,
    ListDbsRequest,
    Migrated,
    MigrateRequest,
    Request,
    ShutdownRequest,
    Status,
    StatusRequest,
    UiAddress,
    UiRequest,
    Unwatched,
    UnwatchRequest,
    WatchErrorsRequest,
    WatchFailure,
    WatchListRequest,
    WatchRequest,
)
from isearchd.protocol import BindAddress, parse_bind, to_wire
from isearchd.reports import LABEL_TYPES
from isearchd.searchquery import PathArg, SearchOptions, search_request
from isearchd.transports import SocketTransport, Transport

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


class Client(PeopleMethods, WordsMethods):
    """A connection to an ``isearchd`` daemon, bound to one database (``db_name``)."""

    def __init__(
        self,
        db_name: str = settings.DEFAULT_DB,
        bind: str | None = None,
        timeout: float | None = None,
        token: str | None = None,
        *,
        transport: Transport | None = None,
    ) -> None:
        """``bind``: the daemon's socket path or ``host:port`` (default: the data home's socket).
        ``transport``: how requests travel, when not over ``bind`` (``isearchd.transports``)."""
        self.db_name = db_name
        self.bind = str(Path(bind).expanduser()) if bind else default_bind()
        self.address: BindAddress = parse_bind(self.bind)
        self.timeout = timeout
        self._local = threading.local()  # last_add: each thread sees the report of its own add
        if transport is None:
            hint = "isearch service start" + ("" if self.bind == default_bind() else f" -B {self.bind}")
            transport = SocketTransport(self.address, shown=self.bind, start_hint=hint)
        token = token if token is not None else (os.environ.get("ISEARCH_TOKEN") or None)
        self._channel = Channel(transport, self.bind, timeout, token)

    def __repr__(self) -> str:
        return f"Client(db_name={self.db_name!r}, bind={self.bind!r})"

    @property
    def last_add(self) -> AddReport | None:
        """The report of this thread's last ``add_images`` (None before one, or when it raised)."""
        report: AddReport | None = getattr(self._local, "last_add", None)
        return report

    @property
    def token(self) -> str | None:
        """The token presented to a remote daemon when a connection opens."""
        return self._channel.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._channel.token = value

    @property
    def is_tcp(self) -> bool:
        """Whether the daemon is remote (TCP): it cannot read this side's files, so bytes are sent."""
        return self._channel.transport.remote

    def request(self, request: Request, progress: ProgressCallback | None = None) -> Any:
        """Send one request (a type of ``isearchd.messages``) and return its op's reply type; for
        adapters that translate another interface to the protocol (the web page's): the daemon
        validates it as any other."""
        return self._channel.call(request, progress)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- daemon ----------------------------------------------------------------------------------

    def hello(self) -> Hello:
        """Protocol and server versions, model key (checks that the daemon answers)."""
        reply: Hello = self.request(HelloRequest())
        return reply

    def status(self) -> Status:
        """pid, rss_bytes, model, databases loaded, uptime_s, queue (add jobs running or waiting)..."""
        reply: Status = self.request(StatusRequest())
        return reply

    def shutdown(self) -> None:
        """Ask the daemon to stop (it finishes in-flight work first)."""
        self.request(ShutdownRequest())
        self.close()

    # -- images ----------------------------------------------------------------------------------

    def add(
        self, paths: Paths, *, label_type: str = "path", progress: ProgressCallback | None = None
    ) -> AddReport:
        """Add image files and folders (recursively); returns what was added, skipped and failed.

        ``label_type`` 'path' labels each image by its absolute path, 'name' by its file name.
        Files already present unchanged are skipped; files that cannot be read or decoded are
        listed with their reason in ``failed``. ``progress`` is called with a ``Progress`` after
        each committed batch.
        """
        if label_type not in LABEL_TYPES:
            raise InvalidRequest(f"label_type must be 'path' or 'name', not {label_type!r}")
        abs_paths = [absolute(p) for p in _many(paths)]
        if self.is_tcp:
            return add_by_bytes(self.request, self.db_name, abs_paths, label_type, progress)
        report: AddReport = self.request(
            AddRequest(db=self.db_name, paths=abs_paths, label_type=label_type), progress
        )
        return report

    def add_images(
        self, paths: Paths, label_type: str = "path", progress: ProgressCallback | None = None
    ) -> int:
        """Add image files and folders (recursively). Returns how many images were added.

        The original API: ``add`` with the count as the result; the whole ``AddReport`` (skipped,
        failed with reasons) is then ``self.last_add``, per thread.
        """
        self._local.last_add = None
        report = self.add(paths, label_type=label_type, progress=progress)
        self._local.last_add = report
        return report.added

    def search_hits(
        self, query: str | None = None, num: int = 10, similarity: float = 0, **options: Unpack[SearchOptions]
    ) -> list[Hit]:
        """Like ``search`` but each hit is a ``Hit``: ``path``, ``label``, ``similarity``, what the
        photo says of itself (``taken``, ``taken_source``, ``width``, ``height``, ``place``,
        ``type``), ``bytes`` and ``id`` (``path`` is where the file was when added, useful when
        labels are file names)."""
        request = search_request(
            query, self._image, db=self.db_name, num=num, similarity=similarity, **options
        )
        hits: list[Hit] = self.request(request)
        return hits

    def search(
        self, query: str | None = None, num: int = 10, similarity: float = 0, **options: Unpack[SearchOptions]
    ) -> list[tuple[str, float]]:
        """Images most similar to ``query``: an existing image file (image search) or any text.

        Returns ``[(path, similarity%), ...]``, best first, similarity >= ``similarity``, as the
        original README documents (with ``label_type='name'`` the label differs from the path:
        ``search_hits`` returns both, and what each photo says of itself).

        Filters (the results are the exact top ``num`` of the images that pass): ``after`` and
        ``before`` (a ``datetime.date`` or ``"YYYY"``, ``"YYYY-MM"``, ``"YYYY-MM-DD"``; both
        inclusive, on the wall clock where the photo was taken), ``within`` (folders), ``place``
        (a city, region or country, any case), ``types`` (``["jpg", "heic"]``: the detected
        format). ``sort``: ``"similarity"``, or ``"oldest"``/``"newest"`` to order the top
        ``num`` by when they were taken. ``plus`` and ``minus``: more parts of the query, each a
        text or an image file, or ``(part, weight)`` with a weight in (0, 100] (default 1).
        ``like``: instead of ``query``, the path of an image already in the database (its stored
        embedding is used: nothing is decoded; it comes first, at 100.0).
        """
        return [(h.path, h.similarity) for h in self.search_hits(query, num, similarity, **options)]

    def compare_images(self, path1: str, path2: str) -> float:
        """Similarity of two image files in percent (0-100; an image with itself is 100.0)."""
        similarity: float = self.request(CompareRequest(a=self._image(path1), b=self._image(path2)))
        return similarity

    def dups(
        self, similarity: float = 90, within: str | os.PathLike[str] | None = None, num: int = 1000
    ) -> DupsReply:
        """Groups of near-duplicate images of this client's database (or of its images below the
        folder ``within``), largest first, the image to keep first in each group; at most ``num``
        groups (``total`` says how many there are). Nothing is moved or deleted."""
        folder = absolute(within) if within is not None else None
        reply: DupsReply = self.request(
            DupsRequest(db=self.db_name, similarity=similarity, within=folder, num=num)
        )
        return reply

    def _image(self, path: PathArg) -> Any:
        return image_ref(path, remote=self.is_tcp)

    # -- databases -------------------------------------------------------------------------------

    def list_dbs(self) -> list[str]:
        """Names of every database in the daemon's data home."""
        names: list[str] = self.request(ListDbsRequest())
        return names

    def db_info(self) -> DbInfo:
        """This client's database: name, base, size (images), capacity, model, dim, ..."""
        info: DbInfo = self.request(DbInfoRequest(db=self.db_name))
        return info

    def get_db_info(self) -> JsonObject:
        """The original API: ``db_info`` as a dict."""
        info: JsonObject = to_wire(self.db_info())
        return info

    def image_info(self, image_id: int) -> ImageInfo:
        """One image of this client's database by its id (``Hit.id``); ``NotFound`` for an id the
        database does not hold."""
        info: ImageInfo = self.request(ImageInfoRequest(db=self.db_name, image_id=int(image_id)))
        return info

    def ui(self, listen: str | None = None) -> UiAddress:
        """Have the daemon serve its web page (at ``listen``, ``"HOST:PORT"``; default: the
        configured address, else 127.0.0.1:8765) and say where (``login``: the page asks for the
        daemon's token, as it does beyond loopback)."""
        address: UiAddress = self.request(UiRequest(listen=listen))
        return address

    def clear_db(self) -> bool:
        """Remove every image from this client's database (irreversible). True when done."""
        return bool(self.request(ClearDbRequest(db=self.db_name)))

    def migrate(
        self, *, to: str | None = None, source: str | None = None, progress: ProgressCallback | None = None
    ) -> Migrated:
        """Copy this client's database from the daemon's embedded store to the Qdrant store at
        ``to`` (``qdrant://HOST:PORT`` or ``qdrant:///ABS/PATH``), or from the one at ``source``
        into the embedded store; the source is left intact. ``progress`` gets a ``Progress``
        (``done`` of ``total`` images) after each batch. Unix socket only."""
        migrated: Migrated = self.request(MigrateRequest(db=self.db_name, to=to, source=source), progress)
        return migrated

    # -- watched folders ---------------------------------------------------------------------------

    def watch(self, paths: Paths, exclude: Iterable[str] = ()) -> list[FolderState]:
        """Keep this client's database in sync with folders (recursively): they are registered
        (watched again after a restart), scanned now and watched for changes. ``exclude``: globs
        relative to each folder (``**/raw/**``, ``*.psd``). Returns each folder's state. Local
        daemons only (over TCP: ``PermissionDenied``)."""
        abs_paths = [absolute(p) for p in _many(paths)]
        folders: list[FolderState] = self.request(
            WatchRequest(db=self.db_name, paths=abs_paths, exclude=list(exclude))
        )
        return folders

    def unwatch(self, path: str | os.PathLike[str], purge: bool = False) -> Unwatched:
        """Stop watching a folder. Its images stay searchable unless ``purge`` removes them."""
        reply: Unwatched = self.request(UnwatchRequest(db=self.db_name, path=absolute(path), purge=purge))
        return reply

    def watch_list(self, all_dbs: bool = True) -> list[FolderState]:
        """Watched folders: ``path``, ``db``, ``state`` (scanning, watching, polling, error),
        ``mode`` (inotify or polling), ``reason``, ``images``, ``pending``, counters..."""
        folders: list[FolderState] = self.request(WatchListRequest(db=None if all_dbs else self.db_name))
        return folders

    def watch_errors(
        self, path: str | os.PathLike[str] | None = None, all_dbs: bool = True
    ) -> list[WatchFailure]:
        """Files of watched folders that could not be indexed, by folder and path; ``path``
        limits them to the files below that folder."""
        request = WatchErrorsRequest(
            db=None if all_dbs else self.db_name, path=absolute(path) if path is not None else None
        )
        failures: list[WatchFailure] = self.request(request)
        return failures


def _many(paths: Paths) -> list[str | os.PathLike[str]]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
