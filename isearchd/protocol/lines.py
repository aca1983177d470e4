"""The framing: one UTF-8 JSON object per line, the reply envelopes, and a capped line reader.

Replies to a request ``id``: zero or more progress events, then exactly one final reply::

    {"id": 7, "event": "progress", "done": 32, "total": 90, "added": 30, "skipped": 2, "failed": 0}
    {"id": 7, "ok": true, "result": ...}
    {"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}

JSON is read and written with the standard library, not msgspec: file names that are not UTF-8
travel as ``\\udcXX`` escapes (``isearchd.files.names``), which msgspec's UTF-8 codec refuses.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Mapping
from typing import Any

from isearchd.errors import ISearchError, ProtocolError
from isearchd.files.names import json_line
from isearchd.messages import JsonObject

__all__ = [
    "ADD_CHUNK_BYTES",
    "ADD_CHUNK_FILES",
    "MAX_LINE_BYTES",
    "LineReader",
    "LineTooLong",
    "b64encode",
    "decode_line",
    "decode_reply",
    "encode",
    "error_reply",
    "ok_reply",
    "progress_event",
    "request_id",
]

# Requests may carry base64 image bytes (TCP clients), so lines can be big. 64 MiB holds a batch of
# ordinary photos (the client splits larger adds into several requests) while bounding the memory
# one connection can make the daemon buffer.
MAX_LINE_BYTES = 64 * 1024 * 1024

# What a TCP client packs into one "add" request before starting another (raw bytes before base64).
ADD_CHUNK_BYTES = 24 * 1024 * 1024
ADD_CHUNK_FILES = 64


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


def encode(message: Mapping[str, object]) -> bytes:
    """One message as a protocol line (compact JSON, UTF-8, trailing newline).

    File names that are not UTF-8 travel as ``\\udcXX`` escapes (``isearchd.files.names``).
    """
    return json_line(message).encode("utf-8") + b"\n"


def ok_reply(rid: int | str | None, result: Any) -> bytes:
    """The final line of a request that succeeded (``result`` already JSON data)."""
    return encode({"id": rid, "ok": True, "result": result})


def error_reply(rid: int | str | None, err: ISearchError) -> bytes:
    """The final line of a request that failed."""
    return encode({"id": rid, "ok": False, "error": err.to_dict()})


def progress_event(rid: int | str | None, counts: Mapping[str, object]) -> bytes:
    """A progress line of a request still running."""
    return encode({"id": rid, "event": "progress", **counts})


def decode_reply(line: bytes) -> JsonObject:
    """Decode one line sent by the daemon (client side)."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the daemon sent a malformed line ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the daemon sent a line that is not a JSON object")
    return obj


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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
