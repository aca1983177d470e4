"""The effective configuration: defaults < user config file < environment < command line.

The user config is a TOML file (``settings.user_config_path()``: ``$ISEARCH_CONFIG``, else
``<platformdirs user config dir>/isearch.toml``; or an explicit ``--config PATH``). Its
commented template is ``config/isearch.toml`` (shipped in the package as
``isearchd/defaults/isearch.toml`` for ``isearch config init``). Layout::

    home = "~/.isearch"
    [service]   bind, token, log_level, log_file
    [model]     name, device, threads, batch_size, precision
    [ui]        listen, cache_mb
    [store]     url, prefix, host     (Qdrant; the API key only from $ISEARCH_QDRANT_API_KEY)
    [[watch]]   path, db, exclude          (repeatable)

Every resolved value remembers where it came from (a :class:`Source`), so ``isearch config
show`` can say why a setting has the value it has. A malformed file, an unknown key or a value
of the wrong type raises :class:`~isearchd.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import platformdirs

from isearchd.config import settings
from isearchd.errors import ConfigError

SourceKind = Literal["default", "file", "env", "cli"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PRECISIONS = ("fp32", "int8")
MAX_BATCH_SIZE = 1024
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_DB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_TEMPLATE = "isearch.toml"


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from."""

    kind: SourceKind
    detail: str = ""  # "path:line" for a file, the variable for env, the option for cli

    def __str__(self) -> str:
        if self.kind == "default":
            return f"default ({self.detail})" if self.detail else "default"
        if self.kind == "file":
            return f"config file {self.detail}"
        if self.kind == "env":
            return f"environment {self.detail}"
        return f"command line {self.detail}".rstrip()


@dataclass(frozen=True)
class WatchFolder:
    """One ``[[watch]]`` table: keep database ``db`` in sync with folder ``path``."""

    path: Path
    db: str = settings.DEFAULT_DB
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    bind: str  # a Unix socket path, or "host:port" for TCP
    token: str | None
    log_level: str  # one of LOG_LEVELS
    log_file: Path | None  # None: standard error (the journal under systemd)


@dataclass(frozen=True)
class ModelSettings:
    name: str  # a registry key or a checkpoint path
    device: str
    threads: int  # 0: one per physical core
    batch_size: int
    precision: str  # one of PRECISIONS


@dataclass(frozen=True)
class UiSettings:
    listen: str | None  # "HOST:PORT" the daemon serves the web page at from its start; None: on request
    cache_mb: int  # the thumbnail cache's bound on disk


@dataclass(frozen=True)
class StoreSettings:
    url: str | None  # None: the embedded store under home; "qdrant://HOST:PORT" or "qdrant:///ABS/PATH"
    prefix: str  # Qdrant collection of database NAME: <prefix>NAME
    host: str | None  # the name this machine's images carry in a shared store; None: the host name


# The Qdrant API key is read from the environment only (never the config file or command line).
QDRANT_API_KEY_ENV = "ISEARCH_QDRANT_API_KEY"
STORE_SCHEMES = ("qdrant://", "qdrants://")


@dataclass(frozen=True)
class Config:
    home: Path
    service: ServiceSettings
    model: ModelSettings
    watch: tuple[WatchFolder, ...]
    file: Path | None  # the config file that was read; None when there was none
    ui: UiSettings = UiSettings(listen=None, cache_mb=512)
    store: StoreSettings = StoreSettings(url=None, prefix="isearch-", host=None)
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, hash=False)

    def source(self, key: str) -> Source:
        """The source of a dotted setting name (``"model.name"``, ``"home"``, ``"watch"``)."""
        return self.sources.get(_ALIASES.get(key, key), Source("default"))


# Scalar settings: dotted name -> (type, environment variable, default). "" defaults are
# resolved against the final home (bind, log_file) or mean "unset" (token).
_SCALARS: dict[str, tuple[type, str, str | int]] = {
    "home": (str, "ISEARCH_HOME", "~/.isearch"),
    "service.bind": (str, "ISEARCH_BIND", ""),
    "service.token": (str, "ISEARCH_TOKEN", ""),
    "service.log_level": (str, "ISEARCH_LOG_LEVEL", "info"),
    "service.log_file": (str, "ISEARCH_LOG_FILE", ""),
    "model.name": (str, "ISEARCH_MODEL", settings.DEFAULT_MODEL),
    "model.device": (str, "ISEARCH_DEVICE", "cpu"),
    "model.threads": (int, "ISEARCH_THREADS", 0),
    "model.batch_size": (int, "ISEARCH_BATCH_SIZE", 32),
    "model.precision": (str, "ISEARCH_PRECISION", "fp32"),
    "ui.listen": (str, "ISEARCH_UI_LISTEN", ""),
    "ui.cache_mb": (int, "ISEARCH_UI_CACHE_MB", 512),
    "store.url": (str, "ISEARCH_STORE", ""),
    "store.prefix": (str, "ISEARCH_STORE_PREFIX", "isearch-"),
    "store.host": (str, "ISEARCH_STORE_HOST", ""),
}
ENV_VARS: Mapping[str, str] = MappingProxyType({k: v[1] for k, v in _SCALARS.items()})

