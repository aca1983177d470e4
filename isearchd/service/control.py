"""Start, stop and inspect the background daemon: what ``isearch service start|stop|status`` does.

The daemon (``python -m isearchd``) runs in its own session with stdout and stderr appended to
the log file, so it outlives the shell that started it. ``start`` returns once the daemon
answers ``hello`` on its bind address, or raises :class:`ServiceError` with the reason read from
the tail of the log. One daemon serves one data home: which one owns it, and the files a dead
one left, is ``isearchd.service.pidfile``'s to say.

Nothing here prints or exits; the CLI turns results and exceptions into output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from isearchd.config import settings
from isearchd.config.home import data_home, default_bind, log_path
from isearchd.errors import ISearchError, ServiceError, ServiceNotRunning
from isearchd.protocol import is_loopback, parse_bind
from isearchd.service.pidfile import alive, cleanup_stale, running_pid

if TYPE_CHECKING:
    from isearchd.client import Client
    from isearchd.messages import Status

log = logging.getLogger(__name__)

# How long `start` waits for the first `hello` answer: loading the largest model takes a few
# seconds; a daemon that has not answered after this is stopped and reported as failed.
START_TIMEOUT_S = 60.0
# How long `stop` waits for the daemon to exit after the shutdown request, then after SIGTERM.
STOP_TIMEOUT_S = 30.0
TERM_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1
# How much of the log's new content is read back to explain a failed start.
LOG_TAIL_BYTES = 16_384
CONSOLE_NAME = "isearchd.console"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# "2025-01-01 12:00:00,000 ERROR [isearchd] message": what follows the level and logger name.
_LOG_ERROR = re.compile(r"\b(?:ERROR|CRITICAL)\b\s*(?:\[[^\]]*\])?[\s:-]*")


@dataclass(frozen=True)
class ServiceInfo:
    """What ``isearch service status`` shows. ``answering`` is False when the pid file names a
    live daemon but nothing answers at ``bind`` (still starting, or listening elsewhere)."""

    bind: str
    answering: bool
    pid: int | None = None
    rss_bytes: int | None = None
    status: Status | None = None  # what the daemon said, when it answered

    @property
    def model(self) -> str | None:
        return self.status.model if self.status is not None else None


def resolve_bind(bind: str | None) -> str:
    """The bind address to use, normalised: ``bind`` (socket paths made absolute, ``~`` expanded)
    or the default socket. Raises InvalidRequest for a malformed address."""
    return str(parse_bind(bind or default_bind()))


def is_tcp(bind: str) -> bool:
    """True for ``host:port`` binds; anything else is a Unix socket path."""
    return parse_bind(bind).is_tcp


def is_local(bind: str) -> bool:
    """True when the daemon behind ``bind`` runs on this machine (its pid is meaningful here)."""
    address = parse_bind(bind)
    return not address.is_tcp or is_loopback(address.host or "")


def console_path() -> Path:
    """Where a background daemon's stdout and stderr go (next to its log file)."""
    return log_path().with_name(CONSOLE_NAME)


def daemon_command(
    bind: str, model: str, log_level: str, precision: str | None = None, store: str | None = None
) -> list[str]:
    """The command line that runs the daemon in the foreground."""
    cmd = [sys.executable, "-m", "isearchd", "--bind", bind, "--model", model, "--log-level", log_level]
    if precision is not None:
        cmd += ["--precision", precision]
    if store is not None:
        cmd += ["--store", store]
    return cmd


# ---------------------------------------------------------------------------------------------
# start


