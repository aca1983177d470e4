"""Running real ``isearchd`` subprocesses for the integration tests (used by conftest.py).

``DaemonProcess`` runs ``python -m isearchd`` as a subprocess on its own temporary data home and
socket, serving the bundled tiny test model (``tests/fixtures/tiny-clip.pt``), and waits until it
answers ``hello``. The module-scoped ``daemon`` fixture shares one daemon between the tests of a
module (each test uses its own database name), since starting one costs a few seconds of torch
import; lifecycle tests start their own.

Unix socket paths are limited to ~107 bytes, so daemon homes live in short ``/tmp/isd-*`` folders.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from isearchd.client import Client
from isearchd.errors import ServiceNotRunning

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
# ISEARCH_TEST_MODEL lets a developer point the suite at another checkpoint (e.g. while the
# fixture is being retrained); CI always uses the committed one.
TINY_MODEL = Path(os.environ.get("ISEARCH_TEST_MODEL") or FIXTURES / "tiny-clip.pt")
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
from tinycache import tiny_cache  # noqa: E402


def short_tmpdir(prefix: str = "isd-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """One ``isearchd`` subprocess on ``home`` listening on ``bind``."""

    def __init__(
        self,
        root: Path,
        *,
        bind: str | None = None,
        token: str | None = None,
        model: Path | str = TINY_MODEL,
        extra_args: tuple[str, ...] = (),
        own_cache: bool = False,
        people: bool = False,
        words: bool = False,
    ) -> None:
        """``own_cache``: a weights cache of its own (empty), instead of the session's, which holds
        the tiny model's export already (``tinycache``). ``people``: find faces (off by default
        here: the tiny model's coloured shapes have none, and reading them costs time). ``words``: read the
        words in the pictures (off by default here for the same reason)."""
        self.root = root
        self.home = root / "home"
        self.bind = bind or str(root / "s.sock")
        self.token = token
        self.model = str(model)
        self.extra_args = extra_args
        self.own_cache = own_cache
        self.people = people
        self.words = words
        self.log_file = root / "daemon.out"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.home / "isearchd.pid"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ISEARCH_HOME"] = str(self.home)
        shared = self.model == str(TINY_MODEL) and not self.own_cache
        env["ISEARCH_CACHE"] = str(tiny_cache(TINY_MODEL) if shared else self.root / "cache")
        env["ISEARCH_CONFIG"] = str(self.root / "config.toml")
        env.pop("ISEARCH_TOKEN", None)
        env["ISEARCH_PEOPLE"] = "1" if self.people else "0"
        env["ISEARCH_WORDS"] = "1" if self.words else "0"
        if self.token is not None:
            env["ISEARCH_TOKEN"] = self.token
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "isearchd",
            "--bind",
            self.bind,
            "--model",
            self.model,
            "--home",
            str(self.home),
            "--log-level",
            "info",
            *self.extra_args,
        ]

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(), env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=self.root
            )
        return self.proc

    def start(self) -> DaemonProcess:
        if not Path(self.model).exists():
            pytest.fail(f"the tiny test model is missing at {self.model} (tests/fixtures/train_tiny_clip.py)")
        self.spawn()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"isearchd exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with self.client() as c:
                    c.hello()
                return
            except ServiceNotRunning:
                time.sleep(0.2)
        raise AssertionError(f"isearchd did not answer within {timeout} s:\n{self.output()}")

    def client(
        self, db_name: str = "default", *, token: str | None = None, timeout: float | None = 120
    ) -> Client:
        return Client(db_name=db_name, bind=self.bind, timeout=timeout, token=token or self.token or "")

    def output(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"isearchd did not stop within {timeout} s after {sig}:\n{self.output()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def module_daemon(kind: type[DaemonProcess] = DaemonProcess, **options: Any) -> Iterator[DaemonProcess]:
    """A daemon (``kind``, with its options) in a short temporary folder for a module's tests, as
    a fixture's body (``yield from module_daemon(people=True)``); it must stop cleanly after."""
    import shutil

    root = short_tmpdir()
    d = kind(root, **options).start()
    yield d
    try:
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def cli(d: DaemonProcess) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the real ``isearch`` command line against ``d``: ``cli(d)("people", "--json")``."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "isearchd.cli", *args, "-B", d.bind]
        return subprocess.run(argv, env=d.env(), capture_output=True, text=True, timeout=120)

    return run
