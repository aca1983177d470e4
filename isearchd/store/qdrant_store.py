"""The Qdrant store: a daemon's databases as collections of one Qdrant (a server, or
qdrant-client's local mode in a folder), shared with every other daemon pointed at it.

``QdrantStore(link, prefix=..., host=...)``: ``open`` creates a database's collection on first
use (cosine distance; on a server: vectors on disk, int8 scalar quantization kept in RAM, payload
indexes on every field a filter or lookup uses) and records its model and dimension; a database
built by another model raises ``ModelMismatch`` as the embedded store does.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from qdrant_client import models as qm

from isearchd.errors import StoreError
from isearchd.store.names import DEFAULT_PREFIX, missing_among, validate_db_name
from isearchd.store.qdrant import QdrantDatabase
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_meta import DbEntry, QdrantMeta
from isearchd.store.qdrant_payload import FLOAT_INDEXES, INTEGER_INDEXES, KEYWORD_INDEXES, SUBSTRING_INDEXES
from isearchd.store.records import WatchedFolder, model_mismatch

log = logging.getLogger(__name__)


# int8 scalar quantization: 4x less memory per vector (512 floats: 2 kB -> 512 B in RAM), the
# float32 originals on disk for rescoring. The 0.99 quantile clips outliers (Qdrant's
# recommended default). Qdrant builds the quantized index only for segments above its indexing
# threshold (~20k vectors by default): small collections are searched exactly anyway.
QUANTIZATION = qm.ScalarQuantization(
    scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
)


def this_host() -> str:
    return socket.gethostname() or "localhost"


class QdrantStore:
    def __init__(
        self,
        link: QdrantLink,
        *,
        prefix: str = DEFAULT_PREFIX,
        host: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: what the meta collection's cache of settings ages by (tests pass their own)."""
        self.link = link
        self.url: str | None = link.target.url
        self.prefix = prefix
        self.host = host or this_host()
        self.meta = QdrantMeta(link, prefix, clock=clock)

    def collection(self, name: str) -> str:
        return self.prefix + name

    def open(self, name: str, *, model_key: str | None, dim: int | None, create: bool) -> QdrantDatabase:
        validate_db_name(name)
        found = self.meta.database(name)
        if found is None:
            if not create or model_key is None or dim is None:
                raise missing_among(self.names(), name)
            self._create(name, model_key, dim)
            found = self.meta.database(name) or DbEntry(name, model_key, dim, None)
        stored_model, stored_dim = found.model, found.dim
        db = QdrantDatabase(
            self.link, self.meta, name, self.collection(name), self.host, stored_model, stored_dim
        )
        if model_key is not None and (model_key != stored_model or (dim is not None and dim != stored_dim)):
            if db.count() != 0:
                raise model_mismatch(name, stored_model, stored_dim, model_key, dim)
            if dim is not None and dim != stored_dim:
                with self.link.guard() as client:
                    client.delete_collection(self.collection(name))
            log.info("database '%s' is empty: its model %s -> %s", name, stored_model, model_key)
            self._create(name, model_key, dim if dim is not None else stored_dim, found.created)
            db = QdrantDatabase(
                self.link, self.meta, name, self.collection(name), self.host, model_key, dim or stored_dim
            )
        return db

    def _create(self, name: str, model_key: str, dim: int, created: str | None = None) -> None:
        collection = self.collection(name)
        if self.link.local:
            made = self.link.create_collection(
                collection, vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE)
            )
        else:
            made = self.link.create_collection(
                collection,
                vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE, on_disk=True),
                quantization_config=QUANTIZATION,
                on_disk_payload=True,
            )
        if made and not self.link.local:  # local mode has no payload indexes (and warns)
            substring = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, prefix=True)
            schemas: list[tuple[str, qm.PayloadSchemaType | qm.KeywordIndexParams]] = [
                *((f, qm.PayloadSchemaType.KEYWORD) for f in KEYWORD_INDEXES),
                *((f, substring) for f in SUBSTRING_INDEXES),
                *((f, qm.PayloadSchemaType.INTEGER) for f in INTEGER_INDEXES),
                *((f, qm.PayloadSchemaType.FLOAT) for f in FLOAT_INDEXES),
            ]
            for field, schema in schemas:
                with self.link.guard() as client:
                    client.create_payload_index(collection, field, field_schema=schema, wait=True)
        self.meta.put_database(name, model_key, dim, created)

    def names(self) -> list[str]:
        return self.meta.names()

    def watched_folders(self, name: str) -> list[WatchedFolder]:
        validate_db_name(name)
        return self.meta.folders(name, self.host)

    def close(self) -> None:
        self.link.close()


def connect(
    url: str, *, prefix: str = DEFAULT_PREFIX, host: str | None = None, api_key: str | None = None
) -> QdrantStore:
    """The store at ``url`` (``isearchd.store.qdrant_link.parse_url``)."""
    if not prefix or any(c in prefix for c in '/\\:*?"<>|'):
        raise StoreError(f"invalid Qdrant collection prefix {prefix!r}")
    return QdrantStore(QdrantLink.connect(url, api_key), prefix=prefix, host=host)
