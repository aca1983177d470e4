"""One ``FolderWatch`` driven through its protocols only (``isearchd.watch.host``): no ``Watcher``.

A real polling observer, a real database and job queue, a fake indexer that cannot read files
named ``bad*``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from isearchd.engine.jobqueue import JobQueue
from isearchd.reports import AddReport
from isearchd.store import Database, ImageRecord
from isearchd.watch.folder import FolderWatch
from isearchd.watch.options import WatchOptions


class Host:
    def __init__(self, home: Path) -> None:
        self.jobs = JobQueue()
        self.db = Database.open(home, "db", model_key="fake", dim=8)

    def database(self, name: str, *, create: bool) -> Database:
        assert name == "db"
        return self.db

    def index_paths(self, db: Database, paths: Sequence[str], cancel: threading.Event | None) -> AddReport:
        failed = [(p, "cannot decode") for p in paths if Path(p).name.startswith("bad")]
        vec = np.ones(8, dtype=np.float32)
        good = [ImageRecord(p, p, 1, 1, p, vec) for p in paths if not Path(p).name.startswith("bad")]
        db.add(good)
        return AddReport(added=len(good), failed=failed)


class Observers:
    """One polling observer; no other folder shares its watches."""

    def __init__(self) -> None:
        self.polling = PollingObserver(timeout=0.1)
        self.polling.start()
        self.asked: list[str] = []
        self.unscheduled: list[object] = []

    def observer(self, kind: str) -> BaseObserver:
        self.asked.append(kind)
        return self.polling

    def shares_watch(self, folder: object, observer: BaseObserver, watch: ObservedWatch) -> bool:
        self.unscheduled.append(folder)
        return False


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path / "home")
    yield h
    h.jobs.close(5)
    h.db.close()


@pytest.fixture
def observers() -> Iterator[Observers]:
    o = Observers()
    yield o
    o.polling.stop()
    o.polling.join(5)


def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_a_folder_watch_needs_only_its_protocols(host: Host, observers: Observers, tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (root / "bad.jpg").write_bytes(b"?")
    opts = WatchOptions(settle_s=0.1, poll_interval_s=0.1, tick_s=0.05, force_polling=True)
    fw = FolderWatch(host, observers, opts, "db", str(root), [], "catalog")
    fw.start()
    try:
        _until(lambda: fw.state == "polling")
        assert observers.asked == ["polling"] and "forced" in fw.reason
        (watch,) = [e.watch for e in observers.polling.emitters]
        assert fw.uses_watch(observers.polling, watch)
        bad = str(root / "bad.jpg")
        assert fw.failures() == [(bad, "cannot decode")] and fw.failure_count() == 1
        info = fw.describe(None)
        assert (info.indexed, info.failed, info.failed_files) == (1, 1, 1)
        assert info.last_failure == (bad, "cannot decode") and info.pending == 0
        # a live change: the bad file deleted (its failure is forgotten), a new one indexed
        (root / "b.jpg").write_bytes(b"b")  # first: on bad.jpg's freed inode, polling would see a move
        (root / "bad.jpg").unlink()
        _until(lambda: fw.failure_count() == 0 and host.db.get(str(root / "b.jpg")) is not None)
        assert fw.describe(None).indexed == 2
    finally:
        fw.stop()
    assert observers.unscheduled == [fw]  # asked whether another folder shares the watch: no
    assert not fw.uses_watch(observers.polling, watch) and not observers.polling.emitters
