"""Where a Qdrant store is (``qdrant://HOST:PORT``, ``qdrants://...`` for TLS, or
``qdrant:///ABS/PATH`` for qdrant-client's local mode) and the one client every database of a
daemon shares.

Local mode is a pure-Python stand-in for a server, for trials and tests: one process, exact
(brute-force) search, no payload indexes, no quantization, and its folder locked to one client.
The client is not thread-safe there, so every call goes through our lock; against a server the
client (httpx) is thread-safe and the lock is not taken. Several engines of one process (tests
standing in for several machines) share one local client by sharing one ``QdrantLink``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from isearchd.errors import ConfigError, StoreError

SCHEMES = ("qdrant", "qdrants")
DEFAULT_PORT = 6333
# Seconds a server call may take before it fails (a batch upsert of 64 vectors with wait=true
# takes milliseconds; a count over 100M points with a filter may take seconds).
TIMEOUT_S = 60


@dataclass(frozen=True)
class QdrantTarget:
    url: str  # as the user wrote it
    server: str | None  # http(s)://host:port
    path: Path | None  # local mode's folder


def parse_url(url: str) -> QdrantTarget:
    """``qdrant://HOST[:PORT]`` / ``qdrants://HOST[:PORT]`` (a server) or ``qdrant:///ABS/PATH``
    (local mode in that folder). ``ConfigError`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"store {url!r}: expected qdrant://HOST:PORT, qdrants://HOST:PORT or qdrant:///ABS/PATH"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"store {url!r}: no query or fragment is read; set [store] prefix in the config")
    if not parts.netloc:
        if parts.scheme != "qdrant" or not parts.path.startswith("/") or parts.path == "/":
            raise ConfigError(f"store {url!r}: local mode needs an absolute folder: qdrant:///ABS/PATH")
        return QdrantTarget(url, None, Path(parts.path))
    if parts.path not in ("", "/"):
        raise ConfigError(f"store {url!r}: a server URL has no path (qdrant://HOST:PORT)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"store {url!r}: {exc}") from exc
    http = "https" if parts.scheme == "qdrants" else "http"
    return QdrantTarget(url, f"{http}://{parts.hostname}:{port}", None)


class QdrantLink:
    """One client, and the lock that serialises calls into it in local mode."""

    def __init__(self, client: QdrantClient, target: QdrantTarget) -> None:
        self.client = client
        self.target = target
        self.local = target.path is not None
        self._lock: threading.Lock | None = threading.Lock() if self.local else None
        self._closed = False

    @classmethod
    def connect(cls, url: str, api_key: str | None = None) -> QdrantLink:
        target = parse_url(url)
        try:
            if target.path is not None:
                target.path.mkdir(parents=True, exist_ok=True)
                # our lock replaces the client's same-thread check (the daemon calls from many threads)
                client = QdrantClient(path=str(target.path), force_disable_check_same_thread=True)
            else:
                client = QdrantClient(
                    url=target.server, api_key=api_key, timeout=TIMEOUT_S, check_compatibility=False
                )
        except (OSError, RuntimeError, ValueError) as exc:
            # local mode: "Storage folder ... is already accessed by another instance"
            raise StoreError(f"cannot open the Qdrant store {url}: {exc}") from exc
        return cls(client, target)

    @contextlib.contextmanager
    def guard(self) -> Iterator[QdrantClient]:
        """The client, for one call (or a few that belong together). A failed or unreachable
        server is a ``StoreError`` naming the store."""
        try:
            if self._lock is None:
                yield self.client
                return
            with self._lock:
                if self._closed:
                    raise StoreError(f"the Qdrant store {self.target.url} is closed")
                yield self.client
        except UnexpectedResponse as exc:
            raise StoreError(f"the Qdrant store {self.target.url} refused a request: {exc}") from exc
        except ResponseHandlingException as exc:
            raise StoreError(f"the Qdrant store {self.target.url} cannot be reached: {exc}") from exc

    def create_collection(self, name: str, **config: Any) -> bool:
        """Create collection ``name`` unless it exists; True when this call created it. Two
        daemons creating it at once: one creates it, the other finds it (409 from a server)."""
        with self.guard() as client:
            if client.collection_exists(name):
                return False
            try:
                client.create_collection(name, **config)
            except (UnexpectedResponse, ValueError):
                if not client.collection_exists(name):
                    raise
                return False
        return True

    def close(self) -> None:
        if self._lock is None:
            self.client.close()
            return
        with self._lock:
            if not self._closed:
                self._closed = True
                self.client.close()
