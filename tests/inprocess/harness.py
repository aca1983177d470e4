"""What a daemon runs, in the test's own process: ``InProcessDaemon`` (used by conftest.py).

The same ``Engine``, ``Watcher`` and ``Server`` that ``isearchd`` composes, on the tiny test model,
loaded once per session and shared (a daemon process pays a torch import and a model load on each
start). Clients reach the server through ``InProcessTransport``: the same Client, the same JSON
lines, the same server-side validation and dispatch as over a socket, without a socket. With
``listen=True`` the server also serves its Unix socket from a thread, for the few tests here that
run the ``isearch`` CLI against it.

What needs the process boundary (signals, pid files, socket permissions, the service commands, a
kill -9) stays in tests/integration with real daemons.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from isearchd.client import Client
from isearchd.daemon.inprocess import InProcessTransport
from isearchd.daemon.server import Server
from isearchd.engine.engine import Engine, EngineModel
from isearchd.engine.faces import FacesAnalysis
from isearchd.engine.words import WordsAnalysis
from isearchd.protocol import BindAddress
from isearchd.watch.watcher import Watcher, WatchOptions

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY_MODEL = Path(os.environ.get("ISEARCH_TEST_MODEL") or FIXTURES / "tiny-clip.pt")

if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
from tinycache import tiny_cache  # noqa: E402


def short_tmpdir(prefix: str = "isp-") -> Path:
    """A short folder (Unix socket paths are limited to ~107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class InProcessDaemon:
    """An engine, a watcher and a server on ``root / "home"``, started and stopped like a daemon:
    ``stop`` then ``start`` reopens the same home (as a restart would)."""

    def __init__(
        self,
        root: Path,
        model: EngineModel,
        *,
        watch: WatchOptions | None = None,
        listen: bool = False,
        faces: Callable[[], FacesAnalysis] | None = None,
        words: Callable[[], WordsAnalysis] | None = None,
    ) -> None:
        """``faces``: makes the faces analysis of each start (None: people off, as most tests
        want: the coloured shapes of the tiny model have no faces to find); ``words``: the same
        for the words analysis (None: off)."""
        self.root = root
        self.home = root / "home"
        self.bind = str(root / "s.sock")
        self.model = model
        self.watch_options = watch or WatchOptions(settle_s=0.4)
        self.listen = listen
        self.faces = faces
        self.words = words
        self.server: Server | None = None
        self._serving: threading.Thread | None = None

    def start(self) -> InProcessDaemon:
        engine = Engine(
            self.model,
            self.home,
            batch_size=8,
            faces=self.faces() if self.faces else None,
            words=self.words() if self.words else None,
        )
        watcher = Watcher(engine, self.watch_options)
        self.server = Server(engine, watcher, BindAddress(path=self.bind))
        if self.listen:
            self.server.listen()
            self._serving = threading.Thread(target=self.server.serve_forever, name="serve", daemon=True)
            self._serving.start()
        watcher.start_all([], engine.list_dbs())
        return self

    def client(self, db_name: str = "default", *, timeout: float | None = 120) -> Client:
        assert self.server is not None, "start() first"
        return Client(
            db_name=db_name, bind=self.bind, timeout=timeout, transport=InProcessTransport(self.server)
        )

    def socket_client(self, db_name: str = "default") -> Client:
        """A Client over the real Unix socket (``listen=True``)."""
        return Client(db_name=db_name, bind=self.bind, timeout=120)

    def output(self) -> str:
        """A daemon process's log so far (the tests' failure messages show it); here the log goes
        to pytest's own capture, so nothing."""
        return ""

    def env(self) -> dict[str, str]:
        """The environment for a CLI subprocess talking to this server."""
        env = dict(os.environ)
        env.update(ISEARCH_HOME=str(self.home), ISEARCH_CACHE=str(tiny_cache(TINY_MODEL)),
                   ISEARCH_CONFIG=str(self.root / "config.toml"))  # fmt: skip
        env.pop("ISEARCH_TOKEN", None)
        return env

    def stop(self) -> int:
        """Stop as the daemon does on SIGTERM (the watcher, the server, then the engine: indexes
        saved); 0, as the daemon's exit status."""
        server, self.server = self.server, None
        if server is None:
            return 0
        server.request_stop()
        if self._serving is not None:
            self._serving.join(10)
            self._serving = None
        server.watcher.stop()
        server.close()
        server.engine.close()
        return 0
