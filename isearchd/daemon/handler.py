"""Requests to engine and watcher calls: what each operation does, whatever carried it.

The socket server (``isearchd.daemon.server``) reads and writes lines and checks tokens; an
in-process transport (``isearchd.daemon.inprocess``) hands lines over without a socket. Both call
``Handler.handle`` with a typed ``Request`` (``isearchd.protocol.validate_request`` built it from
the line and checked every field's shape and every file name, once) and the ``Peer`` it came from.
Replies are the types of ``isearchd.messages``; the server encodes them.

Rules that depend on the peer live here, in one place: a remote peer (TCP, or the web page's
browsers) never makes the daemon read or watch a path it names (it sends image bytes instead).
"""

from __future__ import annotations

import logging
import threading
from os.path import normpath
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from isearchd.engine.dups import DupRules
from isearchd.engine.indexer import AddItem
from isearchd.engine.photometa import normalise_type
from isearchd.engine.query import SearchQuery, Term, date_bounds
from isearchd.engine.words import HIT_WORDS
from isearchd.engine.words_ops import photo_info, words_settings
from isearchd.errors import InvalidRequest, PermissionDenied
from isearchd.messages import (
    AddReport,
    AddRequest,
    AuthRequest,
    ClearDbRequest,
    CompareRequest,
    DbInfoRequest,
    DupsReply,
    DupsRequest,
    FaceRequest,
    Hello,
    HelloRequest,
    HidePersonRequest,
    Hit,
    ImageInfo,
    ImageInfoRequest,
    ImageRef,
    ListDbsRequest,
    MergePeopleRequest,
    MigrateRequest,
    NamePersonRequest,
    PeopleRequest,
    PeopleSettingsRequest,
    PersonRequest,
    PhotoInfoRequest,
    Progress,
    QueryPart,
    RemoveFaceRequest,
    Request,
    SearchRequest,
    ShutdownRequest,
    SplitPersonRequest,
    Status,
    StatusRequest,
    UiAddress,
    UiRequest,
    UnchangedRequest,
    UnwatchRequest,
    WatchErrorsRequest,
    WatchListRequest,
    WatchRequest,
    WordsSettingsRequest,
)
from isearchd.protocol import PROTOCOL_VERSION, progress_event, to_wire
from isearchd.store import Filters, SearchHit
from isearchd.version import __version__

if TYPE_CHECKING:
    from isearchd.engine.engine import Engine
    from isearchd.watch.watcher import Watcher

log = logging.getLogger(__name__)

TCP_PATH_REFUSAL = (
    "over TCP the daemon does not read files by path; send the image bytes instead "
    "(the Python Client and `isearch` do this automatically for TCP binds)"
)
TCP_WATCH_REFUSAL = (
    "over TCP the daemon does not watch folders named by a client (they are paths on the daemon's "
    "machine); run `isearch watch` on that machine, or list the folders in its config file"
)


class Peer(Protocol):
    """Whoever sent a request: where replies and progress events go, and what it may do."""

    remote: bool  # TCP, or a browser: may not name daemon-side paths
    authed: bool

    def send(self, line: bytes) -> bool:
        """Send one protocol line (``isearchd.protocol.lines``); False once the peer has gone."""


class WebPage(Protocol):
    """The daemon's web page, as requests see it (``isearchd.web.control.WebControl``)."""

    def start(self, listen: str | None = None) -> UiAddress: ...

    def url(self) -> str | None: ...

    def stop(self) -> None: ...


