"""The JSON-lines protocol between ``isearchd`` and its clients.

One UTF-8 JSON object per line, in both directions. A client sends requests::

    {"id": 7, "op": "search", "db": "default", "text": "a red circle", "num": 10, "similarity": 0}

and gets, for each request and in order, zero or more progress events followed by exactly one
final reply::

    {"id": 7, "event": "progress", "done": 32, "total": 90, "added": 30, "skipped": 2, "failed": 0}
    {"id": 7, "ok": true, "result": ...}
    {"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}

Image data travels as base64 text. An *image source* is ``{"path": "/abs/file.jpg"}`` (read by
the daemon: local clients only) or ``{"data": "<base64>", "name": "file.jpg"}`` (``name`` is
optional and only used in error messages).

Watched folders: ``watch`` (``paths``, ``exclude``) registers daemon-side folders in a database
and starts syncing them, ``unwatch`` (``path``, ``purge``) stops (the images stay unless
``purge``), ``watch_list`` (optional ``db``) reports each folder's state, ``watch_errors``
(optional ``db``, ``path``) lists the files that could not be indexed and why; ``watch`` and
``unwatch`` name server-side paths, so TCP clients get ``permission_denied``.

This module owns the message shapes: ``OPS`` says which fields each operation takes and their
types, ``parse_request`` turns a line into a validated ``Request`` or raises ``ProtocolError``
(not a JSON object, too long) or ``InvalidRequest`` (unknown op, missing or mistyped field).
It also parses bind addresses, which the daemon and the client share.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isearchd.errors import InvalidRequest, ISearchError, ProtocolError
from isearchd.files.names import check_name, json_line

PROTOCOL_VERSION = 1

# Requests may carry base64 image bytes (TCP clients), so lines can be big. 64 MiB holds a batch of
# ordinary photos (the client splits larger adds into several requests) while bounding the memory
# one connection can make the daemon buffer.
MAX_LINE_BYTES = 64 * 1024 * 1024

# What a TCP client packs into one "add" request before starting another (raw bytes before base64).
ADD_CHUNK_BYTES = 24 * 1024 * 1024
ADD_CHUNK_FILES = 64


_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One request field: its JSON type(s), whether it is required, and its default."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None


# Field sets per operation. "id" and "op" are common to all; "token" may ride on any request.
_DB = {"db": Field((str,), default="default")}
OPS: dict[str, dict[str, Field]] = {
    "hello": {},
    "auth": {"token": Field((str,), required=True)},
    "status": {},
    "add": {
        **_DB,
        "paths": Field((list,), default=None),
        "files": Field((list,), default=None),
        "label_type": Field((str,), default="path"),
    },
    "search": {
        **_DB,
        "text": Field((str,), default=None),
        "image": Field((dict,), default=None),
        "like": Field((str,), default=None),  # an image of the database, by label: its stored vector
        "num": Field((int,), default=10),
        "similarity": Field((int, float), default=0),
        # filters (results are the exact top num of the images that pass) and order
        "after": Field((str,), default=None),
        "before": Field((str,), default=None),
        "within": Field((list,), default=()),
        "place": Field((str,), default=None),
        "types": Field((list,), default=()),
        "sort": Field((str,), default="similarity"),
        # more parts of the query: [{"text"|"image"|"like": ..., "weight"?: number}]
        "plus": Field((list,), default=()),
        "minus": Field((list,), default=()),
    },
    # which of a remote client's files the daemon already holds unchanged (so it need not send them)
    "unchanged": {**_DB, "files": Field((list,), required=True)},
    "compare": {"a": Field((dict,), required=True), "b": Field((dict,), required=True)},
    # groups of near-duplicates (of the images below the folder ``within``): the first ``num``
    "dups": {
        **_DB,
        "similarity": Field((int, float), default=90),
        "within": Field((str,), default=None),
        "num": Field((int,), default=1000),
    },
    "list_dbs": {},
    "db_info": dict(_DB),
    # one image of a database by its id (as search hits and dups groups carry it)
    "image_info": {**_DB, "image_id": Field((int,), required=True)},
    # serve the web page (at ``listen``, "HOST:PORT"; default: the configured or 127.0.0.1:8765)
    "ui": {"listen": Field((str,), default=None)},
    "clear_db": dict(_DB),
    # copy a database between the embedded store and a Qdrant store (exactly one of the two URLs)
    "migrate": {**_DB, "to": Field((str,), default=None), "from": Field((str,), default=None)},
    "shutdown": {},
    # watched folders (daemon-side paths: refused over TCP)
    "watch": {**_DB, "paths": Field((list,), required=True), "exclude": Field((list,), default=())},
    "unwatch": {**_DB, "path": Field((str,), required=True), "purge": Field((bool,), default=False)},
    "watch_list": {"db": Field((str,), default=None)},
    # files of watched folders that could not be indexed (optionally of one db / below one folder)
    "watch_errors": {"db": Field((str,), default=None), "path": Field((str,), default=None)},
}


@dataclass(frozen=True)
class Request:
    id: int | str | None
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    token: str | None = None


def _type_name(types: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        bool: "true or false",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def parse_request(line: bytes | str) -> Request:
    """Decode and validate one request line."""
    return validate_request(decode_line(line))


def decode_line(line: bytes | str) -> object:
    """One line as JSON (``ProtocolError`` when it is not UTF-8 JSON or is over the cap)."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError(f"request line too long ({len(line)} bytes; the limit is {MAX_LINE_BYTES})")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("request is not valid UTF-8") from None
    else:
        text = line
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"request is not valid JSON ({e.msg} at column {e.colno})") from None