def start(
    model: str = settings.DEFAULT_MODEL,
    *,
    bind: str | None = None,
    log_level: str = "info",
    precision: str | None = None,
    store: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> ServiceInfo:
    """Start the daemon in the background and wait until it answers.

    Raises ServiceError when one is already running for this data home (it is left alone) or when
    the new one exits or does not answer within ``timeout_s`` (the reason comes from its log).
    """
    if managed_by_init():
        return _start_unit(bind)
    bind = resolve_bind(bind)
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise ServiceError(f"unknown log level {log_level!r}; use one of: {', '.join(LOG_LEVELS)}")
    model = _model_argument(model)
    ensure_not_running(bind)
    cleanup_stale(bind)

    data_home().mkdir(parents=True, exist_ok=True, mode=0o700)
    console = console_path()
    proc = _spawn(daemon_command(bind, model, level, precision, store), console)
    return _wait_answering(proc, bind, console, timeout_s)


def _spawn(cmd: list[str], console: Path) -> subprocess.Popen[bytes]:
    """The daemon in its own session, its output in ``console``.

    The daemon logs to its log file and to stderr; its stderr (and anything printed before
    logging is set up, such as an import error) goes to a console file rewritten per start, so
    the log file has no duplicated lines and the console file holds exactly this start's story."""
    log.debug("starting daemon: %s", cmd)
    with console.open("wb") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _wait_answering(proc: subprocess.Popen[bytes], bind: str, console: Path, timeout_s: float) -> ServiceInfo:
    """Its status once it answers at ``bind``; raises ServiceError (with the reason from its
    console) when it exits first, or stops it when it has not answered within ``timeout_s``."""
    log_file = log_path()
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            reason = failure_reason(console) or f"it exited with status {code}"
            raise ServiceError(f"the ImgSearch service failed to start: {reason} (log: {log_file})")
        info = _try_status(bind)
        if info is not None:
            return info
        if time.monotonic() > deadline:
            _terminate(proc)
            last = failure_reason(console)
            detail = f"; last log line: {last}" if last else ""
            raise ServiceError(
                f"the ImgSearch service did not answer at {bind} within {timeout_s:.0f} s and was stopped"
                f"{detail} (log: {log_file})"
            )
        time.sleep(POLL_INTERVAL_S)


def ensure_not_running(bind: str) -> None:
    """Raise ServiceError when a daemon already runs for this data home or answers at ``bind``.

    ``start`` checks this itself; the CLI checks it before downloading or exporting a model too,
    so a second ``service start`` says "already running" at once.
    """
    running = running_pid()
    if running is not None:
        raise ServiceError(
            f"the ImgSearch service is already running (PID {running}, data home {data_home()}); "
            "stop it first with `isearch service stop`"
        )
    if _answers(bind):
        raise ServiceError(
            f"another ImgSearch service already answers at {bind}; stop it with "
            f"`isearch service stop -B {bind}` or choose another address with -B"
        )


def managed_by_init() -> bool:
    """True when `isearch service install` put a user unit in place: then the init system owns
    the daemon (its options were fixed at install time) and start/stop go through it."""
    from isearchd.service import install as service

    return service.managed_by_init()


def installed_unit_state() -> str | None:
    """What the init system says of the installed user service (e.g. ``failed (failed)``, why a
    daemon it owns is not running), or None when no service is installed."""
    from isearchd.service import install as service

    if not service.managed_by_init():
        return None
    try:
        unit = service.unit_status()
    except ServiceError as e:
        return f"unknown ({e.message})"
    return f"{unit.state}, PID {unit.pid}" if unit.pid else unit.state


def _start_unit(bind: str | None) -> ServiceInfo:
    from isearchd.service import install as service

    service.start_unit()
    address = resolve_bind(bind)
    if not _wait(lambda: _answers(address), START_TIMEOUT_S):
        raise ServiceError(
            f"the installed user service was started but nothing answers at {address}; "
            "see `systemctl --user status isearchd` (or the launchd log) and the options given to "
            "`isearch service install`"
        )
    info = _try_status(address)
    assert info is not None
    return info


def _model_argument(model: str) -> str:
    """A model key as it is; an existing checkpoint path made absolute (the daemon's cwd may differ)."""
    path = Path(model).expanduser()
    if path.suffix and path.exists():
        return str(path.resolve())
    return model


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(TERM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(TERM_TIMEOUT_S)


def failure_reason(log_file: Path, offset: int = 0) -> str | None:
    """The most telling line written to ``log_file`` after ``offset``: the last ERROR or CRITICAL
    record (without timestamp and logger), else the last line (a traceback's last line names the
    exception)."""
    try:
        with log_file.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, size - LOG_TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    for line in reversed(lines):
        match = _LOG_ERROR.search(line)
        if match:
            return _shorten(line[match.end() :] or line)
    return _shorten(lines[-1])


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# stop


def stop(*, bind: str | None = None, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """Stop the daemon: the protocol's shutdown op, then SIGTERM by pid if it is still alive.

    Returns the pid that was stopped (None for a daemon on another machine). Raises
    ServiceNotRunning when there is nothing to stop, ServiceError when it would not stop.
    """
    bind = resolve_bind(bind)
    pid = running_pid()
    info = _try_status(bind)
    if managed_by_init():
        from isearchd.service import install as service

        service.stop_unit()  # the init system would restart a daemon stopped behind its back
    if info is None and pid is None:
        cleanup_stale(bind)
        raise ServiceNotRunning(
            f"the ImgSearch service is not running (nothing answers at {bind}); nothing to stop"
        )
    if info is not None:
        if info.pid is not None and is_local(bind):
            pid = info.pid
        with contextlib.suppress(ISearchError, OSError), _client(bind, timeout=10.0) as client:
            client.shutdown()

    if pid is None:
        # A daemon on another machine: all we can see is that it stops answering.
        if not _wait(lambda: not _answers(bind), timeout_s):
            raise ServiceError(
                f"the ImgSearch service at {bind} is still answering {timeout_s:.0f} s after the stop request"
            )
        return None

    if not _wait(lambda: not alive(pid), timeout_s if info is not None else 0.0):
        log.info("daemon %d ignored the shutdown request; sending SIGTERM", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait(lambda: not alive(pid), TERM_TIMEOUT_S):
            raise ServiceError(
                f"the ImgSearch service (PID {pid}) did not stop after a shutdown request and SIGTERM; "
                f"stop it with `kill -9 {pid}`"
            )
    cleanup_stale(bind)
    return pid


def _wait(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)


# ---------------------------------------------------------------------------------------------
# status


def status(*, bind: str | None = None) -> ServiceInfo | None:
    """The running daemon's status, or None when none runs for this data home or at ``bind``."""
    bind = resolve_bind(bind)
    info = _try_status(bind)
    if info is not None:
        return info
    pid = running_pid()
    if pid is None:
        return None
    return ServiceInfo(bind=bind, answering=False, pid=pid, rss_bytes=_rss(pid))


def _try_status(bind: str) -> ServiceInfo | None:
    """Ask the daemon at ``bind`` for its status; None when nothing answers there."""
    try:
        with _client(bind, timeout=5.0) as client:
            raw = client.status()
    except ServiceNotRunning:
        return None
    except OSError as exc:  # a half-open socket while the daemon starts or stops
        log.debug("status at %s failed: %s", bind, exc)
        return None
    rss = _rss(raw.pid) if is_local(bind) else None  # this machine's own view when it can see it
    return ServiceInfo(bind=bind, answering=True, pid=raw.pid, rss_bytes=rss or raw.rss_bytes, status=raw)


def _rss(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return None


# ---------------------------------------------------------------------------------------------
# probing


def _answers(bind: str) -> bool:
    return _try_status(bind) is not None


@contextlib.contextmanager
def _client(bind: str, timeout: float) -> Iterator[Client]:
    from isearchd.client import Client

    client = Client(bind=bind, timeout=timeout)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