class Handler:
    """Runs typed requests against the engine and the watcher.

    ``server_info``: where the server listens, for ``hello`` and ``status``; ``web``: the web page,
    when this daemon serves one.
    """

    def __init__(
        self,
        engine: Engine,
        watcher: Watcher,
        *,
        cancel: threading.Event | None = None,
        bind: str | None = None,
        max_line_bytes: int | None = None,
        web: WebPage | None = None,
    ) -> None:
        self.engine = engine
        self.watcher = watcher
        self.cancel = cancel or threading.Event()  # set: running adds stop at their next batch
        self.bind = bind
        self.max_line_bytes = max_line_bytes
        self.web = web

    def hello(self, peer: Peer, *, auth_required: bool = False) -> Hello:
        return Hello(
            protocol=PROTOCOL_VERSION,
            server="isearchd",
            version=__version__,
            model=self.engine.model.key,
            dim=self.engine.model.dim,
            authenticated=peer.authed,
            bind=self.bind,
            max_line_bytes=self.max_line_bytes,
            transport="tcp" if peer.remote else "unix",
            auth_required=auth_required,
        )

    def handle(self, peer: Peer, req: Request) -> Any:
        """The reply to ``req`` (a type of ``isearchd.messages``, a list of them, or a plain value)."""
        eng = self.engine
        match req:
            case HelloRequest():
                return self.hello(peer)
            case AuthRequest() | ShutdownRequest():
                return True
            case StatusRequest():
                return self.status()
            case AddRequest():
                return self._add(peer, req)
            case SearchRequest():
                return self._search(peer, req)
            case CompareRequest():
                a, b = _local(peer, req.a), _local(peer, req.b)
                return eng.compare(a.source, b.source, a_name=a.display, b_name=b.display)
            case DupsRequest():
                return self._dups(req)
            case UnchangedRequest():
                return eng.unchanged(req.db, [(f.label, f.size, f.mtime_ns) for f in req.files])
            case ListDbsRequest():
                return eng.list_dbs()
            case DbInfoRequest():
                return eng.db_info(req.db)
            case ImageInfoRequest():
                return self._image_info(req)
            case PhotoInfoRequest():
                return photo_info(self.engine, req.db, req.label)
            case WordsSettingsRequest():
                return words_settings(self.engine, req.db, req.enabled)
            case UiRequest():
                if self.web is None:
                    raise InvalidRequest("this daemon does not serve the web page")
                return self.web.start(req.listen)
            case ClearDbRequest():
                return eng.clear_db(req.db)
            case MigrateRequest():
                return self._migrate(peer, req)
            case WatchRequest():
                _no_remote_watch(peer)
                return self.watcher.watch(req.db, req.paths, req.exclude)
            case UnwatchRequest():
                _no_remote_watch(peer)
                return self.watcher.unwatch(req.db, req.path, purge=req.purge)
            case WatchListRequest():
                return self.watcher.folders(req.db)
            case WatchErrorsRequest():
                return self.watcher.failures(req.db, req.path)
            case (
                PeopleRequest() | PersonRequest() | NamePersonRequest() | MergePeopleRequest()
                | SplitPersonRequest() | RemoveFaceRequest() | HidePersonRequest()
                | PeopleSettingsRequest() | FaceRequest()
            ):  # fmt: skip
                return eng.people.answer(req)  # (a path here names a stored photo: nothing is read)
        raise InvalidRequest(f"unknown op {req.op!r}")  # pragma: no cover - the op table knows them all

    def status(self) -> Status:
        return Status(
            **msgspec.structs.asdict(self.engine.status()),
            watch=self.watcher.summary(),
            bind=self.bind,
            ui=self.web.url() if self.web is not None else None,
            version=__version__,
            protocol=PROTOCOL_VERSION,
        )

    def _add(self, peer: Peer, req: AddRequest) -> AddReport:
        def progress(p: Progress) -> None:
            peer.send(progress_event(req.id, to_wire(p)))

        if req.paths is not None:
            if peer.remote:
                raise PermissionDenied(TCP_PATH_REFUSAL)
            return self.engine.add_paths(
                req.db, req.paths, label_type=req.label_type, progress=progress, cancel=self.cancel
            )
        items = [
            AddItem(label=f.label, path=f.path or f.label, data=f.data, size=f.size, mtime_ns=f.mtime_ns)
            for f in req.files or ()
        ]
        return self.engine.add_files(req.db, items, progress=progress, cancel=self.cancel)

    def _migrate(self, peer: Peer, req: MigrateRequest) -> Any:
        if peer.remote:  # it names stores (and local folders) the daemon would open
            raise PermissionDenied("migrate is for local clients (the Unix socket) only")

        def progress(done: int, total: int) -> None:
            counts = Progress(done=done, total=total, added=done, skipped=0, failed=0)
            peer.send(progress_event(req.id, to_wire(counts)))

        return self.engine.migrate(
            req.db, to=req.to, source=req.source, progress=progress, cancel=self.cancel
        )

    def _search(self, peer: Peer, req: SearchRequest) -> list[Hit]:
        main = req.main
        terms = [_term(peer, main, 1.0)] if main is not None else []
        terms += [_term(peer, part, part.weight) for part in req.plus]
        terms += [_term(peer, part, -part.weight) for part in req.minus]
        after, before = date_bounds(req.after, req.before)
        filters = Filters(
            after=after,
            before=before,
            within=tuple(normpath(p) for p in req.within),
            place=req.place or None,
            types=tuple(normalise_type(t) for t in req.types),
            people=tuple(req.people),
            words=req.words,
        )
        query = SearchQuery(tuple(terms), req.num, req.similarity, filters, req.sort)
        hits = self.engine.search(req.db, query)
        found = [_hit(h) for h in hits]
        ids = [h.id for h in hits if h.id is not None]
        if req.people:
            named = self.engine.people.named_in(req.db, ids)
            found = [msgspec.structs.replace(h, people=named.get(h.id or -1, [])) for h in found]
        texts = self.engine.words_of(req.db, ids) if req.words is not None or req.with_words else None
        if texts is not None:
            found = [msgspec.structs.replace(h, words=_first(texts.get(h.id or -1))) for h in found]
        return found

    def _image_info(self, req: ImageInfoRequest) -> ImageInfo:
        info = self.engine.image(req.db, req.image_id)
        names = self.engine.people.named_in_image(req.db, req.image_id) if req.people else None
        info = info if names is None else msgspec.structs.replace(info, people=names)
        texts = self.engine.words_of(req.db, [req.image_id]) if req.words else None
        return info if texts is None else msgspec.structs.replace(info, words=texts.get(req.image_id))

    def _dups(self, req: DupsRequest) -> DupsReply:
        rules = DupRules(min_similarity=float(req.similarity))
        within = normpath(req.within) if req.within else None
        groups = self.engine.dups(req.db, rules, within)
        return DupsReply(min_similarity=rules.min_similarity, total=len(groups), groups=groups[: req.num])


