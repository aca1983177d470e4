"""What a Qdrant store knows besides the images: its databases (name, model, dimension, when
created) and the folders each machine watches for each, as points without vectors in one
collection ``<prefix>.databases`` (a database name cannot start with '.', so no database's
collection ``<prefix><name>`` can have that name).

A database's settings (the words switch) are read through a cache: this daemon's own changes are
seen at once, another daemon's within ``SETTING_TTL_S``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from qdrant_client import models as qm

from isearchd.messages import JsonObject
from isearchd.store.catalog import now_iso
from isearchd.store.folders import folder, folder_options
from isearchd.store.qdrant_link import QdrantLink
from isearchd.store.qdrant_payload import POINT_NAMESPACE, match, name_from_key, name_key
from isearchd.store.records import WatchedFolder

META_SUFFIX = ".databases"
_SCROLL = 1000
# How long a setting read from the meta collection is trusted (seconds). The analyses loop asks
# for the words switch before each chunk of photos and ``status`` for each open database: without
# the cache each ask is a round trip to Qdrant. This daemon's own ``put_setting`` is seen at once;
# another daemon's switch is seen here at most this long after (a chunk of photos may still be read
# meanwhile; ``setting(..., fresh=True)`` is for the checks that must not be late). Chosen, not
# measured: well under the web page's 10 s status refresh, and a meta read at most every 5 s.
SETTING_TTL_S = 5.0


@dataclass(frozen=True)
class DbEntry:
    """A database as the store lists it: its model, its vectors' dimension, when it was made."""

    name: str
    model: str
    dim: int
    created: str | None


class QdrantMeta:
    def __init__(self, link: QdrantLink, prefix: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.prefix = prefix
        self.collection = prefix + META_SUFFIX
        self._ready = False
        self._clock = clock
        self._settings: dict[tuple[str, str], tuple[object, float]] = {}  # -> (value, when read)
        self._settings_lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ready:
            return
        self.link.create_collection(self.collection, vectors_config={})
        self._ready = True

    # -- databases -------------------------------------------------------------------------------

    def database(self, name: str) -> DbEntry | None:
        """The entry of database ``name``, None when it does not exist."""
        self._ensure()
        with self.link.guard() as client:
            found = client.retrieve(self.collection, [_db_point(name)], with_payload=True)
        if not found:
            return None
        payload = found[0].payload or {}
        return DbEntry(name, str(payload["model"]), int(payload["dim"]), payload.get("created"))

    def put_database(self, name: str, model_key: str, dim: int, created: str | None = None) -> None:
        self._ensure()
        payload = {
            "kind": "db",
            "name": name,
            "model": model_key,
            "dim": dim,
            "created": created or now_iso(),
        }
        with self.link.guard() as client:
            client.upsert(
                self.collection, [qm.PointStruct(id=_db_point(name), vector={}, payload=payload)], wait=True
            )

    def setting(self, db: str, key: str, *, fresh: bool = False) -> object:
        """Database ``db``'s setting ``key`` (None when never set): as read at most
        ``SETTING_TTL_S`` ago, or from the store now when ``fresh``."""
        now = self._clock()
        with self._settings_lock:
            cached = self._settings.get((db, key))
        if cached is not None and not fresh and now - cached[1] < SETTING_TTL_S:
            return cached[0]
        self._ensure()
        with self.link.guard() as client:
            found = client.retrieve(self.collection, [_setting_point(db, key)], with_payload=True)
        value = (found[0].payload or {}).get("value") if found else None
        with self._settings_lock:
            newer = self._settings.get((db, key))
            if newer is None or newer[1] <= now:  # (a put_setting meanwhile stays)
                self._settings[(db, key)] = (value, now)
        return value

    def put_setting(self, db: str, key: str, value: object) -> None:
        self._ensure()
        payload = {"kind": "setting", "db": db, "key": key, "value": value}
        with self.link.guard() as client:
            client.upsert(
                self.collection,
                [qm.PointStruct(id=_setting_point(db, key), vector={}, payload=payload)],
                wait=True,
            )
        with self._settings_lock:
            self._settings[(db, key)] = (value, self._clock())

    def names(self) -> list[str]:
        self._ensure()
        return sorted(str(p["name"]) for p in self._scroll([match("kind", "db")]))

    # -- watched folders, per machine -------------------------------------------------------------

    def folders(self, db: str, host: str) -> list[WatchedFolder]:
        rows = self._scroll([match("kind", "folder"), match("db", db), match("host", name_key(host))])
        return sorted((folder(name_from_key(p["path"]), p["options"]) for p in rows), key=lambda f: f.path)

    def add_folder(self, db: str, host: str, path: str, exclude: list[str]) -> None:
        self._ensure()
        pid = _folder_point(db, host, path)
        with self.link.guard() as client:
            old = client.retrieve(self.collection, [pid], with_payload=True)
            added = (old[0].payload or {}).get("added_at") if old else None
            payload = {
                "kind": "folder",
                "db": db,
                "host": name_key(host),
                "path": name_key(path),
                "options": folder_options(exclude),
                "added_at": added or now_iso(),
            }
            client.upsert(self.collection, [qm.PointStruct(id=pid, vector={}, payload=payload)], wait=True)

    def remove_folder(self, db: str, host: str, path: str) -> bool:
        self._ensure()
        pid = _folder_point(db, host, path)
        with self.link.guard() as client:
            if not client.retrieve(self.collection, [pid]):
                return False
            client.delete(self.collection, qm.PointIdsList(points=[pid]), wait=True)
        return True

    def _scroll(self, must: list[qm.Condition]) -> list[JsonObject]:
        self._ensure()
        out: list[JsonObject] = []
        offset = None
        while True:
            with self.link.guard() as client:
                points, offset = client.scroll(
                    self.collection, qm.Filter(must=must), limit=_SCROLL, offset=offset, with_payload=True
                )
            out += [dict(p.payload or {}) for p in points]
            if offset is None:
                return out


def _db_point(name: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, "db\0" + name))


def _folder_point(db: str, host: str, path: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"folder\0{db}\0{name_key(host)}\0{name_key(path)}"))


def _setting_point(db: str, key: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"setting\0{db}\0{key}"))
