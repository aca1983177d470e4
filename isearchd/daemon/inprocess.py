"""A transport that hands request lines straight to a daemon's request handling, in-process.

``Client(transport=InProcessTransport(server))`` runs the very same client code, the same
protocol encoding and the same server-side validation, authorisation and dispatch as over a
socket, but synchronously in the caller's thread: engine and protocol behaviour can be tested
without starting a daemon process (faster, and a failure's traceback points at the code). The
server need not listen. Peers are trusted, and local (they may name daemon-side paths) unless
the transport says ``remote``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol


class LineServer(Protocol):
    """What answers request lines: the daemon's ``Server``."""

    def handle_line(self, c: Any, line: bytes) -> bool: ...


class _Peer:
    authed = True

    def __init__(self, out: deque[bytes], remote: bool) -> None:
        self._out = out
        self.remote = remote

    def send(self, line: bytes) -> bool:
        self._out.append(line.rstrip(b"\n"))
        return True


class InProcessConnection:
    def __init__(self, server: LineServer, remote: bool = False) -> None:
        self._server = server
        self._replies: deque[bytes] = deque()
        self._peer = _Peer(self._replies, remote)
        self._open = True

    def send(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if line.strip() and self._open:
                self._open = self._server.handle_line(self._peer, line)

    def readline(self) -> bytes | None:
        return self._replies.popleft() if self._replies else None

    def close(self) -> None:
        self._open = False


class InProcessTransport:
    """``remote=True`` makes its requests count as a remote peer's: they may not name daemon-side
    paths (the web page's requests come from browsers, which are no more trusted than TCP)."""

    def __init__(self, server: LineServer, *, remote: bool = False) -> None:
        self.server = server
        self.remote = remote

    def connect(self, timeout: float | None) -> InProcessConnection:
        return InProcessConnection(self.server, self.remote)
