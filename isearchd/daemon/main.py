"""``isearchd``: the resident daemon process (``python -m isearchd``).

Runs in the foreground; ``isearch service start`` puts it in the background. Lifecycle:

1. take the pid file (``pid_path()``) with an exclusive ``flock``: one daemon per data
   home; a second one exits 1 naming the running pid. A pid file left by a crash holds no lock,
   so it is simply taken over.
2. read the configuration (``isearchd.config.file.load_config``: command line > environment > config
   file > defaults) and log to its log file (default ``log_path()``) and to stderr.
3. load the model once (a model that cannot load: one line saying why, exit 1).
4. listen (Unix socket or TCP; see ``isearchd.daemon.server``), start watching the config file's
   ``[[watch]]`` folders and those registered in the databases (``isearchd.watch.watcher``), and serve.
5. SIGTERM/SIGINT (or a ``shutdown`` request): stop accepting, let running requests finish
   (adds stop at their next batch boundary: what they committed stays, the client gets an error
   rather than a success), save the vector indexes, remove the socket and pid file, exit 0.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import functools
import logging
import logging.handlers
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from isearchd.config import settings
from isearchd.errors import ISearchError, ServiceError
from isearchd.memory import keep_large_blocks_mapped
from isearchd.version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from isearchd.config.file import Config
    from isearchd.daemon.server import Server
    from isearchd.engine.engine import EngineModel
    from isearchd.engine.faces import FacesAnalysis
    from isearchd.engine.words import WordsAnalysis
    from isearchd.protocol import BindAddress
    from isearchd.store import Store
    from isearchd.transports import Transport
    from isearchd.watch.watcher import WatchOptions
    from isearchd.web.control import WebControl

log = logging.getLogger("isearchd")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="isearchd",
        description="ImgSearch daemon: keeps a TinyCLIP model resident and serves image databases.",
    )
    p.add_argument(
        "-B", "--bind", default=None, help="Unix socket path or host:port (default: ~/.isearch/isearch.sock)"
    )
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help=f"model key or custom checkpoint path (default: {settings.DEFAULT_MODEL})",
    )
    p.add_argument(
        "-L",
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        type=str.lower,
        help="log level (default: the config file's service.log_level, else info)",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=("fp32", "int8"),
        help="fp32 (lossless, default) or int8 (faster, slightly lossy; a database keeps the precision "
        "it was indexed with) (default: the config file's model.precision, else fp32)",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="where the databases live: qdrant://HOST:PORT, qdrants://HOST:PORT or qdrant:///ABS/PATH "
        "(default: the config's store.url, else the embedded store under the data home)",
    )
    p.add_argument("--home", default=None, help="data home (default: $ISEARCH_HOME or ~/.isearch)")
    p.add_argument("--token", default=None, help="token TCP clients must present (default: $ISEARCH_TOKEN)")
    p.add_argument(
        "--ui",
        default=None,
        metavar="HOST:PORT",
        help="serve the web page there from the start (default: the config's ui.listen, else on request)",
    )
    p.add_argument("-V", "--version", action="version", version=f"isearchd {__version__}")
    return p


def _setup_logging(level: str, log_file: Path | None) -> None:
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    fmt = logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s")
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            # file names that are not UTF-8 are logged as \udcXX escapes, never as a logging error
            log_file,
            maxBytes=LOG_MAX_BYTES,
            backupCount=LOG_BACKUPS,
            encoding="utf-8",
            errors="backslashreplace",
        )
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setFormatter(fmt)
    root.addHandler(stderr_handler)
    logging.captureWarnings(True)  # library warnings go to the log, not lost on a detached stderr


class PidLock:
    """The pid file, held with ``flock`` for the daemon's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ServiceError(
                    f"another isearchd (pid {other}) is already running for {self.path.parent}; "
                    "stop it with `isearch service stop`"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing drops the lock
        self.fd = None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from isearchd.config.file import load_config

    try:
        config = load_config(
            overrides={
                "bind": args.bind,
                "model": args.model,
                "log_level": args.log_level,
                "token": args.token,
                "precision": args.precision,
                "ui.listen": args.ui,
                "store": args.store,
                "home": str(Path(args.home).expanduser().resolve()) if args.home else None,
            }
        )
    except ISearchError as e:
        sys.stderr.write(f"isearchd: {e.message}\n")
        return 1
    # --home, $ISEARCH_HOME or the config file's home: every path below it (pid, socket, log)
    # comes from the config, passed down (nothing is handed over through os.environ)
    home = config.home
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        sys.stderr.write(f"isearchd: cannot create the data home {home}: {e.strerror or e}\n")
        return 1

    _setup_logging(config.service.log_level, config.service.log_file)
    pid_lock = PidLock(home / settings.PID_NAME)
    try:
        pid_lock.acquire()
    except ISearchError as e:
        log.error("%s", e.message)
        logging.shutdown()
        return 1

    try:
        return _run(config, home)
    finally:
        pid_lock.release()
        logging.shutdown()


