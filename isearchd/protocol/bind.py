"""Where a daemon listens, as the daemon, the Client and the service control all parse it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from isearchd.errors import InvalidRequest

__all__ = ["BindAddress", "is_loopback", "parse_bind"]

_TCP_RE = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class BindAddress:
    """Where the daemon listens: a Unix socket path or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_tcp(self) -> bool:
        return self.port is not None

    def __str__(self) -> str:
        if self.is_tcp:
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"{host}:{self.port}"
        return str(self.path)


def parse_bind(bind: str) -> BindAddress:
    """``host:port`` (``[v6]:port`` too) is TCP; anything else is a Unix socket path (``~`` expanded)."""
    if not bind or not bind.strip():
        raise InvalidRequest("the bind address is empty; give a socket path or host:port")
    m = _TCP_RE.match(bind.strip())
    if m and "/" not in bind:
        port = int(m.group("port"))
        if not 0 < port < 65536:
            raise InvalidRequest(f"bad port in bind address {bind!r}: {port} (must be 1-65535)")
        host = m.group("v6") or m.group("host") or "127.0.0.1"
        return BindAddress(host=host, port=port)
    return BindAddress(path=str(Path(bind).expanduser().absolute()))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
