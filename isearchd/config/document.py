"""The config file as parsed TOML that knows which line each key is on.

``ConfigDocument.read`` turns a malformed file, an unknown key (with the closest known one) or a
value of the wrong type into a :class:`~isearchd.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

from isearchd.config import settings
from isearchd.config.checks import DB_NAME_RE
from isearchd.config.schema import TABLES, TOP_KEYS, WATCH_KEYS, Source, WatchFolder
from isearchd.errors import ConfigError
from isearchd.messages import JsonObject

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


class ConfigDocument:
    """A parsed config file that can say which line a key is on."""

    def __init__(self, path: Path, text: str, data: JsonObject) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.data = data
        self._check_keys()

    @classmethod
    def read(cls, path: Path) -> ConfigDocument:
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = _TOML_POS.search(msg)
            reason = _TOML_POS.sub("", msg).strip()
            if m:
                line, col = int(m.group(1)), int(m.group(2))
                src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
                raise ConfigError(
                    f"{path}:{line}:{col}: invalid TOML: {reason}" + (f"\n    {src.strip()}" if src else "")
                ) from None
            raise ConfigError(f"{path}: invalid TOML: {reason}") from None
        return cls(path, text, data)

    # where things are

    def line_of(self, table: str | None, key: str | None, index: int | None = None) -> int | None:
        """1-based line of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``), or of the header."""
        current: str | None = None
        seen: dict[str, int] = {}
        for n, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            m = _HEADER.match(line)
            if m:
                current = m.group(2).replace('"', "").replace("'", "").strip()
                seen[current] = seen.get(current, -1) + 1
                if key is None and current == table and (index is None or seen[current] == index):
                    return n
                continue
            if key is None:
                continue
            lhs = stripped.split("=", 1)[0].strip().replace('"', "").replace("'", "")
            if "=" not in stripped:
                continue
            in_table = current == table and (
                index is None or (current is not None and seen.get(current) == index)
            )
            if (in_table and lhs == key) or (current is None and table and lhs == f"{table}.{key}"):
                return n
            if current is None and table is None and lhs == key:
                return n
        if key is not None and table is not None:
            return self.line_of(table, None, index) or self.line_of(None, table)
        return None

    def where(self, table: str | None, key: str | None, index: int | None = None) -> str:
        line = self.line_of(table, key, index)
        return f"{self.path}:{line}" if line else str(self.path)

    # structure

    def _unknown(
        self, table: str | None, key: str, known: tuple[str, ...], index: int | None = None
    ) -> ConfigError:
        name = f"{table}.{key}" if table else key
        hint = difflib.get_close_matches(key, known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
        line = (
            self.line_of(table, key, index) if table else self.line_of(None, key) or self.line_of(key, None)
        )
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: unknown setting {name!r}{suggestion}")

    def _check_keys(self) -> None:
        for key, value in self.data.items():
            if key not in TOP_KEYS:
                raise self._unknown(None, key, TOP_KEYS)
            if key in TABLES:
                if not isinstance(value, dict):
                    raise ConfigError(f"{self.where(None, key)}: {key!r} must be a table ([{key}])")
                for sub in value:
                    if sub not in TABLES[key]:
                        raise self._unknown(key, sub, TABLES[key])
            if key == "watch":
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ConfigError(f"{self.where(None, key)}: 'watch' must be [[watch]] tables")
                for i, entry in enumerate(value):
                    for sub in entry:
                        if sub not in WATCH_KEYS:
                            raise self._unknown("watch", sub, WATCH_KEYS, i)

    # values

    def has(self, dotted: str) -> bool:
        table, _, key = dotted.rpartition(".")
        node = self.data.get(table, {}) if table else self.data
        return isinstance(node, dict) and key in node

    def get(self, dotted: str, typ: type) -> tuple[str | int | float | bool, Source]:
        table, _, key = dotted.rpartition(".")
        node = self.data[table] if table else self.data
        where = self.where(table or None, key)
        value = node[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {int: isinstance(value, int) and not isinstance(value, bool), float: number,
              bool: isinstance(value, bool)}.get(typ, isinstance(value, str))  # fmt: skip
        if not ok:
            kind = {int: "an integer", float: "a number", bool: "true or false"}.get(typ, "a string")
            raise ConfigError(f"{where}: {dotted} must be {kind}, got {value!r}")
        return (float(value) if typ is float else value), Source("file", where)

    def watch_folders(self) -> tuple[tuple[WatchFolder, ...], Source]:
        folders = []
        for i, entry in enumerate(self.data["watch"]):
            path = entry.get("path")
            if not isinstance(path, str) or not path.strip():
                raise ConfigError(f"{self.where('watch', 'path', i)}: [[watch]] needs a path (a folder)")
            folder = Path(path).expanduser()
            if not folder.is_absolute():
                raise ConfigError(
                    f"{self.where('watch', 'path', i)}: watch path {path!r} must be absolute or start with ~"
                )
            db = entry.get("db", settings.DEFAULT_DB)
            if not isinstance(db, str) or not DB_NAME_RE.match(db):
                raise ConfigError(
                    f"{self.where('watch', 'db', i)}: database name {db!r} must be 1-64 letters, "
                    "digits, '_', '-' or '.'"
                )
            exclude = entry.get("exclude", [])
            if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
                raise ConfigError(
                    f"{self.where('watch', 'exclude', i)}: exclude must be a list of glob strings"
                )
            folders.append(WatchFolder(path=folder, db=db, exclude=tuple(exclude)))
        line = self.line_of("watch", None, 0)
        return tuple(folders), Source("file", f"{self.path}:{line}" if line else str(self.path))
