"""The socket server: JSON-lines requests in, engine calls, replies out.

One thread per connection; a connection carries any number of requests, answered in order. Every
failure becomes an ``{"ok": false, "error": {...}}`` reply: malformed input never takes down the
connection (except a wrong token) nor the daemon.

Transports and their rules:

- Unix socket (default): the socket file is created mode 0600 (its directory 0700 when we create
  it). A socket file left by a crashed daemon is removed; one that still answers means another
  daemon is running, and we refuse to start.
- TCP ``host:port``: clients cannot make the daemon read server-side files (``add`` with
  ``paths``, image search or compare by ``path`` are refused with ``permission_denied``); they send
  image bytes instead. Binding beyond loopback requires a token. When a token is configured (on any
  TCP bind) every connection must present it before anything but ``hello``: either a first
  ``{"op": "auth", "token": ...}`` request, or a ``"token"`` field on a request. A wrong token gets
  ``permission_denied`` and the connection is closed.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isearchd.daemon.handler import Handler, Peer, WebPage
from isearchd.daemon.inprocess import InProcessTransport
from isearchd.errors import (
    Busy,
    ConfigError,
    ISearchError,
    PermissionDenied,
    ServiceError,
)
from isearchd.messages import HelloRequest, ShutdownRequest
from isearchd.protocol import (
    MAX_LINE_BYTES,
    BindAddress,
    LineReader,
    LineTooLong,
    Request,
    decode_line,
    error_reply,
    is_loopback,
    ok_reply,
    request_id,
    to_wire,
    validate_request,
)
from isearchd.transports import Transport

if TYPE_CHECKING:
    from isearchd.engine.engine import Engine
    from isearchd.watch.watcher import Watcher

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
MAX_UNIX_PATH_BYTES = 103
# How long a stopping daemon waits for in-flight requests (adds stop at their next batch boundary).
STOP_GRACE_S = 20.0
ACCEPT_POLL_S = 0.5
LISTEN_BACKLOG = 64

_AUTH_NEEDED = (
    'this daemon requires a token: send {"op": "auth", "token": ...} first '
    "(Client(token=...) or ISEARCH_TOKEN)"
)


def check_bind_policy(bind: BindAddress, token: str | None) -> None:
    """TCP beyond loopback needs a token (``ConfigError`` otherwise)."""
    if bind.is_tcp and not token and not is_loopback(bind.host or ""):
        raise ConfigError(
            f"binding TCP beyond loopback ({bind}) requires a token: set ISEARCH_TOKEN or pass --token "
            "(or bind 127.0.0.1:PORT)"
        )


def check_bind_free(bind: BindAddress) -> None:
    """Refuse early (before the slow model load) when another daemon already answers at ``bind``."""
    if bind.is_tcp:
        try:
            with socket.create_connection((bind.host or "127.0.0.1", int(bind.port or 0)), timeout=2.0):
                pass
        except OSError:
            return
        raise ServiceError(f"something is already listening on {bind}; stop it or choose another --bind")
    if bind.path is not None:
        _unix_socket_state(bind.path)


def _unix_socket_state(path: str) -> str:
    """'free' (nothing there) or 'stale' (a socket file nobody listens on); ServiceError otherwise."""
    try:
        mode = Path(path).lstat().st_mode
    except FileNotFoundError:
        return "free"
    if not stat.S_ISSOCK(mode):
        raise ServiceError(f"{path} exists and is not a socket; remove it or choose another --bind")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return "stale"
    except OSError:
        pass
    finally:
        probe.close()
    raise ServiceError(
        f"another ImgSearch daemon is already running at {path}; stop it with `isearch service stop`"
    )


class _Connection:
    """One client connection: a ``Peer`` of the handler."""

    def __init__(self, sock: socket.socket, peer: str, tcp: bool, authed: bool) -> None:
        self.sock = sock
        self.peer = peer
        self.remote = tcp
        self.authed = authed
        self.busy = False
        self.alive = True
        self.send_lock = threading.Lock()

    def send(self, line: bytes) -> bool:
        if not self.alive:
            return False
        try:
            with self.send_lock:
                self.sock.sendall(line)
            return True
        except OSError:
            self.alive = False
            return False


class Server:
    """Listens on ``bind`` and serves the engine and the watcher until ``request_stop``."""

    def __init__(
        self,
        engine: Engine,
        watcher: Watcher,
        bind: BindAddress,
        *,
        token: str | None = None,
        max_line: int = MAX_LINE_BYTES,
        on_stop_request: Callable[[], None] | None = None,
        web: Callable[[Transport], WebPage] | None = None,
    ) -> None:
        """``web`` builds the daemon's web page from a transport into this server (the page's
        requests are a remote peer's: they may not name daemon-side paths)."""
        check_bind_policy(bind, token)
        self.engine = engine
        self.watcher = watcher
        self.bind = bind
        self.token = token or None
        self.max_line = max_line
        self._on_stop_request = on_stop_request
        self._listener: socket.socket | None = None
        self._socket_ino: int | None = None
        self._stopping = threading.Event()
        self.cancel = threading.Event()  # tells running adds to stop at their next batch boundary
        page = web(InProcessTransport(self, remote=True)) if web is not None else None
        self.handler = Handler(
            engine, watcher, cancel=self.cancel, bind=str(bind), max_line_bytes=max_line, web=page
        )
        self.web = page
        self._conns: set[_Connection] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    # -- listening -------------------------------------------------------------------------------

    def listen(self) -> None:
        if self.bind.is_tcp:
            self._listener = self._listen_tcp()
        else:
            self._listener = self._listen_unix(str(self.bind.path))
        self._listener.settimeout(ACCEPT_POLL_S)
        log.info("listening on %s", self.bind)

    def _listen_tcp(self) -> socket.socket:
        host, port = self.bind.host or "127.0.0.1", int(self.bind.port or 0)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        except OSError as e:
            raise ServiceError(f"cannot listen on {self.bind}: {e.strerror or e}") from None

    def _listen_unix(self, path: str) -> socket.socket:
        if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
            raise ConfigError(
                f"the socket path is too long for a Unix socket ({len(os.fsencode(path))} bytes, "
                f"the limit is {MAX_UNIX_PATH_BYTES}): {path}; choose a shorter --bind"
            )
        folder = Path(path).parent
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.path.lexists(path):
            self._remove_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is born 0600: no window where others can connect
        try:
            sock.bind(path)
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:  # another daemon won the race
                raise ServiceError(f"another ImgSearch daemon is already running at {path}") from None
            raise ServiceError(f"cannot listen on {path}: {e.strerror or e}") from None
        finally:
            os.umask(old_umask)
        Path(path).chmod(0o600)
        self._socket_ino = os.lstat(path).st_ino
        sock.listen(LISTEN_BACKLOG)
        return sock

    @staticmethod
    def _remove_stale_socket(path: str) -> None:
        if _unix_socket_state(path) == "stale":
            log.info("removing stale socket file %s (left by a daemon that is gone)", path)
            Path(path).unlink(missing_ok=True)

    # -- serving ---------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until ``request_stop`` (call from the main thread)."""
        if self._listener is None:
            self.listen()
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            conn.settimeout(None)
            tcp = self.bind.is_tcp
            peer = f"{addr[0]}:{addr[1]}" if tcp and isinstance(addr, tuple) else "unix"
            c = _Connection(conn, peer, tcp, authed=not (tcp and self.token))
            t = threading.Thread(target=self._serve_connection, args=(c,), name=f"conn-{peer}", daemon=True)
            with self._lock:
                self._conns.add(c)
                self._threads.add(t)
            t.start()

    def request_stop(self) -> None:
        """Stop accepting (safe from a signal handler: only sets a flag)."""
        self._stopping.set()

    def close(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop listening, let in-flight requests finish or abandon cleanly, close every connection."""
        self._stopping.set()
        self.cancel.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for c in conns:
            if not c.busy:
                _shutdown(c.sock)
        deadline = threading.Event()
        timer = threading.Timer(grace_s, deadline.set)
        timer.start()
        try:
            for t in threads:
                while t.is_alive() and not deadline.is_set():
                    t.join(0.1)
                    with self._lock:
                        idle = [c for c in self._conns if not c.busy]
                    for c in idle:
                        _shutdown(c.sock)
        finally:
            timer.cancel()
        for c in conns:
            _shutdown(c.sock)
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        if self.bind.is_tcp or self._socket_ino is None:
            return
        path = str(self.bind.path)
        with contextlib.suppress(FileNotFoundError):
            if Path(path).lstat().st_ino == self._socket_ino:
                Path(path).unlink()

    def _serve_connection(self, c: _Connection) -> None:
        reader = LineReader(c.sock, self.max_line)
        try:
            while c.alive:
                try:
                    line = reader.readline()
                except LineTooLong as e:
                    c.send(error_reply(None, e))
                    continue
                except OSError:
                    break
                if line is None:
                    break
                if not line.strip():
                    continue
                c.busy = True
                try:
                    if not self.handle_line(c, line):
                        break
                finally:
                    c.busy = False
                if self._stopping.is_set():
                    break
        finally:
            c.alive = False
            _shutdown(c.sock)
            c.sock.close()
            with self._lock:
                self._conns.discard(c)
                self._threads.discard(threading.current_thread())

    def handle_line(self, c: Peer, line: bytes) -> bool:
        """Answer one request line from ``c``. Returns False when the connection must be closed."""
        rid: Any = None
        try:
            obj = decode_line(line)
            rid = request_id(obj)
            req = validate_request(obj)
            if self._stopping.is_set() and not isinstance(req, HelloRequest):
                raise Busy("the ImgSearch daemon is shutting down; try again once it is restarted")
            if not self._authorise(c, req):
                return False
            result = self._dispatch(c, req)
        except ISearchError as e:
            c.send(error_reply(rid, e))
            return True
        except Exception as e:  # the daemon must answer, not die; the log has the traceback
            log.exception("internal error while handling a request")
            err = ISearchError(f"internal error in the daemon ({type(e).__name__}: {e}); see its log")
            c.send(error_reply(rid, err))
            return True
        c.send(ok_reply(rid, to_wire(result)))
        if isinstance(req, ShutdownRequest):
            log.info("shutdown requested by a client")
            self.request_stop()
            if self._on_stop_request is not None:
                self._on_stop_request()
        return True

    def _dispatch(self, c: Peer, req: Request) -> Any:
        if isinstance(req, HelloRequest):
            return self.handler.hello(c, auth_required=self.token is not None and c.remote)
        return self.handler.handle(c, req)

    def _authorise(self, c: Peer, req: Request) -> bool:
        if c.authed or self.token is None:
            return True
        presented = req.token
        if presented is None:
            if isinstance(req, HelloRequest):
                return True
            raise PermissionDenied(_AUTH_NEEDED)
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            log.warning("rejected a connection from %s: wrong token", getattr(c, "peer", "?"))
            c.send(error_reply(req.id, PermissionDenied("wrong token")))
            return False
        c.authed = True
        return True


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
