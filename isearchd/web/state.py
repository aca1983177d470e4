"""What the page's routes share: the daemon, the thumbnails, the security policy, its files.

``build_app`` (``isearchd.web.api``) makes one ``Page`` and keeps it in the application's
``state``; every route reads it with ``page_of(request)`` and asks the daemon with ``ask``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from isearchd.client import Client
from isearchd.messages import Request as DaemonRequest
from isearchd.transports import Transport
from isearchd.web.guard import Policy
from isearchd.web.thumbs import Thumbnails


class Backend:
    """One ``Client`` per thread over the daemon's in-process transport (requests name their
    database themselves)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._local = threading.local()

    def request(self, request: DaemonRequest) -> Any:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(transport=self.transport)
        return client.request(request)


@dataclass(frozen=True)
class Page:
    backend: Backend
    thumbs: Thumbnails
    policy: Policy
    index: str
    login: bytes
    placeholder: bytes


def page_of(request: Request) -> Page:
    page: Page = request.app.state.page
    return page


async def ask(request: Request, daemon_request: DaemonRequest) -> Any:
    """The daemon's answer to ``daemon_request`` (asked on a worker thread, not the event loop)."""
    return await run_in_threadpool(page_of(request).backend.request, daemon_request)