def request_id(obj: object) -> int | str | None:
    """The request's id when it has a usable one (so even a rejected request gets a matching reply)."""
    if isinstance(obj, dict):
        rid = obj.get("id")
        if isinstance(rid, (int, str)) and not isinstance(rid, bool):
            return rid
    return None


def validate_request(obj: object) -> Request:
    if not isinstance(obj, dict):
        raise ProtocolError("a request must be a JSON object with an 'op' field")
    rid = obj.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
        raise InvalidRequest("'id' must be an integer or a string")
    op = obj.get("op")
    if not isinstance(op, str):
        raise InvalidRequest("a request needs an 'op' string")
    spec = OPS.get(op)
    if spec is None:
        known = ", ".join(sorted(OPS))
        raise InvalidRequest(f"unknown op {op!r}; known ops: {known}")
    token = obj.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidRequest("'token' must be a string")
    args: dict[str, Any] = {}
    for name, fld in spec.items():
        value = obj.get(name, _MISSING)
        if value is _MISSING or value is None:
            if fld.required:
                raise InvalidRequest(f"{op}: missing required field {name!r}")
            args[name] = fld.default
            continue
        if (isinstance(value, bool) and bool not in fld.types) or not isinstance(value, fld.types):
            raise InvalidRequest(f"{op}: {name!r} must be {_type_name(fld.types)}")
        args[name] = value
    _check_names(op, args)
    return Request(id=rid, op=op, args=args, token=token)


# Fields that name files: (field, key inside each item or None for the value itself, whether it
# is a daemon-side path, which must be absolute: the daemon does not share the client's cwd).
_NAME_FIELDS: dict[str, tuple[tuple[str, str | None, bool], ...]] = {
    "add": (("paths", None, True), ("files", "label", False), ("files", "path", False)),
    "unchanged": (("files", "label", False),),
    "search": (("image", "path", True), ("within", None, True), ("like", None, False)),
    "compare": (("a", "path", True), ("b", "path", True)),
    "dups": (("within", None, True),),
    "watch": (("paths", None, True),),
    "unwatch": (("path", None, True),),
    "watch_errors": (("path", None, True),),
}


def _check_names(op: str, args: dict[str, Any]) -> None:
    """Names may hold any bytes a file system allows (escaped, ``isearchd.files.names``), nothing
    else; daemon-side paths are absolute. Checked here, once, for every transport."""
    for name, key, daemon_side in _NAME_FIELDS.get(op, ()):
        value = args.get(name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if key is None and isinstance(value, list) and (not isinstance(item, str) or not item):
                raise InvalidRequest(f"{op}: {name!r} must be a list of non-empty strings")
            text = item.get(key) if key is not None and isinstance(item, dict) else item
            if not isinstance(text, str):
                continue  # (an item's own shape is checked where it is parsed)
            check_name(text, f"{op}: {name!r}")
            if daemon_side and not text.startswith("/"):
                raise InvalidRequest(
                    f"{op}: paths must be absolute (the daemon does not share your cwd): {text}"
                )


# --- replies -----------------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    """One message as a protocol line (compact JSON, UTF-8, trailing newline).

    File names that are not UTF-8 travel as ``\\udcXX`` escapes (``isearchd.files.names``).
    """
    return json_line(message).encode("utf-8") + b"\n"


def ok_reply(rid: Any, result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def error_reply(rid: Any, err: ISearchError) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": err.to_dict()}


def progress_event(rid: Any, **counts: Any) -> dict[str, Any]:
    return {"id": rid, "event": "progress", **counts}


def decode_reply(line: bytes) -> dict[str, Any]:
    """Decode one line sent by the daemon (client side)."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the daemon sent a malformed line ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the daemon sent a line that is not a JSON object")
    return obj


