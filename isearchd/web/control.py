"""The daemon's handle on its web page: started on request (``isearch ui``) or from the config.

Light to import: the HTTP stack (Starlette, uvicorn) is loaded the first time the page starts,
so a daemon that never serves it does not carry it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from isearchd.messages import UiAddress
from isearchd.transports import Transport

if TYPE_CHECKING:
    from isearchd.web.server import Listen, WebServer

DEFAULT_LISTEN = "127.0.0.1:8765"


class WebControl:
    def __init__(
        self, transport: Transport, home: Path, *, token: str | None, cache_mb: int, listen: str | None
    ) -> None:
        self.transport = transport
        self.home = home
        self.token = token
        self.cache_mb = cache_mb
        self.default_listen = listen or DEFAULT_LISTEN
        self._lock = threading.Lock()
        self._server: WebServer | None = None

    def start(self, listen: str | None = None) -> UiAddress:
        """Serve the page at ``listen`` (default: the configured address) and say where. Already
        served there: nothing changes; elsewhere: it moves."""
        from isearchd.web.server import WebServer, parse_listen

        with self._lock:
            current = self._server
            asked = parse_listen(listen) if listen is not None else None
            if (
                current is not None
                and current.listen is not None
                and (asked is None or _serves(current.listen, asked))
            ):
                return current.describe()
            server = WebServer(self.transport, self.home, token=self.token, cache_mb=self.cache_mb)
            described = server.start(asked or parse_listen(self.default_listen))
            if current is not None:
                current.stop()
            self._server = server
            return described

    def url(self) -> str | None:
        with self._lock:
            return self._server.describe().url if self._server is not None else None

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None


def _serves(current: Listen, asked: Listen) -> bool:
    """Whether the page served at ``current`` answers a request for ``asked`` (port 0: any port)."""
    return asked.host == current.host and asked.port in (0, current.port)
