"""Daemon lifecycle: clean stop, one daemon per home and per socket, stale files, a model or an
optional package that cannot load, crashes mid-add."""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from daemons import FIXTURES, DaemonProcess, short_tmpdir
from shapes import CLASSES, render

from isearchd.errors import ISearchError, ServiceError, ServiceNotRunning
from isearchd.reports import Progress

N_LARGE = 320


@pytest.fixture(scope="module")
def large_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320 distinct small images: an add that takes a while and commits in many batches."""
    folder = tmp_path_factory.mktemp("large")
    for i in range(N_LARGE):
        colour, shape = CLASSES[i % len(CLASSES)]
        render(colour, shape, 20_000 + i, 64).save(folder / f"{i:04d}_{colour}_{shape}.png")
    return folder


def test_sigterm_stops_cleanly_and_data_survives(make_daemon: Any, large_folder: Path) -> None:
    d: DaemonProcess = make_daemon().start()
    files = sorted(large_folder.iterdir())[:40]
    with d.client() as c:
        assert c.add_images([str(f) for f in files]) == 40
    assert Path(d.bind).exists() and d.pid_file.exists()
    assert d.stop(signal.SIGTERM) == 0
    assert not Path(d.bind).exists(), "socket file left behind"
    assert not d.pid_file.exists(), "pid file left behind"
    assert "stopped" in d.output() and "Traceback" not in d.output()
    with pytest.raises(ServiceNotRunning, match="not running"):
        d.client().hello()

    d2: DaemonProcess = make_daemon(d.root).start()  # same home again
    with d2.client() as c:
        assert c.get_db_info()["size"] == 40
        assert c.search(str(files[0]), num=1) == [(str(files[0]), 100.0)]
    assert d2.stop(signal.SIGINT) == 0


def test_one_daemon_per_home_and_per_socket(make_daemon: Any) -> None:
    first: DaemonProcess = make_daemon().start()
    # same home, another socket: the pid-file lock refuses at once
    same_home: DaemonProcess = make_daemon(first.root, bind=str(first.root / "other.sock"))
    assert same_home.spawn().wait(60) == 1
    assert "already running" in same_home.output() and str(first.proc.pid) in same_home.output()  # type: ignore[union-attr]
    # another home, same socket: refused before loading the model
    other_root = short_tmpdir()
    same_socket: DaemonProcess = make_daemon(other_root, bind=first.bind)
    try:
        assert same_socket.spawn().wait(60) == 1
        assert f"already running at {first.bind}" in same_socket.output()
    finally:
        import shutil

        shutil.rmtree(other_root, ignore_errors=True)
    # the first one is untouched
    with first.client() as c:
        assert c.status().pid == first.proc.pid  # type: ignore[union-attr]
    assert first.pid_file.read_text().strip() == str(first.proc.pid)  # type: ignore[union-attr]
    assert first.stop() == 0


def test_stale_socket_and_pid_file_are_taken_over(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    d.home.mkdir(parents=True)
    d.pid_file.write_text("999999\n")  # a crashed daemon's pid file: no lock held
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(d.bind)  # a socket file nobody listens on
    leftover.close()
    assert stat.S_ISSOCK(os.lstat(d.bind).st_mode)
    d.start()
    assert d.pid_file.read_text().strip() == str(d.proc.pid)  # type: ignore[union-attr]
    assert d.stop() == 0


def test_a_regular_file_at_the_socket_path_is_not_deleted(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    Path(d.bind).write_text("precious")
    assert d.spawn().wait(60) == 1
    assert "is not a socket" in d.output()
    assert Path(d.bind).read_text() == "precious"


def test_a_model_that_cannot_load_exits_1_with_the_reason(make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(model=str(tmp_path / "nothing-here.pt"))
    assert d.spawn().wait(120) == 1
    out = d.output()
    assert "cannot load model" in out and "nothing-here.pt" in out
    assert "Traceback" not in out
    assert not Path(d.bind).exists() and not d.pid_file.exists()


@pytest.mark.parametrize(
    ("package", "flag", "says", "analysis"),
    [
        ("dlib", "people", ["people are off: the face models need dlib",
                            "pip install dlib-bin face-recognition-models"], "faces"),
        ("rapidocr", "words", ["words in pictures are off: reading words needs rapidocr",
                               "pip install rapidocr"], "words"),
    ],
)  # fmt: skip
def test_without_the_package_the_daemon_starts_with_the_analysis_off_and_says_why(
    make_daemon: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    package: str,
    flag: str,
    says: list[str],
    analysis: str,
) -> None:
    """A shim on the daemon's PYTHONPATH (in front of what is there) makes the optional package
    fail to import: the daemon still starts, says why the analysis is off and how to get it, and
    reads nothing."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / f"{package}.py").write_text(f"raise ImportError('no {package} on this machine')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    )
    d: DaemonProcess = make_daemon(**{flag: True}).start()
    for line in says:
        assert line in d.output()
    with d.client("off") as c:
        c.add_images([str(FIXTURES / "faces" / "img1.jpg")])
        assert analysis not in c.status().analyses
    assert d.stop() == 0, d.output()


