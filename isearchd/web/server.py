"""Serving the web page from inside the daemon: uvicorn on a thread of its own, beside the socket.

Why in the daemon and not a process of its own: the page shows pictures from the files on the
daemon's machine (a client elsewhere could not read them), the user service then serves it with
no second unit to install, and a 2 GB machine keeps one Python process instead of two. The
engine knows nothing of it: the page reaches the daemon through a ``Client`` on an in-process
transport, whose requests count as a remote peer's (they can never name a daemon-side path).

The socket is bound here, before the thread starts, so a taken port or a forbidden address is
the caller's error at once, not a line in the log later.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from isearchd.errors import InvalidRequest, PermissionDenied, ServiceError
from isearchd.messages import UiAddress
from isearchd.protocol import is_loopback
from isearchd.transports import Transport
from isearchd.web.api import Backend, build_app
from isearchd.web.guard import Policy
from isearchd.web.thumbs import Thumbnails

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        """Where a browser on this machine finds the page (a wildcard address: loopback)."""
        host = self.host
        if host in ("0.0.0.0", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6; port 0: any free one) as a ``Listen``;
    ``InvalidRequest`` otherwise."""
    raw = text.strip()
    if raw.startswith("[") and "]:" in raw:
        host, port = raw[1:].split("]:", 1)
    else:
        host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidRequest(f"the web page's address must be HOST:PORT (e.g. 127.0.0.1:8765), not {text!r}")
    return Listen(host, int(port))


class WebServer:
    """The web page on one address, until ``stop``."""

    def __init__(self, transport: Transport, home: Path, *, token: str | None, cache_mb: int) -> None:
        self.transport = transport
        self.home = home
        self.token = token
        self.cache_mb = cache_mb
        self.listen: Listen | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._thumbs: Thumbnails | None = None

    def start(self, listen: Listen) -> UiAddress:
        if not listen.loopback and not self.token:
            raise PermissionDenied(
                f"serving the web page on {listen} (beyond loopback) needs the daemon's token: set "
                "[service] token or ISEARCH_TOKEN and restart the service (the page asks for it)"
            )
        sock = _bind(listen)
        listen = Listen(listen.host, sock.getsockname()[1])  # the port chosen for port 0
        policy = Policy(login_required=not listen.loopback, token=self.token)
        self._thumbs = Thumbnails(self.home / "thumbnails", self.cache_mb * 1024 * 1024)
        app = build_app(Backend(self.transport), self._thumbs, policy)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", server_header=False,
            proxy_headers=False, loop="asyncio", timeout_graceful_shutdown=int(STOP_TIMEOUT_S),
        )  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
        thread.start()
        for _ in range(int(START_TIMEOUT_S * 20)):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not server.started:
            server.should_exit = True
            sock.close()
            raise ServiceError(f"the web page did not start on {listen} (see the daemon's log)")
        self._server, self._thread, self.listen = server, thread, listen
        log.info(
            "web page: %s (listening on %s%s)",
            listen.url,
            listen,
            ", login required" if policy.login_required else "",
        )
        return self.describe()

    def describe(self) -> UiAddress:
        assert self.listen is not None
        return UiAddress(url=self.listen.url, listen=str(self.listen), login=not self.listen.loopback)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S + 1)
        if self._thumbs is not None:
            self._thumbs.close()
        self._server = self._thread = self._thumbs = None


def _bind(listen: Listen) -> socket.socket:
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InvalidRequest(
            f"cannot serve the web page on {listen}: unknown address ({e.strerror})"
        ) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ServiceError(f"cannot serve the web page on {listen}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock
