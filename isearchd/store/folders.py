"""Watched folders as the embedded catalog keeps them: ``folders(path, options JSON, added_at)``.

``options`` is ``{"exclude": [globs]}`` (JSON, so that a later option needs no migration; keys
this version does not know are ignored). ``read_folders`` reads them from a catalog file without
opening the database, so the watcher can start watching before a large database is loaded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from isearchd.files.names import from_db
from isearchd.store.records import WatchedFolder, corrupt_catalog

__all__ = ["folder", "folder_options", "read_folder_rows", "read_folders"]


def folder_options(exclude: list[str]) -> str:
    """A folder's options as stored."""
    return json.dumps({"exclude": list(exclude)}, sort_keys=True)


def folder(path: str, options: str) -> WatchedFolder:
    """A folder from its path and stored options (options that cannot be read: none)."""
    try:
        decoded = json.loads(options)
    except (TypeError, ValueError):
        decoded = {}
    exclude = decoded.get("exclude", []) if isinstance(decoded, dict) else []
    return WatchedFolder(path, tuple(str(e) for e in exclude if isinstance(e, str)))


def read_folder_rows(conn: sqlite3.Connection) -> list[WatchedFolder]:
    """The folders of an open catalog, by path."""
    rows = conn.execute("SELECT path, options FROM folders ORDER BY path").fetchall()
    return [folder(from_db(p), o) for p, o in rows]


def read_folders(path: Path) -> list[WatchedFolder]:
    """The watched folders recorded in the catalog file at ``path``, read without opening the
    database (no migration, no index load); [] when the file or the table is missing.

    A catalog that exists but cannot be read raises ``StoreError``: its folders must not silently
    stop being watched."""
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'folders'"
            if conn.execute(table).fetchone() is None:
                return []
            return read_folder_rows(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise corrupt_catalog(path, exc) from exc
