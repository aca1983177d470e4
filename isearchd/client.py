"""The Python client: the API of the original ImgSearch README, over the JSON-lines protocol.

    from imgsearch.client import Client     # or: from isearchd import Client
    cli = Client(db_name="default", bind="~/.isearch/isearch.sock")
    cli.add_images(["./photos/"], label_type="path")     # -> images added; details in cli.last_add
    cli.add(["./photos/"])                                # -> AddReport(added, skipped, failed)
    cli.search("./query.jpg", num=5, similarity=80)      # -> [(path, similarity%), ...]
    cli.search("red apple")                               # text search
    cli.search("beach", after="2019-06", place="Lisbon", plus=[("sunset", 0.5)])   # filters, parts
    cli.search(like="./photos/beach.jpg")                 # like an image already in the database
    cli.compare_images("a.jpg", "b.jpg")                  # -> 0-100
    cli.list_dbs(); cli.get_db_info(); cli.clear_db()

Every failure raises an ``isearchd.errors`` exception (the same class the daemon raised); nothing is
swallowed into ``None``. Over a Unix socket the daemon reads files itself (paths are made
absolute here); over TCP this client reads the files and sends their bytes, since a TCP daemon
never reads paths named by a client.

A ``Client`` keeps one connection open and may be shared between threads (calls are serialised;
``last_add`` is each thread's own); use one client per thread for parallel requests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Unpack

from isearchd.config import settings
from isearchd.config.home import default_bind
from isearchd.errors import (
    InvalidRequest,
    ISearchError,
    NotFound,
    ProtocolError,
    ServiceError,
    from_code,
)
from isearchd.files.scan import absolute
from isearchd.protocol import (
    ADD_CHUNK_BYTES,
    ADD_CHUNK_FILES,
    MAX_LINE_BYTES,
    BindAddress,
    b64encode,
    decode_reply,
    encode,
    parse_bind,
)
from isearchd.reports import LABEL_TYPES, AddReport, Progress
from isearchd.searchquery import PathArg, SearchHit, SearchOptions, search_fields, search_hit
from isearchd.transports import Connection, SocketTransport, Transport

# The largest single file a TCP client sends: base64 adds a third, and the line must stay under
# MAX_LINE_BYTES with room for the JSON around it.
MAX_SEND_FILE_BYTES = (MAX_LINE_BYTES // 4) * 3 - 64 * 1024
# Files per "unchanged" request (about 150 bytes of JSON each) before a TCP add uploads anything.
UNCHANGED_CHUNK_FILES = 2000

ProgressCallback = Callable[[Progress], None]


_IDEMPOTENT_RETRY = frozenset(
    {"hello", "status", "search", "compare", "dups", "list_dbs", "db_info", "image_info", "watch_list"}
)


class Client:
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
        self.token = token if token is not None else (os.environ.get("ISEARCH_TOKEN") or None)
        self._local = threading.local()  # last_add: each thread sees the report of its own add
        if transport is None:
            hint = "isearch service start" + ("" if self.bind == default_bind() else f" -B {self.bind}")
            transport = SocketTransport(self.address, shown=self.bind, start_hint=hint)
        self._transport: Transport = transport
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._next_id = 1

    def __repr__(self) -> str:
        return f"Client(db_name={self.db_name!r}, bind={self.bind!r})"

    @property
    def last_add(self) -> AddReport | None:
        """The report of this thread's last ``add_images`` (None before one, or when it raised)."""
        report: AddReport | None = getattr(self._local, "last_add", None)
        return report

    @property
    def is_tcp(self) -> bool:
        """Whether the daemon is remote (TCP): it cannot read this side's files, so bytes are sent."""
        return self._transport.remote

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        self._conn = self._transport.connect(self.timeout)
        if self._transport.remote and self.token:
            try:
                self._exchange("auth", {"token": self.token}, None)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, op: str, args: dict[str, Any] | None = None, progress: ProgressCallback | None = None
    ) -> Any:
        with self._lock:
            reused = self._conn is not None
            if not reused:
                self._connect()
            try:
                return self._exchange(op, args or {}, progress)
            except _ConnectionLost as lost:
                self.close()
                if reused and not lost.got_reply_data and op in _IDEMPOTENT_RETRY:
                    # the daemon was restarted since this connection was opened: try once more
                    self._connect()
                    try:
                        return self._exchange(op, args or {}, progress)
                    except _ConnectionLost:
                        self.close()
                raise ServiceError(
                    f"the connection to the ImgSearch service at {self.bind} was lost before it answered "
                    f"{op!r} (the daemon stopped or crashed); check `isearch service status` and its log"
                ) from None

    def _exchange(self, op: str, args: dict[str, Any], progress: ProgressCallback | None) -> Any:
        assert self._conn is not None
        rid = self._next_id
        self._next_id += 1
        message = {"id": rid, "op": op, **args}
        got_data = False
        try:
            self._conn.send(encode(message))
            while True:
                line = self._conn.readline()
                if line is None:
                    raise _ConnectionLost(got_data)
                got_data = True
                reply = decode_reply(line)
                if reply.get("event") == "progress":
                    if progress is not None and reply.get("id") == rid:
                        progress(
                            Progress(
                                done=int(reply.get("done", 0)),
                                total=int(reply.get("total", 0)),
                                added=int(reply.get("added", 0)),
                                skipped=int(reply.get("skipped", 0)),
                                failed=int(reply.get("failed", 0)),
                            )
                        )
                    continue
                if reply.get("id") not in (rid, None):
                    continue  # a late reply to an abandoned request
                if reply.get("ok") is True:
                    return reply.get("result")
                err = reply.get("error") or {}
                if not isinstance(err, dict):
                    raise ProtocolError("the daemon sent a malformed error reply")
                raise from_code(str(err.get("code", "error")), str(err.get("message", "unknown error")))
        except TimeoutError:
            self.close()
            raise ServiceError(
                f"the ImgSearch service at {self.bind} did not answer {op!r} within {self.timeout} s"
            ) from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise _ConnectionLost(got_data) from None

    # -- daemon ----------------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Protocol and server versions, model key (checks that the daemon answers)."""
        return dict(self._call("hello"))

    def status(self) -> dict[str, Any]:
        """pid, rss_bytes, model, databases loaded, uptime_s, queue (add jobs running or waiting)..."""
        return dict(self._call("status"))

    def shutdown(self) -> None:
        """Ask the daemon to stop (it finishes in-flight work first)."""
        self._call("shutdown")
        self.close()

    # -- images ----------------------------------------------------------------------------------

    def add(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        label_type: str = "path",
        progress: ProgressCallback | None = None,
    ) -> AddReport:
        """Add image files and folders (recursively); returns what was added, skipped and failed.

        ``label_type`` 'path' labels each image by its absolute path, 'name' by its file name.
        Files already present unchanged are skipped; files that cannot be read or decoded are
        listed with their reason in ``failed``. ``progress`` is called with a ``Progress`` after
        each committed batch.
        """
        if label_type not in LABEL_TYPES:
            raise InvalidRequest(f"label_type must be 'path' or 'name', not {label_type!r}")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        abs_paths = [absolute(p) for p in paths]
        if self.is_tcp:
            return self._add_by_bytes(abs_paths, label_type, progress)
        result = self._call(
            "add", {"db": self.db_name, "paths": abs_paths, "label_type": label_type}, progress
        )
        return AddReport.from_dict(result)

    def add_images(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        label_type: str = "path",
        progress: ProgressCallback | None = None,
    ) -> int:
        """Add image files and folders (recursively). Returns how many images were added.

        The original API: ``add`` with the count as the result; the whole ``AddReport`` (skipped,
        failed with reasons) is then ``self.last_add``, per thread.
        """
        self._local.last_add = None
        report = self.add(paths, label_type=label_type, progress=progress)
        self._local.last_add = report
        return report.added

    def _add_by_bytes(
        self, paths: list[str], label_type: str, progress: ProgressCallback | None
    ) -> AddReport:
        from isearchd.files.scan import label_for, scan

        found = scan(paths)
        report = AddReport(failed=[(e.path, e.reason) for e in found.errors])
        total = len(found.files) + len(report.failed)
        chunk: list[dict[str, Any]] = []
        chunk_bytes = 0

        def send() -> None:
            nonlocal report, chunk, chunk_bytes
            base = report

            def shifted(p: Progress) -> None:
                if progress is not None:
                    progress(
                        Progress(
                            done=base.total + p.done,
                            total=total,
                            added=base.added + p.added,
                            skipped=base.skipped + p.skipped,
                            failed=len(base.failed) + p.failed,
                        )
                    )

            result = self._call("add", {"db": self.db_name, "files": chunk}, shifted)
            report = report.merged(AddReport.from_dict(result))
            chunk, chunk_bytes = [], 0

        unchanged = self._unchanged_remote(found.files, label_type)
        if unchanged:
            report = report.merged(AddReport(skipped=len(unchanged)))
        for path in found.files:
            if path in unchanged:
                continue
            try:
                with Path(path).open("rb") as fh:
                    st = os.fstat(fh.fileno())
                    if st.st_size > MAX_SEND_FILE_BYTES:
                        report = report.merged(
                            AddReport(failed=[(path, f"too large to send over TCP ({st.st_size} bytes)")])
                        )
                        continue
                    data = fh.read()
            except OSError as e:
                report = report.merged(AddReport(failed=[(path, f"cannot read file ({e.strerror or e})")]))
                continue
            if chunk and chunk_bytes + len(data) > ADD_CHUNK_BYTES:
                send()
            chunk.append(
                {
                    "label": label_for(path, label_type),
                    "path": path,
                    "data": b64encode(data),
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                }
            )
            chunk_bytes += len(data)
            if len(chunk) >= ADD_CHUNK_FILES:
                send()
        if chunk:
            send()
        if progress is not None and report.total:
            progress(Progress(report.total, total, report.added, report.skipped, len(report.failed)))
        return report

    def _unchanged_remote(self, paths: list[str], label_type: str) -> set[str]:
        """The files the daemon already holds with this size and mtime: not worth uploading."""
        from isearchd.files.scan import label_for

        stats: dict[str, dict[str, Any]] = {}
        for path in paths:
            try:
                st = Path(path).stat()
            except OSError:
                continue  # reported when the upload tries to read it
            label = label_for(path, label_type)
            stats[path] = {"label": label, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        unchanged: set[str] = set()
        items = list(stats.items())
        for start in range(0, len(items), UNCHANGED_CHUNK_FILES):
            chunk = items[start : start + UNCHANGED_CHUNK_FILES]
            known = set(self._call("unchanged", {"db": self.db_name, "files": [s for _, s in chunk]}))
            unchanged.update(path for path, s in chunk if s["label"] in known)
        return unchanged

    def _image_source(self, path: PathArg) -> dict[str, Any]:
        full = Path(absolute(path))
        if not full.is_file():
            raise NotFound(f"{os.fspath(path)}: no such file")
        if not self.is_tcp:
            return {"path": str(full)}
        try:
            with full.open("rb") as fh:
                data = fh.read(MAX_SEND_FILE_BYTES + 1)
        except OSError as e:
            raise NotFound(f"{os.fspath(path)}: cannot read file ({e.strerror or e})") from None
        if len(data) > MAX_SEND_FILE_BYTES:
            raise InvalidRequest(f"{os.fspath(path)}: too large to send over TCP")
        return {"data": b64encode(data), "name": full.name}

    def search_hits(
        self, query: str | None = None, num: int = 10, similarity: float = 0, **options: Unpack[SearchOptions]
    ) -> list[SearchHit]:
        """Like ``search`` but each hit is a ``SearchHit`` dict: ``{"path", "label", "similarity",
        "taken", "taken_source", "width", "height", "place", "type", "bytes"}`` (``path`` is where
        the file was when added, useful when labels are file names)."""
        fields = search_fields(query, self._image_source, **options)
        args = {"db": self.db_name, "num": num, "similarity": similarity, **fields}
        return [search_hit(h) for h in self._call("search", args)]

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
        hits = self.search_hits(query, num, similarity, **options)
        return [(h["path"], h["similarity"]) for h in hits]

    def compare_images(self, path1: str, path2: str) -> float:
        """Similarity of two image files in percent (0-100; an image with itself is 100.0)."""
        a, b = self._image_source(path1), self._image_source(path2)
        return float(self._call("compare", {"a": a, "b": b}))

    def dups(
        self, similarity: float = 90, within: str | os.PathLike[str] | None = None, num: int = 1000
    ) -> dict[str, Any]:
        """Groups of near-duplicate images of this client's database (or of its images below the
        folder ``within``), largest first: ``{"min_similarity", "total", "groups": [{"keep",
        "reason", "images": [{"path", "label", "similarity", "width", "height", "bytes",
        "taken"}]}]}``, the image to keep first in each group; at most ``num`` groups. Nothing is
        moved or deleted."""
        args: dict[str, Any] = {"db": self.db_name, "similarity": similarity, "num": num}
        if within is not None:
            args["within"] = absolute(within)
        return dict(self._call("dups", args))

    # -- databases -------------------------------------------------------------------------------

    def list_dbs(self) -> list[str]:
        """Names of every database in the daemon's data home."""
        return list(self._call("list_dbs"))

    def get_db_info(self) -> dict[str, Any]:
        """This client's database: name, base, size (images), capacity, model, dim, ..."""
        return dict(self._call("db_info", {"db": self.db_name}))

    def image_info(self, image_id: int) -> dict[str, Any]:
        """One image of this client's database by its id (``SearchHit["id"]``): ``{"id", "label",
        "path", "bytes", "mtime_ns", "hash", "taken", "taken_source", "width", "height", "place",
        "type"}``; ``NotFound`` for an id the database does not hold."""
        return dict(self._call("image_info", {"db": self.db_name, "image_id": int(image_id)}))

    def ui(self, listen: str | None = None) -> dict[str, Any]:
        """Have the daemon serve its web page (at ``listen``, ``"HOST:PORT"``; default: the
        configured address, else 127.0.0.1:8765) and say where: ``{"url", "listen", "login"}``
        (``login``: the page asks for the daemon's token, as it does beyond loopback)."""
        args = {} if listen is None else {"listen": listen}
        return dict(self._call("ui", args))

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """One protocol request as it is (``isearchd.protocol.OPS``), for adapters that translate
        another interface to the protocol (the web page's): the daemon validates it as any other."""
        return self._call(op, dict(args or {}))

    # -- watched folders ---------------------------------------------------------------------------

    def watch(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], exclude: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Keep this client's database in sync with folders (recursively): they are registered
        (watched again after a restart), scanned now and watched for changes. ``exclude``: globs
        relative to each folder (``**/raw/**``, ``*.psd``). Returns one state dict per folder.
        Local daemons only (over TCP: ``PermissionDenied``)."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        abs_paths = [absolute(p) for p in paths]
        return list(self._call("watch", {"db": self.db_name, "paths": abs_paths, "exclude": list(exclude)}))

    def unwatch(self, path: str | os.PathLike[str], purge: bool = False) -> dict[str, Any]:
        """Stop watching a folder. Its images stay searchable unless ``purge`` removes them.
        Returns ``{"path", "db", "removed"}``."""
        return dict(self._call("unwatch", {"db": self.db_name, "path": absolute(path), "purge": purge}))

    def watch_list(self, all_dbs: bool = True) -> list[dict[str, Any]]:
        """Watched folders: ``path``, ``db``, ``state`` (scanning, watching, polling, error),
        ``mode`` (inotify or polling), ``reason``, ``images``, ``pending``, counters..."""
        args = {} if all_dbs else {"db": self.db_name}
        return list(self._call("watch_list", args))

    def watch_errors(
        self, path: str | os.PathLike[str] | None = None, all_dbs: bool = True
    ) -> list[dict[str, str]]:
        """Files of watched folders that could not be indexed: ``[{"db", "folder", "path",
        "reason"}]``, by folder and path; ``path`` limits them to the files below that folder."""
        args: dict[str, Any] = {} if all_dbs else {"db": self.db_name}
        if path is not None:
            args["path"] = absolute(path)
        return list(self._call("watch_errors", args))

    def clear_db(self) -> bool:
        """Remove every image from this client's database (irreversible). True when done."""
        return bool(self._call("clear_db", {"db": self.db_name}))

    def migrate(
        self, *, to: str | None = None, source: str | None = None, progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Copy this client's database from the daemon's embedded store to the Qdrant store at
        ``to`` (``qdrant://HOST:PORT`` or ``qdrant:///ABS/PATH``), or from the one at ``source``
        into the embedded store; the source is left intact. ``progress`` gets a ``Progress``
        (``done`` of ``total`` images) after each batch. Returns ``{"db", "from", "to", "copied"}``.
        Unix socket only."""
        args = {"db": self.db_name, "to": to, "from": source}
        return dict(self._call("migrate", {k: v for k, v in args.items() if v is not None}, progress))


class _ConnectionLost(ISearchError):
    def __init__(self, got_reply_data: bool) -> None:
        super().__init__("connection lost")
        self.got_reply_data = got_reply_data