class _StopSignals:
    """SIGTERM and SIGINT: before the server runs, it is not started; once it runs, it stops."""

    def __init__(self) -> None:
        self.early = threading.Event()
        self._server: Server | None = None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.early.set()
        if self._server is not None:
            self._server.request_stop()

    def serve(self, server: Server) -> None:
        """``server`` answers signals from now on (at once if one came while it was being built)."""
        self._server = server
        if self.early.is_set():
            server.request_stop()


def _run(config: Config, home: Path) -> int:
    from isearchd.daemon.server import check_bind_free, check_bind_policy
    from isearchd.protocol import parse_bind
    from isearchd.watch.watcher import WatchOptions

    signals = _StopSignals()
    try:
        watch_options = WatchOptions.from_env()
        bind = parse_bind(config.service.bind)
        check_bind_policy(bind, config.service.token)
        check_bind_free(bind)
        _check_words_language(config)
    except ISearchError as e:
        log.error("%s", e.message)
        return 1
    log.info(
        "isearchd %s starting (pid %d, home %s, model %s)", __version__, os.getpid(), home, config.model.name
    )
    keep_large_blocks_mapped()  # before the model and the databases allocate (isearchd.memory)
    model = _load_model(config)
    if model is None:
        return 1
    if signals.early.is_set():
        log.info("stopped before serving")
        return 0
    return _serve(config, home, model, bind, watch_options, signals)


def _load_model(config: Config) -> EngineModel | None:
    """The configured model, or None after one log line saying why it cannot load."""
    from isearchd.models import load_model

    try:
        return load_model(
            config.model.name,
            device=config.model.device,
            backend="auto",
            precision=config.model.precision,
            threads=config.model.threads or None,
            exporter=config.model.exporter,
        )
    except ISearchError as e:
        log.error("cannot load model %s: %s", config.model.name, e.message)
    except Exception as e:  # any failure to load must end in one clear line, not a traceback
        log.error("cannot load model %s: %s: %s", config.model.name, type(e).__name__, e)
        log.debug("model load failure", exc_info=True)
    return None


def _serve(
    config: Config,
    home: Path,
    model: EngineModel,
    bind: BindAddress,
    watch_options: WatchOptions,
    signals: _StopSignals,
) -> int:
    """The composition: the watcher feeds the engine's job queue; the server serves both and the
    web page; until a signal or a ``shutdown`` request stops it."""
    from isearchd.daemon.server import Server
    from isearchd.engine.engine import Engine
    from isearchd.files.video import VideoLimits
    from isearchd.watch.watcher import Watcher

    open_url = _store_opener(config, home)
    try:
        store = _open_store(config, open_url)
    except ISearchError as e:
        log.error("%s", e.message)
        return 1
    engine = Engine(
        model,
        home,
        batch_size=config.model.batch_size,
        store=store,
        open_url=open_url,
        faces=_faces(config),
        words=_words(config),
        video=VideoLimits(config.video.interval, config.video.max_frames, config.video.time_limit),
    )
    watcher = Watcher(engine, watch_options)
    server = Server(engine, watcher, bind, token=config.service.token, web=_web_page(config, home))
    try:
        server.listen()
    except ISearchError as e:
        log.error("%s", e.message)
        engine.close()
        return 1
    signals.serve(server)
    _start_web_page(server, config)
    log.info("ready: model %s (dim %d) on %s", model.key, model.dim, bind)
    try:
        configured = [(w.db, str(w.path), w.exclude) for w in config.watch]
        watcher.start_all(configured, engine.list_dbs())
        server.serve_forever()
    finally:
        log.info("stopping: finishing in-flight requests")
        if server.web is not None:
            server.web.stop()
        watcher.stop()
        server.close()
        engine.close()
        log.info("stopped")
    return 0


