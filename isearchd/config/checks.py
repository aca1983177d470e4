"""Checking and normalising one setting's value. Every error names where the value came from
(its :class:`~isearchd.config.schema.Source`, or the file and line), so the user knows what
to edit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from isearchd.config import settings
from isearchd.config.schema import STORE_SCHEMES, Source
from isearchd.errors import ConfigError

DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
DB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_env(var: str, raw: str, typ: type) -> str | int | float | bool:
    return coerce(raw, typ, f"environment variable {var}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce(value: Any, typ: type, where: str) -> str | int | float | bool:
    if typ is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
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


def choice(value: Any, choices: tuple[str, ...], source: Source) -> str:
    norm = str(value).strip().lower()
    if norm not in choices:
        raise ConfigError(f"{source}: {value!r} is not one of {', '.join(choices)}")
    return norm


def device(value: Any, source: Source) -> str:
    norm = str(value).strip().lower()
    if not DEVICE_RE.match(norm):
        raise ConfigError(f"{source}: device {value!r} is not one of cpu, cuda, cuda:N, mps")
    return norm


def int_range(value: Any, low: int, high: int, source: Source) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{source}: {value!r} is not an integer from {low} to {high}")
    return value


def listen(value: Any, source: Source) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"ui.listen must be HOST:PORT (e.g. 127.0.0.1:8765), not {text!r} ({source})")
    return text


def store_url(value: Any, source: Source) -> str | None:
    text = str(value).strip()
    if text and not text.startswith(STORE_SCHEMES):
        raise ConfigError(
            f"{source}: store {text!r} is not a Qdrant URL: use qdrant://HOST:PORT, qdrants://HOST:PORT "
            "or qdrant:///ABS/PATH (leave it unset for the embedded store)"
        )
    return text or None


def non_empty(value: Any, source: Source, what: str) -> str:
    """``value`` without surrounding blanks; ``ConfigError`` saying ``what`` is empty if nothing is left."""
    if not str(value).strip():
        raise ConfigError(f"{source}: {what} is empty")
    return str(value).strip()


def resolve_bind(value: Any, home: Path, sources: dict[str, Source]) -> str:
    """The socket in ``home`` when unset (its source says so), else a TCP address or a path."""
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


def resolve_log_file(value: Any, home: Path, sources: dict[str, Source]) -> Path | None:
    """The log in ``home`` when unset (its source says so); ``-`` is standard error (None)."""
    text = str(value).strip()
    if text == "-":
        return None
    if not text:
        sources["service.log_file"] = Source("default", "log in home")
        return home / settings.LOG_NAME
    return Path(text).expanduser()


def float_range(value: Any, low: float, high: float, source: Source) -> float:
    if not isinstance(value, float) or not low <= value <= high:
        raise ConfigError(f"{source}: {value!r} is not a number from {low:g} to {high:g}")
    return value