def _first(text: str | None) -> str | None:
    """The start of a photo's text, as hits carry it (None: not read yet)."""
    return None if text is None else text[:HIT_WORDS]


def _local(peer: Peer, image: ImageRef) -> ImageRef:
    """``image``, unless a remote peer names a daemon-side path with it."""
    if peer.remote and image.path is not None:
        raise PermissionDenied(TCP_PATH_REFUSAL)
    return image


def _no_remote_watch(peer: Peer) -> None:
    if peer.remote:
        raise PermissionDenied(TCP_WATCH_REFUSAL)


def _term(peer: Peer, part: QueryPart, weight: float) -> Term:
    if part.image is not None:
        image = _local(peer, part.image)
        return Term(weight, image=image.source, name=image.display)
    if part.like is not None:
        return Term(weight, like=part.like)
    return Term(weight, text=part.text)


def _hit(h: SearchHit) -> Hit:
    """A store's search hit as the reply carries it (``host`` only on another machine's images,
    ``raw`` only on a RAW+JPEG pair's JPEG)."""
    return Hit(
        label=h.label,
        path=h.path,
        similarity=float(h.similarity),
        bytes=h.bytes,
        id=h.id,
        host=h.host if h.host is not None else msgspec.UNSET,
        raw=h.raw if h.raw is not None else msgspec.UNSET,
        **msgspec.structs.asdict(h.info.facts()),
    )


__all__ = ["TCP_PATH_REFUSAL", "TCP_WATCH_REFUSAL", "Handler", "Peer", "WebPage"]
