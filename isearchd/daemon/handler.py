"""Requests to engine and watcher calls: what each operation does, whatever carried it.

The socket server (``isearchd.daemon.server``) reads and writes lines and checks tokens; an
in-process transport (``isearchd.daemon.inprocess``) hands lines over without a socket. Both call
``Handler.handle`` with a validated ``Request`` (``isearchd.protocol.validate_request`` checked
every field's type and every file name once) and the ``Peer`` it came from.

Rules that depend on the peer live here, in one place: a remote peer (TCP) never makes the daemon
read or watch a path it names (it sends image bytes instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from os.path import normpath
from typing import TYPE_CHECKING, Any, Protocol

from isearchd.engine.dups import DupGroup, DupRules
from isearchd.engine.indexer import AddItem
from isearchd.engine.photometa import normalise_type
from isearchd.engine.query import SearchQuery, Term, date_bounds
from isearchd.errors import InvalidRequest, PermissionDenied
from isearchd.files.names import check_name
from isearchd.protocol import (
    PROTOCOL_VERSION,
    Request,
    b64decode,
    parse_file_stats,
    parse_image_source,
    progress_event,
)
from isearchd.reports import Progress
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

    remote: bool  # TCP: may not name daemon-side paths
    authed: bool

    def send(self, message: dict[str, Any]) -> bool: ...


class Handler:
    """Runs validated requests against the engine and the watcher."""

    def __init__(
        self,
        engine: Engine,
        watcher: Watcher,
        *,
        cancel: threading.Event | None = None,
        server_info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.engine = engine
        self.watcher = watcher
        self.cancel = cancel or threading.Event()  # set: running adds stop at their next batch
        self._server_info = server_info or dict
        # serves the web page at an address and answers {"url", ...} (set by the daemon's main)
        self.start_ui: Callable[[str | None], dict[str, Any]] | None = None
        self.ui_url: Callable[[], str | None] = lambda: None

    def hello(self, peer: Peer) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL_VERSION,
            "server": "isearchd",
            "version": __version__,
            "model": self.engine.model.key,
            "dim": self.engine.model.dim,
            "authenticated": peer.authed,
            **self._server_info(),
        }

    def handle(self, peer: Peer, req: Request) -> Any:
        a = req.args
        eng = self.engine
        match req.op:
            case "hello":
                return self.hello(peer)
            case "auth" | "shutdown":
                return True
            case "status":
                info = self._server_info()
                return {
                    **eng.status(),
                    "watch": self.watcher.summary(),
                    "bind": info.get("bind"),
                    "ui": self.ui_url(),
                    "version": __version__,
                    "protocol": PROTOCOL_VERSION,
                }
            case "add":
                return self._add(peer, req)
            case "search":
                return self._search(peer, req)
            case "compare":
                sa = parse_image_source(a["a"], "compare: 'a'")
                sb = parse_image_source(a["b"], "compare: 'b'")
                if peer.remote and (sa.path is not None or sb.path is not None):
                    raise PermissionDenied(TCP_PATH_REFUSAL)
                return eng.compare(
                    _src(sa.path, sa.data), _src(sb.path, sb.data), a_name=sa.display, b_name=sb.display
                )
            case "dups":
                return self._dups(req)
            case "unchanged":
                return eng.unchanged(a["db"], parse_file_stats(a["files"]))
            case "list_dbs":
                return eng.list_dbs()
            case "db_info":
                return _jsonable(eng.db_info(a["db"]))
            case "image_info":
                return eng.image(a["db"], a["image_id"])
            case "ui":
                if self.start_ui is None:
                    raise InvalidRequest("this daemon does not serve the web page")
                return self.start_ui(a["listen"])
            case "clear_db":
                return eng.clear_db(a["db"])
            case "migrate":
                return self._migrate(peer, req)
            case "watch" | "unwatch":
                if peer.remote:
                    raise PermissionDenied(TCP_WATCH_REFUSAL)
                if req.op == "watch":
                    return self.watcher.watch(
                        a["db"],
                        _strings(a["paths"], "watch: 'paths'"),
                        _strings(a["exclude"], "watch: 'exclude'"),
                    )
                return self.watcher.unwatch(a["db"], a["path"], purge=a["purge"])
            case "watch_list":
                return self.watcher.folders(a["db"])
            case "watch_errors":
                return self.watcher.failures(a["db"], a["path"])
        raise InvalidRequest(f"unknown op {req.op!r}")  # pragma: no cover - validate_request knows OPS

    def _add(self, peer: Peer, req: Request) -> dict[str, Any]:
        a = req.args
        paths, files = a["paths"], a["files"]
        if (paths is None) == (files is None):
            raise InvalidRequest("add needs exactly one of 'paths' (daemon-side files) or 'files' (bytes)")

        def progress(p: Progress) -> None:
            peer.send(progress_event(req.id, **p.to_dict()))

        if paths is not None:
            if peer.remote:
                raise PermissionDenied(TCP_PATH_REFUSAL)
            report = self.engine.add_paths(
                a["db"], paths, label_type=a["label_type"], progress=progress, cancel=self.cancel
            )
        else:
            items = [_file_item(i, f) for i, f in enumerate(files)]
            report = self.engine.add_files(a["db"], items, progress=progress, cancel=self.cancel)
        return report.to_dict()

    def _migrate(self, peer: Peer, req: Request) -> dict[str, Any]:
        a = req.args
        if peer.remote:  # it names stores (and local folders) the daemon would open
            raise PermissionDenied("migrate is for local clients (the Unix socket) only")

        def progress(done: int, total: int) -> None:
            peer.send(progress_event(req.id, done=done, total=total, added=done, skipped=0, failed=0))

        return self.engine.migrate(
            a["db"], to=a["to"], source=a["from"], progress=progress, cancel=self.cancel
        )

    def _search(self, peer: Peer, req: Request) -> list[dict[str, Any]]:
        a = req.args
        mains = [k for k in ("text", "image", "like") if a[k] is not None]
        if len(mains) != 1:
            raise InvalidRequest("search needs exactly one of 'text', 'image' or 'like'")
        terms = [self._term(peer, {mains[0]: a[mains[0]]}, 1.0, "search")]
        for sign, field in ((1.0, "plus"), (-1.0, "minus")):
            for i, part in enumerate(a[field]):
                if not isinstance(part, dict):
                    raise InvalidRequest(
                        f"search: {field}[{i}] must be an object with 'text', 'image' or 'like'"
                    )
                weight = part.get("weight", 1.0)
                if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 100:
                    raise InvalidRequest(f"search: {field}[{i}].weight must be a number in (0, 100]")
                terms.append(self._term(peer, part, sign * float(weight), f"search: {field}[{i}]"))
        after, before = date_bounds(a["after"], a["before"])
        filters = Filters(
            after=after,
            before=before,
            within=tuple(normpath(p) for p in _strings(list(a["within"]), "search: 'within'")),
            place=a["place"] or None,
            types=tuple(normalise_type(t) for t in _strings(list(a["types"]), "search: 'types'")),
        )
        query = SearchQuery(tuple(terms), a["num"], a["similarity"], filters, a["sort"])
        return [_hit(h) for h in self.engine.search(a["db"], query)]

    def _dups(self, req: Request) -> dict[str, Any]:
        a = req.args
        if a["num"] < 1:
            raise InvalidRequest(f"dups: the number of groups must be at least 1, not {a['num']}")
        rules = DupRules(min_similarity=float(a["similarity"]))
        within = normpath(a["within"]) if a["within"] else None
        groups = self.engine.dups(a["db"], rules, within)
        return {
            "min_similarity": rules.min_similarity,
            "total": len(groups),
            "groups": [_group(g) for g in groups[: a["num"]]],
        }

    def _term(self, peer: Peer, part: dict[str, Any], weight: float, what: str) -> Term:
        kinds = [k for k in ("text", "image", "like") if part.get(k) is not None]
        if len(kinds) != 1:
            raise InvalidRequest(f"{what} needs exactly one of 'text', 'image' or 'like'")
        kind = kinds[0]
        value = part[kind]
        if kind == "image":
            src = parse_image_source(value, f"{what}: 'image'")
            if peer.remote and src.path is not None:
                raise PermissionDenied(TCP_PATH_REFUSAL)
            return Term(weight, image=_src(src.path, src.data), name=src.display)
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{what}: {kind!r} must be a non-empty string")
        if kind == "like":
            return Term(weight, like=check_name(value, f"{what}: 'like'"))
        return Term(weight, text=value)


def _hit(h: SearchHit) -> dict[str, Any]:
    where = {"host": h.host} if h.host is not None else {}  # only another machine's images
    return where | {
        "label": h.label,
        "path": h.path,
        "similarity": float(h.similarity),
        **h.info.shown(),
        "bytes": h.bytes,
        "id": h.id,
    }


def _group(g: DupGroup) -> dict[str, Any]:
    return {
        "keep": g.keep.label,
        "reason": g.reason,
        "images": [
            {
                "path": i.path,
                "label": i.label,
                "similarity": i.similarity,
                "width": i.width,
                "height": i.height,
                "bytes": i.bytes,
                "taken": i.taken,
                "id": i.id,
            }
            for i in g.images
        ],
    }


def _src(path: str | None, data: bytes | None) -> str | bytes:
    if data is not None:
        return data
    assert path is not None  # parse_image_source: exactly one of path and data
    return path


def _strings(value: list[Any], what: str) -> list[str]:
    if not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"{what} must be a list of non-empty strings")
    return list(value)


def _file_item(i: int, f: object) -> AddItem:
    what = f"add: files[{i}]"
    if not isinstance(f, dict):
        raise InvalidRequest(f"{what} must be an object with 'label' and 'data'")
    label, path = f.get("label"), f.get("path")
    size, mtime_ns = f.get("size"), f.get("mtime_ns")
    if not isinstance(label, str) or not label:
        raise InvalidRequest(f"{what}: 'label' must be a non-empty string")
    if path is not None and not isinstance(path, str):
        raise InvalidRequest(f"{what}: 'path' must be a string")
    for name, v in (("size", size), ("mtime_ns", mtime_ns)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidRequest(f"{what}: {name!r} must be an integer")
    data = b64decode(f.get("data"), what)
    return AddItem(label=label, path=path or label, data=data, size=size, mtime_ns=mtime_ns)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = str(v)
    return out
