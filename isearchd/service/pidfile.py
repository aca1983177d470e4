"""Which daemon owns this data home, and the files a dead one left behind.

The daemon holds an flock on its pid file; here the file is only read (never locked), so a
check cannot disturb a daemon that is starting up. A pid counts only when its process is alive
and its command line is an isearchd daemon (a pid is recycled after a crash). ``cleanup_stale``
removes a pid file whose daemon is gone and a socket file nobody listens on; both look before
removing, so a live daemon's files stay.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
from pathlib import Path

import psutil

from isearchd.config.home import pid_path
from isearchd.protocol import parse_bind

log = logging.getLogger(__name__)


def _pid_from_file() -> int | None:
    try:
        text = pid_path().read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


def alive(pid: int) -> bool:
    """The process runs (a zombie does not count)."""
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _looks_like_daemon(pid: int) -> bool:
    """The process is alive and its command line is an isearchd daemon (not a recycled pid)."""
    if pid == os.getpid() or not alive(pid):
        return False
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False
    return "isearchd" in cmdline


def running_pid() -> int | None:
    """The pid of the daemon that owns this data home, or None when none is alive."""
    pid = _pid_from_file()
    if pid is not None and _looks_like_daemon(pid):
        return pid
    return None


def cleanup_stale(bind: str) -> list[Path]:
    """Remove a pid file whose process is gone and a socket file nobody listens on.

    Returns the paths removed. Both checks look before removing: a live daemon's files stay.
    """
    removed: list[Path] = []
    pid_file = pid_path()
    if pid_file.exists() and running_pid() is None:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
            removed.append(pid_file)
    if not parse_bind(bind).is_tcp:
        sock = Path(bind)
        if sock.is_socket() and _socket_refuses(sock):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
                removed.append(sock)
    for path in removed:
        log.info("removed stale %s", path)
    return removed


def _socket_refuses(path: Path) -> bool:
    """True when connecting to the Unix socket file is refused (its daemon died)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            return exc.errno in (errno.ECONNREFUSED, errno.ENOENT)
    return False
