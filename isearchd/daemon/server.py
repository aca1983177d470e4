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
from typing import Any

from isearchd.engine.engine import Engine
from isearchd.engine.indexer import AddItem, Progress
from isearchd.errors import (
    Busy,
    ConfigError,
    InvalidRequest,
    ISearchError,
    PermissionDenied,
    ServiceError,
)
from isearchd.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    BindAddress,
    LineReader,
    LineTooLong,
    Request,
    b64decode,
    decode_line,
    encode,
    error_reply,
    is_loopback,
    ok_reply,
    parse_file_stats,
    parse_image_source,
    progress_event,
    request_id,
    validate_request,
)
from isearchd.version import __version__

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
MAX_UNIX_PATH_BYTES = 103
# How long a stopping daemon waits for in-flight requests (adds stop at their next batch boundary).
STOP_GRACE_S = 20.0
ACCEPT_POLL_S = 0.5
LISTEN_BACKLOG = 64

_TCP_PATH_REFUSAL = (
    "over TCP the daemon does not read files by path; send the image bytes instead "
    "(the Python Client and `isearch` do this automatically for TCP binds)"
)
_TCP_WATCH_REFUSAL = (
    "over TCP the daemon does not watch folders named by a client (they are paths on the daemon's "
    "machine); run `isearch watch` on that machine, or list the folders in its config file"
)
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
    def __init__(self, sock: socket.socket, peer: str, tcp: bool, authed: bool) -> None:
        self.sock = sock
        self.peer = peer
        self.tcp = tcp
        self.authed = authed
        self.busy = False
        self.alive = True
        self.send_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> bool:
        if not self.alive:
            return False
        try:
            with self.send_lock:
                self.sock.sendall(encode(message))
            return True
        except OSError:
            self.alive = False
            return False


