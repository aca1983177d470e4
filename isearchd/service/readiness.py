"""Wait until the daemon accepts connections at its bind address.

Used by the systemd unit (``ExecStartPost=python -m isearchd.service.readiness --pid $MAINPID``) so
that ``systemctl --user start isearchd`` returns only once the daemon is ready, and fails when
the daemon exits during start-up instead. A successful ``connect()`` is the signal: the daemon
listens only after its model is loaded. Also usable by the CLI after a background start.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from isearchd.errors import ISearchError, ServiceError, ServiceNotRunning

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
POLL_INTERVAL_S = 0.2


def tcp_address(bind: str) -> tuple[str, int] | None:
    """``(host, port)`` for a ``HOST:PORT`` bind, None for a Unix socket path."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or "/" in bind or not host:
        return None
    return host.strip("[]"), int(port)


def is_listening(bind: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True when something accepts a connection at ``bind`` (Unix socket path or HOST:PORT)."""
    addr = tcp_address(bind)
    try:
        if addr is None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(Path(bind).expanduser()))
        else:
            with socket.create_connection(addr, timeout=timeout):
                pass
    except OSError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until_listening(
    bind: str,
    *,
    timeout: float,
    pid: int | None = None,
    interval: float = POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once ``bind`` accepts connections.

    Raises ServiceError when process ``pid`` exits first, ServiceNotRunning after ``timeout``.
    """
    deadline = clock() + timeout
    while True:
        if is_listening(bind):
            log.debug("daemon is listening at %s", bind)
            return
        if pid is not None and not _alive(pid):
            raise ServiceError(f"the daemon (pid {pid}) exited before listening at {bind}; see its log")
        if clock() >= deadline:
            raise ServiceNotRunning(f"the daemon did not listen at {bind} within {timeout:g} s; see its log")
        sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m isearchd.service.readiness", description="Wait until isearchd accepts connections."
    )
    parser.add_argument("--bind", help="bind address (default: the effective config's)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    parser.add_argument("--pid", type=int, help="give up when this process exits")
    args = parser.parse_args(argv)
    try:
        bind = args.bind
        if not bind:
            from isearchd.config.file import load_config

            bind = load_config().service.bind
        wait_until_listening(bind, timeout=args.timeout, pid=args.pid)
    except ISearchError as err:
        sys.stderr.write(f"isearchd readiness: {err.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
