"""Database names: which are valid, which exist under a data home, and what a missing one says.

A database is a directory ``<home>/<name>/`` holding a catalog; its name is shown to users and
used as a directory name, so it must be safe as both.
"""

from __future__ import annotations

import difflib
import unicodedata
from pathlib import Path

from isearchd.errors import InvalidRequest, NotFound
from isearchd.store.catalog import CATALOG_NAME
from isearchd.store.folders import read_folders
from isearchd.store.records import WatchedFolder

NAME_MAX_CHARS = 64
# A Qdrant store's collection of database ``name`` is ``<prefix><name>`` (``[store] prefix``).
DEFAULT_PREFIX = "isearch-"
# How many existing names the "does not exist" error lists.
NAMES_SHOWN = 10
_FORBIDDEN_NAME_CHARS = set('/\\:*?"<>|')


def validate_db_name(name: str) -> str:
    """Return ``name`` if it is usable as a database (directory) name, else raise InvalidRequest."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest("a database name cannot be empty")
    problem = None
    if len(name) > NAME_MAX_CHARS:
        problem = f"is longer than {NAME_MAX_CHARS} characters"
    elif name.startswith(".") or ".." in name:
        problem = "cannot start with '.' or contain '..'"
    elif any(c in _FORBIDDEN_NAME_CHARS for c in name):
        problem = 'cannot contain path separators or any of * ? : " < > |'
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in name):
        problem = "cannot contain control or invisible characters"
    elif name != name.strip():
        problem = "cannot start or end with whitespace"
    if problem:
        raise InvalidRequest(
            f"invalid database name {name!r}: it {problem}; use letters, digits, '-', '_' or '.'"
        )
    return name


def list_databases(home: Path) -> list[str]:
    """Names of the databases under ``home`` (directories holding a catalog), sorted."""
    try:
        entries = list(Path(home).iterdir())
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if (entry / CATALOG_NAME).is_file():
            try:
                names.append(validate_db_name(entry.name))
            except InvalidRequest:
                continue
    return sorted(names)


def missing_database(home: Path, name: str) -> NotFound:
    """The error for database ``name`` that does not exist: the closest existing name, if any.

    It names databases, never files (a user typing ``-d photso`` needs ``photos``, not the path
    of a catalog that is not there).
    """
    return missing_among(list_databases(home), name)


def missing_among(names: list[str], name: str) -> NotFound:
    """As ``missing_database``, given the names of the databases that exist."""
    if not names:
        return NotFound(
            f"database '{name}' does not exist yet: no images have been added "
            "(`isearch add PATH...` or `isearch watch FOLDER` creates it)"
        )
    close = difflib.get_close_matches(name, names, n=1)
    if not close:  # catch case slips, which difflib's ratio misses for short names
        close = [n for n in names if n.lower() == name.lower()][:1]
    guess = f"did you mean '{close[0]}'? " if close else ""
    shown = ", ".join(names[:NAMES_SHOWN]) + (", ..." if len(names) > NAMES_SHOWN else "")
    return NotFound(f"database '{name}' does not exist; {guess}existing databases: {shown}")


def watched_folders(home: Path, name: str) -> list[WatchedFolder]:
    """The folders database ``name`` watches, read without opening it; [] for a database that
    does not exist or watches nothing."""
    validate_db_name(name)
    return read_folders(Path(home) / name / CATALOG_NAME)
