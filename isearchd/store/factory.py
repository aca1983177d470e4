"""Which store a daemon's databases live in, from its ``[store]`` settings: the embedded store
under the data home (no URL, the default) or Qdrant (``qdrant://...``, imported only then)."""

from __future__ import annotations

from pathlib import Path

from isearchd.errors import StoreError
from isearchd.store.embedded import EmbeddedStore
from isearchd.store.interface import Store
from isearchd.store.names import DEFAULT_PREFIX


def open_store(
    url: str | None,
    home: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    host: str | None = None,
    api_key: str | None = None,
) -> Store:
    """The store at ``url`` (None or "": the embedded store under ``home``)."""
    if not url:
        return EmbeddedStore(home)
    try:
        from isearchd.store.qdrant_store import connect
    except ImportError as exc:  # the optional dependency
        raise StoreError(
            f"the store {url} needs qdrant-client: pip install 'isearchd[qdrant]' ({exc})"
        ) from exc
    return connect(url, prefix=prefix, host=host, api_key=api_key)