# Short names accepted in ``overrides`` (the daemon's and CLI's option names).
_ALIASES = {
    "bind": "service.bind",
    "token": "service.token",
    "log_level": "service.log_level",
    "log_file": "service.log_file",
    "model": "model.name",
    "device": "model.device",
    "threads": "model.threads",
    "batch_size": "model.batch_size",
    "precision": "model.precision",
    "store": "store.url",
}
_TABLES = {
    "service": ("bind", "token", "log_level", "log_file"),
    "model": ("name", "device", "threads", "batch_size", "precision"),
    "ui": ("listen", "cache_mb"),
    "store": ("url", "prefix", "host"),
}
_WATCH_KEYS = ("path", "db", "exclude")
_TOP_KEYS = ("home", "service", "model", "ui", "store", "watch")


def default_config_text() -> str:
    """The commented default configuration (``config/isearch.toml``, shipped as package data)."""
    return resources.files("isearchd").joinpath("defaults", DEFAULT_TEMPLATE).read_text(encoding="utf-8")


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$ISEARCH_CONFIG``, else the platformdirs user config file, read from ``environ``."""
    if environ is None:
        return settings.user_config_path()
    env = environ.get("ISEARCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(settings.APP_NAME)) / "isearch.toml"


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration.

    ``path``: an explicit config file (must exist); None reads the user config file when it
    exists. ``overrides``: command-line values by dotted name (``"service.bind"``) or short
    name (``"bind"``, ``"model"``, ``"log_level"``, ...); None values are ignored, so CLI
    options can be passed straight through. ``environ`` defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    file: Path | None
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist (create it with `isearch config init`)")
    else:
        candidate = user_config_path(environ)
        file = candidate if candidate.is_file() else None
    doc: _Document | None = _Document.read(file) if file is not None else None

    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key, (typ, var, default) in _SCALARS.items():
        values[key], sources[key] = default, Source("default")
        if doc is not None and doc.has(key):
            values[key], sources[key] = doc.get(key, typ)
        raw = env.get(var)
        if raw:
            values[key], sources[key] = _parse_env(var, raw, typ), Source("env", var)
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        key = _ALIASES.get(name, name)
        if key not in _SCALARS:
            raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(_SCALARS))}")
        source = Source("cli", "--" + key.rsplit(".", 1)[-1].replace("_", "-"))
        values[key], sources[key] = _coerce(value, _SCALARS[key][0], str(source)), source

    home = Path(str(values["home"])).expanduser()
    sources["watch"] = Source("default")
    watch: tuple[WatchFolder, ...] = ()
    if doc is not None and doc.has("watch"):
        watch, sources["watch"] = doc.watch_folders()
    config = Config(
        home=home,
        service=ServiceSettings(
            bind=_resolve_bind(values["service.bind"], home, sources),
            token=values["service.token"] or None,
            log_level=_choice(values["service.log_level"], LOG_LEVELS, sources["service.log_level"]),
            log_file=_resolve_log_file(values["service.log_file"], home, sources),
        ),
        model=ModelSettings(
            name=_non_empty(values["model.name"], sources["model.name"]),
            device=_device(values["model.device"], sources["model.device"]),
            threads=_int_range(values["model.threads"], 0, 1024, sources["model.threads"]),
            batch_size=_int_range(values["model.batch_size"], 1, MAX_BATCH_SIZE, sources["model.batch_size"]),
            precision=_choice(values["model.precision"], PRECISIONS, sources["model.precision"]),
        ),
        ui=UiSettings(
            listen=_listen(values["ui.listen"], sources["ui.listen"]),
            cache_mb=_int_range(values["ui.cache_mb"], 16, 1 << 20, sources["ui.cache_mb"]),
        ),
        store=StoreSettings(
            url=_store_url(values["store.url"], sources["store.url"]),
            prefix=_non_empty(values["store.prefix"], sources["store.prefix"]),
            host=values["store.host"] or None,
        ),
        watch=watch,
        file=file,
        sources=MappingProxyType(sources),
    )
    return config


def describe(config: Config) -> list[tuple[str, str, Source]]:
    """(setting, value as shown, source) rows for ``isearch config show``. The token is masked."""
    rows: list[tuple[str, str, Source]] = [
        ("home", str(config.home), config.source("home")),
        ("service.bind", config.service.bind, config.source("service.bind")),
        (
            "service.token",
            "(set, hidden)" if config.service.token else "(none)",
            config.source("service.token"),
        ),
        ("service.log_level", config.service.log_level, config.source("service.log_level")),
        (
            "service.log_file",
            str(config.service.log_file) if config.service.log_file else "- (stderr)",
            config.source("service.log_file"),
        ),
        ("model.name", config.model.name, config.source("model.name")),
        ("model.device", config.model.device, config.source("model.device")),
        (
            "model.threads",
            str(config.model.threads) + (" (physical cores)" if config.model.threads == 0 else ""),
            config.source("model.threads"),
        ),
        ("model.batch_size", str(config.model.batch_size), config.source("model.batch_size")),
        ("model.precision", config.model.precision, config.source("model.precision")),
        ("ui.listen", config.ui.listen or "(on request: isearch ui)", config.source("ui.listen")),
        ("ui.cache_mb", str(config.ui.cache_mb), config.source("ui.cache_mb")),
    ]
    rows += [
        (
            "store.url",
            config.store.url or "(embedded: SQLite + hnswlib under home)",
            config.source("store.url"),
        ),
        ("store.prefix", config.store.prefix, config.source("store.prefix")),
        ("store.host", config.store.host or "(this machine's host name)", config.source("store.host")),
    ]
    if not config.watch:
        rows.append(("watch", "(none)", config.source("watch")))
    for i, folder in enumerate(config.watch):
        excl = ", ".join(folder.exclude) if folder.exclude else "-"
        rows.append(
            (f"watch[{i}]", f"{folder.path} -> db {folder.db} (exclude: {excl})", config.source("watch"))
        )
    return rows


# -- value checks ---------------------------------------------------------------------------


def _parse_env(var: str, raw: str, typ: type) -> str | int:
    return _coerce(raw, typ, f"environment variable {var}")


def _coerce(value: Any, typ: type, where: str) -> str | int:
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], source: Source) -> str:
    norm = str(value).strip().lower()
    if norm not in choices:
        raise ConfigError(f"{source}: {value!r} is not one of {', '.join(choices)}")
    return norm


def _device(value: Any, source: Source) -> str:
    norm = str(value).strip().lower()
    if not _DEVICE_RE.match(norm):
        raise ConfigError(f"{source}: device {value!r} is not one of cpu, cuda, cuda:N, mps")
    return norm


def _int_range(value: Any, low: int, high: int, source: Source) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{source}: {value!r} is not an integer from {low} to {high}")
    return value


def _listen(value: Any, source: Source) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"ui.listen must be HOST:PORT (e.g. 127.0.0.1:8765), not {text!r} ({source})")
    return text


def _store_url(value: Any, source: Source) -> str | None:
    text = str(value).strip()
    if text and not text.startswith(STORE_SCHEMES):
        raise ConfigError(
            f"{source}: store {text!r} is not a Qdrant URL: use qdrant://HOST:PORT, qdrants://HOST:PORT "
            "or qdrant:///ABS/PATH (leave it unset for the embedded store)"
        )
    return text or None


def _non_empty(value: Any, source: Source) -> str:
    if not str(value).strip():
        raise ConfigError(f"{source}: the model name is empty")
    return str(value).strip()


def _resolve_bind(value: Any, home: Path, sources: dict[str, Source]) -> str:
    bind = str(value).strip()
    if not bind:
        sources["service.bind"] = Source("default", "socket in home")
        return str(home / settings.SOCKET_NAME)
    host, sep, port = bind.rpartition(":")
    if sep and port.isdigit() and "/" not in bind:
        if not host or not 0 < int(port) < 65536:
            raise ConfigError(
                f"{sources['service.bind']}: TCP bind {bind!r} must be HOST:PORT with port 1-65535"
            )
        return bind
    return str(Path(bind).expanduser())


def _resolve_log_file(value: Any, home: Path, sources: dict[str, Source]) -> Path | None:
    text = str(value).strip()
    if text == "-":
        return None
    if not text:
        sources["service.log_file"] = Source("default", "log in home")
        return home / settings.LOG_NAME
    return Path(text).expanduser()


# -- the TOML document ----------------------------------------------------------------------

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


class _Document:
    """A parsed config file that can say which line a key is on."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.data = data
        self._check_keys()

    @classmethod
    def read(cls, path: Path) -> _Document:
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
            if key not in _TOP_KEYS:
                raise self._unknown(None, key, _TOP_KEYS)
            if key in _TABLES:
                if not isinstance(value, dict):
                    raise ConfigError(f"{self.where(None, key)}: {key!r} must be a table ([{key}])")
                for sub in value:
                    if sub not in _TABLES[key]:
                        raise self._unknown(key, sub, _TABLES[key])
            if key == "watch":
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ConfigError(f"{self.where(None, key)}: 'watch' must be [[watch]] tables")
                for i, entry in enumerate(value):
                    for sub in entry:
                        if sub not in _WATCH_KEYS:
                            raise self._unknown("watch", sub, _WATCH_KEYS, i)

    # values

    def has(self, dotted: str) -> bool:
        table, _, key = dotted.rpartition(".")
        node = self.data.get(table, {}) if table else self.data
        return isinstance(node, dict) and key in node

    def get(self, dotted: str, typ: type) -> tuple[str | int, Source]:
        table, _, key = dotted.rpartition(".")
        node = self.data[table] if table else self.data
        where = self.where(table or None, key)
        value = node[key]
        ok = isinstance(value, int) and not isinstance(value, bool) if typ is int else isinstance(value, str)
        if not ok:
            kind = "an integer" if typ is int else "a string"
            raise ConfigError(f"{where}: {dotted} must be {kind}, got {value!r}")
        return value, Source("file", where)

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
            if not isinstance(db, str) or not _DB_NAME_RE.match(db):
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