class Server:
    """Listens on ``bind`` and serves ``engine`` until ``request_stop``."""

    def __init__(
        self,
        engine: Engine,
        bind: BindAddress,
        *,
        token: str | None = None,
        max_line: int = MAX_LINE_BYTES,
        on_stop_request: Callable[[], None] | None = None,
    ) -> None:
        check_bind_policy(bind, token)
        self.engine = engine
        self.bind = bind
        self.token = token or None
        self.max_line = max_line
        self._on_stop_request = on_stop_request
        self._listener: socket.socket | None = None
        self._socket_ino: int | None = None
        self._stopping = threading.Event()
        self.cancel = threading.Event()  # tells running adds to stop at their next batch boundary
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

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

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
                    if not self._handle_line(c, line):
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

    def _handle_line(self, c: _Connection, line: bytes) -> bool:
        """Answer one request line. Returns False when the connection must be closed."""
        rid: Any = None
        try:
            obj = decode_line(line)
            rid = request_id(obj)
            req = validate_request(obj)
            if self._stopping.is_set() and req.op != "hello":
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
        c.send(ok_reply(rid, result))
        if req.op == "shutdown":
            log.info("shutdown requested by a client")
            self.request_stop()
            if self._on_stop_request is not None:
                self._on_stop_request()
        return True

    def _authorise(self, c: _Connection, req: Request) -> bool:
        if c.authed or self.token is None:
            return True
        presented = req.args["token"] if req.op == "auth" else req.token
        if presented is None:
            if req.op == "hello":
                return True
            raise PermissionDenied(_AUTH_NEEDED)
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            log.warning("rejected a connection from %s: wrong token", c.peer)
            c.send(error_reply(req.id, PermissionDenied("wrong token")))
            return False
        c.authed = True
        return True

    # -- operations ------------------------------------------------------------------------------

    def _dispatch(self, c: _Connection, req: Request) -> Any:
        a = req.args
        eng = self.engine
        match req.op:
            case "hello":
                return {
                    "protocol": PROTOCOL_VERSION,
                    "server": "isearchd",
                    "version": __version__,
                    "model": eng.model.key,
                    "dim": eng.model.dim,
                    "transport": "tcp" if c.tcp else "unix",
                    "auth_required": self.token is not None and c.tcp,
                    "authenticated": c.authed,
                    "max_line_bytes": self.max_line,
                }
            case "auth":
                return True
            case "status":
                return {
                    **eng.status(),
                    "bind": str(self.bind),
                    "version": __version__,
                    "protocol": PROTOCOL_VERSION,
                }
            case "add":
                return self._add(c, req)
            case "search":
                return self._search(c, req)
            case "compare":
                sa = parse_image_source(a["a"], "compare: 'a'")
                sb = parse_image_source(a["b"], "compare: 'b'")
                if c.tcp and (sa.path is not None or sb.path is not None):
                    raise PermissionDenied(_TCP_PATH_REFUSAL)
                return eng.compare(
                    _src(sa.path, sa.data), _src(sb.path, sb.data), a_name=sa.display, b_name=sb.display
                )
            case "unchanged":
                return eng.unchanged(a["db"], parse_file_stats(a["files"]))
            case "list_dbs":
                return eng.list_dbs()
            case "db_info":
                return _jsonable(eng.db_info(a["db"]))
            case "clear_db":
                return eng.clear_db(a["db"])
            case "shutdown":
                return True
            case "watch" | "unwatch":
                if c.tcp:
                    raise PermissionDenied(_TCP_WATCH_REFUSAL)
                if req.op == "watch":
                    return eng.watch(
                        a["db"],
                        _strings(a["paths"], "watch: 'paths'"),
                        _strings(a["exclude"], "watch: 'exclude'"),
                    )
                return eng.unwatch(a["db"], a["path"], purge=a["purge"])
            case "watch_list":
                return eng.watch_list(a["db"])
            case "watch_errors":
                return eng.watch_errors(a["db"], a["path"])
        raise InvalidRequest(f"unknown op {req.op!r}")  # pragma: no cover - validate_request knows OPS

    def _add(self, c: _Connection, req: Request) -> dict[str, Any]:
        a = req.args
        paths, files = a["paths"], a["files"]
        if (paths is None) == (files is None):
            raise InvalidRequest("add needs exactly one of 'paths' (daemon-side files) or 'files' (bytes)")

        def progress(p: Progress) -> None:
            c.send(progress_event(req.id, **p.to_dict()))

        if paths is not None:
            if c.tcp:
                raise PermissionDenied(_TCP_PATH_REFUSAL)
            report = self.engine.add_paths(
                a["db"], paths, label_type=a["label_type"], progress=progress, cancel=self.cancel
            )
        else:
            items = [_file_item(i, f) for i, f in enumerate(files)]
            report = self.engine.add_files(a["db"], items, progress=progress, cancel=self.cancel)
        return report.to_dict()

    def _search(self, c: _Connection, req: Request) -> list[dict[str, Any]]:
        a = req.args
        text, image = a["text"], a["image"]
        if (text is None) == (image is None):
            raise InvalidRequest("search needs exactly one of 'text' or 'image'")
        if text is not None:
            hits = self.engine.search_text(a["db"], text, a["num"], a["similarity"])
        else:
            src = parse_image_source(image, "search: 'image'")
            if c.tcp and src.path is not None:
                raise PermissionDenied(_TCP_PATH_REFUSAL)
            hits = self.engine.search_image(
                a["db"], _src(src.path, src.data), a["num"], a["similarity"], name=src.display
            )
        return [{"label": h.label, "path": h.path, "similarity": float(h.similarity)} for h in hits]


def _src(path: str | None, data: bytes | None) -> str | bytes:
    if data is not None:
        return data
    assert path is not None
    if not Path(path).is_absolute():
        raise InvalidRequest(f"image paths must be absolute (the daemon does not share your cwd): {path}")
    return path


def _strings(value: list[Any], what: str) -> list[str]:
    if not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"{what} must be a list of non-empty strings")
    return list(value)


def _file_item(i: int, f: object) -> AddItem:
    what = f"add: files[{i}]"
    if not isinstance(f, dict):
        raise InvalidRequest(f"{what} must be an object with 'label' and 'data'")
    label, path = f.get("label"), f.get("path")
    size, mtime_ns = f.get("size"), f.get("mtime_ns")
    if not isinstance(label, str) or not label:
        raise InvalidRequest(f"{what}: 'label' must be a non-empty string")
    if path is not None and not isinstance(path, str):
        raise InvalidRequest(f"{what}: 'path' must be a string")
    for name, v in (("size", size), ("mtime_ns", mtime_ns)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidRequest(f"{what}: {name!r} must be an integer")
    data = b64decode(f.get("data"), what)
    return AddItem(label=label, path=path or label, data=data, size=size, mtime_ns=mtime_ns)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = str(v)
    return out


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