# --- image sources -----------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidRequest(f"{what}: 'data' must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{what}: 'data' is not valid base64") from None


@dataclass(frozen=True)
class ImageSource:
    """An image named by a daemon-side path or carried as bytes."""

    path: str | None = None
    data: bytes | None = None
    name: str | None = None

    @property
    def display(self) -> str:
        return self.path or self.name or "image data"


def parse_image_source(obj: object, what: str) -> ImageSource:
    """``{"path": str}`` or ``{"data": base64, "name"?: str}``."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{what} must be an object with 'path' or 'data'")
    path, data, name = obj.get("path"), obj.get("data"), obj.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest(f"{what}: 'name' must be a string")
    if (path is None) == (data is None):
        raise InvalidRequest(f"{what} needs exactly one of 'path' or 'data'")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise InvalidRequest(f"{what}: 'path' must be a non-empty string")
        return ImageSource(path=path, name=name)
    return ImageSource(data=b64decode(data, what), name=name)


# --- line reading --------------------------------------------------------------------------------


class LineTooLong(ProtocolError):
    """A line exceeded the cap; the rest of it has been discarded and the stream is usable."""


class LineReader:
    """Reads newline-terminated lines from a socket with a size cap.

    An oversized line raises ``LineTooLong`` once its end has been read and dropped, so the
    connection stays in sync and the next line can be read normally. ``readline`` returns
    ``None`` at end of stream.
    """

    RECV_SIZE = 1 << 16

    def __init__(self, sock: socket.socket, max_line: int = MAX_LINE_BYTES) -> None:
        self._sock = sock
        self._max = max_line
        self._buf = bytearray()
        self._discarding = False
        self._discarded = 0

    def readline(self) -> bytes | None:
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if self._discarding:
                    total = self._discarded + len(line)
                    self._discarding, self._discarded = False, 0
                    raise LineTooLong(f"request line too long ({total} bytes; the limit is {self._max})")
                if len(line) > self._max:
                    raise LineTooLong(f"request line too long ({len(line)} bytes; the limit is {self._max})")
                return line
            if len(self._buf) > self._max:
                self._discarding = True
                self._discarded += len(self._buf)
                self._buf.clear()
            start = len(self._buf)
            chunk = self._sock.recv(self.RECV_SIZE)
            if not chunk:
                if self._buf and not self._discarding:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                return None
            self._buf += chunk


# --- bind addresses ------------------------------------------------------------------------------

_TCP_RE = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class BindAddress:
    """Where the daemon listens: a Unix socket path or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_tcp(self) -> bool:
        return self.port is not None

    def __str__(self) -> str:
        if self.is_tcp:
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"{host}:{self.port}"
        return str(self.path)


def parse_bind(bind: str) -> BindAddress:
    """``host:port`` (``[v6]:port`` too) is TCP; anything else is a Unix socket path (``~`` expanded)."""
    if not bind or not bind.strip():
        raise InvalidRequest("the bind address is empty; give a socket path or host:port")
    m = _TCP_RE.match(bind.strip())
    if m and "/" not in bind:
        port = int(m.group("port"))
        if not 0 < port < 65536:
            raise InvalidRequest(f"bad port in bind address {bind!r}: {port} (must be 1-65535)")
        host = m.group("v6") or m.group("host") or "127.0.0.1"
        return BindAddress(host=host, port=port)
    return BindAddress(path=str(Path(bind).expanduser().absolute()))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_file_stats(files: list[Any]) -> list[tuple[str, int, int]]:
    """The ``files`` of an ``unchanged`` request: ``[{"label", "size", "mtime_ns"}, ...]``."""
    out = []
    for i, item in enumerate(files):
        if not isinstance(item, dict):
            raise InvalidRequest(f"unchanged: files[{i}] must be an object")
        label, size, mtime_ns = item.get("label"), item.get("size"), item.get("mtime_ns")
        if not isinstance(label, str) or not label:
            raise InvalidRequest(f"unchanged: files[{i}].label must be a non-empty string")
        for name, value in (("size", size), ("mtime_ns", mtime_ns)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidRequest(f"unchanged: files[{i}].{name} must be a non-negative integer")
        out.append((label, int(size), int(mtime_ns)))  # type: ignore[arg-type]
    return out