def _faces(config: Config) -> FacesAnalysis | None:
    """The faces analysis when people are on (``[people] enabled``) and the face models are
    installed; without them, one log line says how to install them, and people stay off."""
    if not config.people.enabled:
        return None
    from isearchd.engine.faces import FacesAnalysis, GroupingRules
    from isearchd.models.dlib_faces import DlibFaceModels, check_installed
    from isearchd.models.face_workers import FaceWorkers, default_workers

    try:
        check_installed()
    except ISearchError as e:
        log.error("people are off: %s", e.message)
        return None
    rules = GroupingRules(max_distance=config.people.max_distance, min_faces=config.people.min_faces)
    workers = FaceWorkers(DlibFaceModels, config.people.workers or default_workers())
    return FacesAnalysis(workers, rules)


def _check_words_language(config: Config) -> None:
    """When words are on, ``[words] language`` must be known and its recognition model cached (or
    packaged): otherwise the start fails with the error that names `isearch model pull ocr-LANG`
    (the user asked for that language; reading in another would fill the library with the wrong
    words). Checked before the model loads, so the answer comes at once."""
    if config.words.enabled:
        from isearchd.models.ocr_languages import recognizer_file

        recognizer_file(config.words.language)


def _words(config: Config) -> WordsAnalysis | None:
    """The words analysis when words are on (``[words] enabled``) and rapidocr with its packaged
    models is installed; without it, one log line says how to install it, and words stay off.
    It reads in ``[words] language`` (``_check_words_language`` made sure its model is here)."""
    if not config.words.enabled:
        return None
    from isearchd.engine.words import WordsAnalysis
    from isearchd.models.ocr import RapidTextModels, TextWorkers, check_installed
    from isearchd.models.ocr_languages import recognizer_file
    from isearchd.models.workers import default_workers

    try:
        check_installed()
        rec_model = recognizer_file(config.words.language)
    except ISearchError as e:
        log.error("words in pictures are off: %s", e.message)
        return None
    make_models = functools.partial(RapidTextModels, config.words.language, rec_model)
    log.info("words in pictures are read in %s (%s)", config.words.language, rec_model or "packaged model")
    return WordsAnalysis(TextWorkers(make_models, default_workers()), config.words.min_score)


def _store_opener(config: Config, home: Path) -> Callable[[str | None], Store]:
    """Opens a store by URL with the config's ``[store]`` settings (prefix, host; the Qdrant API
    key from the environment only): the daemon's own store, and ``migrate``'s other one."""
    from isearchd.config.file import QDRANT_API_KEY_ENV
    from isearchd.store import open_store

    wanted = config.store
    api_key = os.environ.get(QDRANT_API_KEY_ENV) or None
    return lambda url: open_store(url, home, prefix=wanted.prefix, host=wanted.host, api_key=api_key)


def _open_store(config: Config, open_url: Callable[[str | None], Store]) -> Store:
    """The store of the config's ``[store] url``, reached now: a wrong URL fails the start."""
    wanted = config.store
    store = open_url(wanted.url)
    try:
        store.names()  # reach it now: a wrong URL or a server that is down fails the start
    except BaseException:
        store.close()
        raise
    if wanted.url:
        log.info("databases in %s (collections %s*)", wanted.url, wanted.prefix)
    return store


def _web_page(config: Config, home: Path) -> Callable[[Transport], WebControl]:
    """How the server builds its web page (served at once when the config says where, else on
    request): from a transport into the server, as a remote peer's."""
    from isearchd.web.control import WebControl

    def build(transport: Transport) -> WebControl:
        return WebControl(
            transport, home, token=config.service.token, cache_mb=config.ui.cache_mb, listen=config.ui.listen
        )

    return build


def _start_web_page(server: Server, config: Config) -> None:
    if server.web is not None and config.ui.listen:
        try:
            server.web.start()
        except ISearchError as e:  # the socket still serves; the page can be started later
            log.error("the web page is not served: %s", e.message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
