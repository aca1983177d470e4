"""One conversation with a daemon: typed requests out, progress events and the typed reply in.

``Channel.call`` sends a request (a type of ``isearchd.messages``) over the transport, passes
each progress event to the caller, and returns the op's reply decoded into its reply type (the op
table says which). An error reply raises the ``isearchd.errors`` class the daemon raised. A
connection the daemon dropped before answering is opened again and the request sent once more
when the op changes nothing (``Op.retry``: the daemon was restarted since the last request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from isearchd.errors import ISearchError, ProtocolError, ServiceError, from_code
from isearchd.messages import OPS, AuthRequest, JsonObject, Progress, Request
from isearchd.protocol import decode_reply, encode, read_result, to_wire
from isearchd.transports import Connection, Transport

ProgressCallback = Callable[[Progress], None]


class _ConnectionLost(ISearchError):
    def __init__(self, got_reply_data: bool) -> None:
        super().__init__("connection lost")
        self.got_reply_data = got_reply_data


class Channel:
    """Requests to the daemon behind ``transport``, one at a time (thread-safe), on one connection
    kept open between calls. ``token``: presented first on a remote transport."""

    def __init__(self, transport: Transport, shown: str, timeout: float | None, token: str | None) -> None:
        self.transport = transport
        self.shown = shown
        self.timeout = timeout
        self.token = token
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._next_id = 1

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def call(self, request: Request, progress: ProgressCallback | None = None) -> Any:
        """The daemon's reply to ``request``, as its op's reply type."""
        with self._lock:
            reused = self._conn is not None
            if not reused:
                self._connect()
            try:
                return self._exchange(request, progress)
            except _ConnectionLost as lost:
                self.close()
                if reused and not lost.got_reply_data and OPS[request.op].retry:
                    self._connect()  # the daemon was restarted since this connection was opened
                    try:
                        return self._exchange(request, progress)
                    except _ConnectionLost:
                        self.close()
                raise ServiceError(
                    f"the connection to the ImgSearch service at {self.shown} was lost before it "
                    f"answered {request.op!r} (the daemon stopped or crashed); check `isearch service "
                    "status` and its log"
                ) from None

    def _connect(self) -> None:
        self._conn = self.transport.connect(self.timeout)
        if self.transport.remote and self.token:
            try:
                self._exchange(AuthRequest(token=self.token), None)
            except BaseException:
                self.close()
                raise

    def _exchange(self, request: Request, progress: ProgressCallback | None) -> Any:
        assert self._conn is not None
        rid = self._next_id
        self._next_id += 1
        got_data = False
        try:
            self._conn.send(encode({"id": rid, "op": request.op, **to_wire(request)}))
            while True:
                line = self._conn.readline()
                if line is None:
                    raise _ConnectionLost(got_data)
                got_data = True
                reply = decode_reply(line)
                if reply.get("id") not in (rid, None):
                    continue  # a late reply to an abandoned request
                if reply.get("event") == "progress":
                    if progress is not None:
                        progress(_progress(reply))
                    continue
                if reply.get("ok") is True:
                    return read_result(request.op, reply.get("result"))
                raise _error(reply.get("error"))
        except TimeoutError:
            self.close()
            raise ServiceError(
                f"the ImgSearch service at {self.shown} did not answer {request.op!r} within {self.timeout} s"
            ) from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise _ConnectionLost(got_data) from None


class _Error(msgspec.Struct):
    code: str = "error"
    message: str = "unknown error"


def _error(obj: object) -> ISearchError:
    """The exception an error reply names (the class the daemon raised)."""
    try:
        err = msgspec.convert(obj, _Error)
    except msgspec.ValidationError:
        return ProtocolError("the daemon sent a malformed error reply")
    return from_code(err.code, err.message)


def _progress(event: JsonObject) -> Progress:
    try:
        return msgspec.convert(event, Progress)
    except msgspec.ValidationError as e:
        raise ProtocolError(f"the daemon sent a malformed progress event ({e})") from None
