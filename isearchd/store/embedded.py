"""The embedded store (the default): every database a folder ``<home>/<name>/`` with a SQLite
catalog and an hnswlib index (``isearchd.store.database``). One process on one machine."""

from __future__ import annotations

from pathlib import Path

from isearchd.store.database import Database, SavePolicy
from isearchd.store.names import list_databases, watched_folders
from isearchd.store.records import WatchedFolder


class EmbeddedStore:
    """Databases under a data home."""

    url: str | None = None

    def __init__(self, home: Path, save_policy: SavePolicy | None = None) -> None:
        self.home = Path(home)
        self._policy = save_policy

    def open(self, name: str, *, model_key: str | None, dim: int | None, create: bool) -> Database:
        return Database.open(
            self.home, name, model_key=model_key, dim=dim, create=create, save_policy=self._policy
        )

    def names(self) -> list[str]:
        return list_databases(self.home)

    def watched_folders(self, name: str) -> list[WatchedFolder]:
        return watched_folders(self.home, name)

    def close(self) -> None:
        """Nothing to release: each database closes its own files."""
