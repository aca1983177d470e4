"""How a Client's request lines travel: a Unix socket, TCP, or in the same process.

The ``Client`` (``isearchd.client``) speaks the protocol over a ``Transport``, which opens a
``Connection`` that sends bytes and reads lines. ``SocketTransport`` is the real one (Unix socket
or TCP ``host:port``); ``isearchd.daemon.inprocess`` provides one that hands lines straight to a
daemon's request handler, so the very same Client code can be tested against an engine without a
subprocess.

``remote`` says whether the daemon behind the transport can read this side's files: over TCP it
cannot (and must not), so the Client sends image bytes instead of paths.
"""

from __future__ import annotations

import socket
from typing import Protocol

from isearchd.errors import ServiceError, ServiceNotRunning
from isearchd.protocol import MAX_LINE_BYTES, BindAddress, LineReader

# How long connecting may take before the daemon is reported as not answering.
CONNECT_TIMEOUT_S = 5.0


class Connection(Protocol):
    """One open conversation with a daemon."""

    def send(self, data: bytes) -> None: ...

    def readline(self) -> bytes | None:
        """The next line without its newline; None at the end of the stream."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    remote: bool

    def connect(self, timeout: float | None) -> Connection:
        """Open a connection (``ServiceNotRunning`` when nothing answers)."""
        ...


class SocketConnection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = LineReader(sock, MAX_LINE_BYTES)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def readline(self) -> bytes | None:
        return self._reader.readline()

    def close(self) -> None:
        self._sock.close()


class SocketTransport:
    """A Unix socket path or a TCP ``host:port`` (``BindAddress``)."""

    def __init__(self, address: BindAddress, *, shown: str | None = None, start_hint: str = "") -> None:
        self.address = address
        self.remote = address.is_tcp
        self.shown = shown or str(address)
        self.start_hint = start_hint or "isearch service start"

    def connect(self, timeout: float | None) -> SocketConnection:
        try:
            if self.address.is_tcp:
                sock = socket.create_connection(
                    (self.address.host, self.address.port), timeout=CONNECT_TIMEOUT_S
                )
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT_S)
                try:
                    sock.connect(str(self.address.path))
                except BaseException:
                    sock.close()
                    raise
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise ServiceNotRunning(
                f"ImgSearch service is not running at {self.shown}; start it with `{self.start_hint}`"
            ) from None
        except TimeoutError:
            raise ServiceError(
                f"the ImgSearch service at {self.shown} did not accept a connection in time"
            ) from None
        except OSError as e:
            raise ServiceNotRunning(
                f"cannot connect to the ImgSearch service at {self.shown} ({e.strerror or e}); "
                "start it with `isearch service start`"
            ) from None
        sock.settimeout(timeout)
        return SocketConnection(sock)