def _add_and_kill(d: DaemonProcess, folder: Path, sig: int) -> tuple[list[Progress], BaseException | None]:
    """Add ``folder``; send ``sig`` to the daemon when the first batch is acknowledged."""
    events: list[Progress] = []
    outcome: list[BaseException | None] = []

    def on_progress(p: Progress) -> None:
        events.append(p)
        if len(events) == 1:
            assert d.proc is not None
            os.kill(d.proc.pid, sig)

    def run() -> None:
        try:
            with d.client() as c:
                c.add_images([str(folder)], progress=on_progress)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(300)
    assert not t.is_alive()
    return events, outcome[0]


def test_sigkill_during_add_loses_nothing_acknowledged(make_daemon: Any, large_folder: Path) -> None:
    d: DaemonProcess = make_daemon().start()
    events, error = _add_and_kill(d, large_folder, signal.SIGKILL)
    assert d.proc is not None and d.proc.wait(30) == -signal.SIGKILL
    assert isinstance(error, ServiceError), f"the client must see an error, not success: {error!r}"
    acknowledged = max(e.added for e in events)
    assert 0 < acknowledged < N_LARGE

    d2: DaemonProcess = make_daemon(d.root).start()  # stale socket and pid file from the kill
    with d2.client() as c:
        present = c.get_db_info()["size"]
        assert acknowledged <= present < N_LARGE
        # the first batch (files are walked in name order) was acknowledged, so it is searchable
        first = large_folder / sorted(p.name for p in large_folder.iterdir())[0]
        assert c.search(str(first), num=1) == [(str(first), 100.0)]
        assert c.add_images([str(large_folder)]) == N_LARGE - present
        assert c.last_add.skipped == present  # type: ignore[union-attr]
        assert c.get_db_info()["size"] == N_LARGE
    assert d2.stop() == 0


def test_sigterm_during_add_abandons_cleanly(make_daemon: Any, large_folder: Path) -> None:
    d: DaemonProcess = make_daemon().start()
    events, error = _add_and_kill(d, large_folder, signal.SIGTERM)
    assert d.proc is not None and d.proc.wait(60) == 0
    acknowledged = max(e.added for e in events)
    if error is not None:  # abandoned at a batch boundary: an error naming what was committed
        assert isinstance(error, ISearchError) and error.code in ("busy", "service_error"), error
    assert not Path(d.bind).exists() and not d.pid_file.exists()

    d2: DaemonProcess = make_daemon(d.root).start()
    with d2.client() as c:
        present = c.get_db_info()["size"]
        assert present >= acknowledged
        if error is None:
            assert present == N_LARGE
    assert d2.stop() == 0
