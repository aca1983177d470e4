"""A SQLite file as every catalog uses it: one writer connection (the caller serialises writes)
and a pool of reader connections, so reads never wait on a write (WAL mode); transactions that
turn SQLite's errors into the user's (a full disk says so); the ordered migrations of ``schema.py``
with ``meta.schema_version``; and the ``meta`` key/value table.

A file that is not a readable SQLite database raises ``StoreError`` and is left untouched.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import sqlite_utils

from isearchd.errors import DiskFull, StoreError
from isearchd.store.records import corrupt_catalog
from isearchd.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["PAGE_SIZE", "SqliteFile"]

log = logging.getLogger(__name__)

PAGE_SIZE = 16384


class SqliteFile:
    """One SQLite file: a writer connection and a pool of readers, transactions, migrations."""

    def __init__(self, path: Path, writer: sqlite_utils.Database) -> None:
        self.path = path
        self._writer = writer
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open (creating it when missing) and migrate the catalog at ``path``.

        A file that is not a readable SQLite database raises ``StoreError`` and is not modified.
        """
        existed = path.exists()
        try:
            conn = cls._connect(path)
        except sqlite3.Error as exc:
            raise corrupt_catalog(path, exc) from exc
        try:
            if existed:
                # Reads the header and schema: fails on a garbage or truncated file, before anything
                # (such as the switch to WAL) could write to it.
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                # A row is ~2.2 kB (a 512-d float32 vector): on the default 4 kB pages only one row
                # fits per page (4 kB per image); 16 kB pages hold 7 (~2.3 kB per image).
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            # FULL: a commit is on disk before add() returns, even across a power loss.
            conn.execute("PRAGMA synchronous=FULL")
            catalog = cls(path, sqlite_utils.Database(conn))
            catalog._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise corrupt_catalog(path, exc) from exc
        return catalog

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one add is one transaction.
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _migrate(self) -> None:
        db = self._writer
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        version = int(self._get_meta_writer("schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the catalog {self.path} has schema version {version}, newer than this isearchd "
                f"understands ({SCHEMA_VERSION}); upgrade isearchd"
            )
        for number, (name, migration) in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            with self.transaction():
                migration(db)
                self._set_meta("schema_version", str(number))
            log.info("catalog %s: applied migration %s", self.path, name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
        self._writer.conn.close()

    # -- transactions and readers ---------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction on the writer connection (BEGIN IMMEDIATE ... COMMIT)."""
        conn = self._writer.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._write_error("cannot write to", exc) from exc
        try:
            yield self._writer
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise self._write_error("cannot write to", exc) from exc
        except BaseException:
            self._rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise self._write_error("cannot commit to", exc) from exc

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR): a second
        # ROLLBACK would raise "no transaction is active" and hide the real error.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed on %s", conn)

    def _write_error(self, what: str, exc: sqlite3.Error) -> StoreError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return DiskFull(
                f"the disk holding {self.path.parent} is full: nothing more can be saved there "
                "(what was already added is safe); free some space, then run the add again"
            )
        return StoreError(f"{what} the catalog {self.path}: {exc}")

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection from the pool (WAL: readers never block the writer or each other)."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            if self._closed:
                raise StoreError(f"the catalog {self.path} is closed") from None
            conn = self._connect(self.path)
            with self._readers_lock:
                self._all_readers.append(conn)
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the catalog {self.path}: {exc}") from exc
        finally:
            if not self._closed:
                self._readers.put(conn)

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _get_meta_writer(self, key: str) -> str | None:
        # The writer's own view (sees its uncommitted transaction); caller holds the writer lock.
        row = self._writer.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._writer.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction():
            for key, value in values.items():
                self._set_meta(key, value)
