"""Watch building blocks without a daemon: filters, debounce, reconcile diff, job queue, catalog
moves, and the polling fallback (with a fake embedder and a real database)."""

from __future__ import annotations

import errno
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from isearchd.engine.jobqueue import JobQueue
from isearchd.errors import Busy, InvalidRequest
from isearchd.messages import Unwatched
from isearchd.reports import AddReport
from isearchd.store import Database, ImageRecord, Move, watched_folders
from isearchd.watch.debounce import Debouncer
from isearchd.watch.pathfilter import PathFilter, glob_to_regex, is_temp_name
from isearchd.watch.reconcile import WalkStopped, diff, walk_folder
from isearchd.watch.watcher import Watcher, WatchOptions

# -- filters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "temp"),
    [
        ("photo.jpg", False),
        ("photo.jpg.part", True),
        ("photo.jpg.crdownload", True),
        ("x.tmp", True),
        ("~$report.png", True),
        (".photo.jpg.Xa81b", True),
        ("backup.png~", True),
        ("tilde~name.png", False),
    ],
)
def test_temp_names(name: str, temp: bool) -> None:
    assert is_temp_name(name) is temp


def test_path_filter_rules() -> None:
    f = PathFilter("/w", ["**/raw/**", "*.psd.png", "cache", "/top-only/*.png", "**/*.tmp.jpg"])
    wants = {
        "/w/a.jpg": True,
        "/w/sub/deep/B.PNG": True,
        "/w/a.txt": False,
        "/w/.hidden.jpg": False,
        "/w/.thumbs/a.jpg": False,
        "/w/dl.jpg.part": False,
        "/w/raw/a.jpg": False,
        "/w/x/raw/a.jpg": False,
        "/w/x/rawish/a.jpg": True,
        "/w/art.psd.png": False,
        "/w/d/art.psd.png": False,
        "/w/cache/a.jpg": False,
        "/w/d/cache/a.jpg": False,
        "/w/top-only/a.png": False,
        "/w/d/top-only/a.png": True,
        "/w/d/e/f.tmp.jpg": False,
        "/w/f.tmp.jpg": False,
        "/other/a.jpg": False,
        "/wx/a.jpg": False,
        "/w": False,
    }
    for path, expected in wants.items():
        assert f.wants_file(path) is expected, path
    assert f.skip_dir("/w/raw") and f.skip_dir("/w/a/raw") and f.skip_dir("/w/.git")
    assert not f.skip_dir("/w") and not f.skip_dir("/w/photos")
    assert f.contains("/w/a") and not f.contains("/wx")


def test_glob_regex() -> None:
    assert glob_to_regex("*.jpg").match("a/b/c.jpg")
    assert not glob_to_regex("a/*.jpg").match("a/b/c.jpg")
    assert glob_to_regex("a/**/c.jpg").match("a/c.jpg")
    assert glob_to_regex("a/**/c.jpg").match("a/x/y/c.jpg")
    assert glob_to_regex("img_[0-9].png").match("img_3.png")
    assert not glob_to_regex("img_[!0-9].png").match("img_3.png")
    assert glob_to_regex("?.png").match("x.png") and not glob_to_regex("?.png").match("xy.png")


# -- debounce -------------------------------------------------------------------------------------


class FakeFiles:
    def __init__(self) -> None:
        self.now = 0.0
        self.sigs: dict[str, tuple[int, int]] = {}

    def stat(self, path: str) -> tuple[int, int] | None:
        return self.sigs.get(path)

    def clock(self) -> float:
        return self.now


def test_debounce_waits_until_size_and_mtime_hold_still() -> None:
    fs = FakeFiles()
    d = Debouncer(1.0, stat=fs.stat, clock=fs.clock)
    fs.sigs["/a.jpg"] = (10, 1)
    d.touch("/a.jpg")
    assert d.pop_ready() == [] and d.next_check_in() == 1.0
    # still growing: checked after the interval, then the wait restarts
    for t, size in [(1.0, 20), (2.0, 30), (3.0, 40)]:
        fs.now = t
        fs.sigs["/a.jpg"] = (size, int(t * 10))
        assert d.pop_ready() == []
    fs.now = 3.5
    assert d.pop_ready() == []  # too early
    fs.now = 4.0
    assert d.pop_ready() == ["/a.jpg"]
    assert d.pop_ready() == [] and len(d) == 0  # handed on once


def test_debounce_events_restart_the_wait_and_deletes_drop() -> None:
    fs = FakeFiles()
    d = Debouncer(1.0, stat=fs.stat, clock=fs.clock)
    fs.sigs.update({"/d/a.jpg": (1, 1), "/d/b.jpg": (1, 1), "/c.jpg": (1, 1)})
    for p in fs.sigs:
        d.touch(p)
    fs.now = 0.9
    d.touch("/c.jpg")  # another write event
    fs.now = 1.0
    del fs.sigs["/d/b.jpg"]  # gone before it settled
    assert d.pop_ready() == ["/d/a.jpg"]
    assert "/d/b.jpg" not in d and "/c.jpg" in d
    fs.now = 2.0
    assert d.pop_ready() == ["/c.jpg"]


def test_debounce_moves() -> None:
    fs = FakeFiles()
    d = Debouncer(1.0, stat=fs.stat, clock=fs.clock)
    fs.sigs.update({"/d/a.jpg": (1, 1), "/x.part": (1, 1)})
    d.touch("/d/a.jpg")
    d.touch("/x.part")
    fs.sigs["/e/a.jpg"] = (1, 1)
    fs.sigs["/x.jpg"] = (1, 1)
    assert d.move_prefix("/d", "/e") == 1
    assert d.move("/x.part", "/x.jpg")
    assert d.discard_prefix("/nothing") == 0
    fs.now = 1.0
    assert d.pop_ready() == ["/e/a.jpg", "/x.jpg"]


# -- reconcile ------------------------------------------------------------------------------------


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_walk_skips_hidden_temp_and_symlinked_folders(tmp_path: Path) -> None:
    root = tmp_path / "w"
    _write(root / "a.jpg")
    _write(root / "s" / "b.png", b"yy")
    _write(root / ".hidden" / "c.jpg")
    _write(root / "d.jpg.part")
    _write(root / "notes.txt")
    (root / "s" / "loop").symlink_to(root)  # a loop: never followed
    (root / "link.jpg").symlink_to(root / "a.jpg")  # a file link: indexed
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    walked = walk_folder(str(root), PathFilter(str(root)))
    assert sorted(walked.files) == [str(root / "a.jpg"), str(root / "link.jpg"), str(root / "s" / "b.png")]
    assert walked.files[str(root / "s" / "b.png")][0] == 2
    assert walked.unreadable == []


def test_walk_stops_on_request(tmp_path: Path) -> None:
    for i in range(600):
        _write(tmp_path / f"{i}.jpg")
    stop = threading.Event()
    stop.set()
    with pytest.raises(WalkStopped):
        walk_folder(str(tmp_path), PathFilter(str(tmp_path)), stop)


def test_diff(tmp_path: Path) -> None:
    root = tmp_path
    same = _write(root / "same.jpg")
    changed = _write(root / "changed.jpg")
    new = _write(root / "new.jpg")
    walked = walk_folder(str(root), PathFilter(str(root)))
    s_same, s_changed = walked.files[str(same)], walked.files[str(changed)]
    records = [
        (str(same), str(same), *s_same),
        (str(changed), str(changed), s_changed[0] + 1, s_changed[1]),
        (str(root / "gone.jpg"), str(root / "gone.jpg"), 1, 1),
        ("name-label.jpg", str(root / "other.jpg"), 1, 1),  # not the watch's: kept
        (str(root / "locked" / "x.jpg"), str(root / "locked" / "x.jpg"), 1, 1),
    ]
    walked.unreadable.append((str(root / "locked"), "permission denied"))
    d = diff(walked, records)
    assert d.to_index == sorted([str(changed), str(new)])
    assert d.vanished == [str(root / "gone.jpg")]
    assert d.unchanged == 1


# -- job queue ------------------------------------------------------------------------------------


def test_job_queue_runs_in_order_with_back_pressure() -> None:
    q = JobQueue(maxsize=2)
    gate = threading.Event()
    order: list[int] = []
    try:
        first = q.submit(lambda: gate.wait(10), "block")
        time.sleep(0.05)
        jobs = [q.submit(lambda i=i: order.append(i) or i, f"j{i}") for i in range(2)]  # fills the queue
        blocked = threading.Event()
        done = threading.Event()

        def producer() -> None:
            blocked.set()
            q.submit(lambda: order.append(99), "late")
            done.set()

        t = threading.Thread(target=producer)
        t.start()
        blocked.wait(5)
        time.sleep(0.3)
        assert not done.is_set()  # the full queue makes the producer wait: nothing dropped
        assert len(q) == 3
        gate.set()
        first.wait(5)
        assert [j.wait(5) for j in jobs] == [0, 1]
        t.join(5)
        assert done.is_set()
        deadline = time.monotonic() + 5
        while order != [0, 1, 99] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert order == [0, 1, 99]
        with pytest.raises(ZeroDivisionError):
            q.run(lambda: 1 // 0)
    finally:
        q.close(5)
    with pytest.raises(Busy):
        q.submit(lambda: None)


# -- catalog moves --------------------------------------------------------------------------------


def _rec(label: str, h: str, seed: int, path: str | None = None) -> ImageRecord:
    vec = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return ImageRecord(label, path or label, 10, 20, h, vec)


def test_rename_and_move_prefix_keep_vectors(tmp_path: Path) -> None:
    db = Database.open(tmp_path, "m", model_key="fake", dim=8)
    try:
        db.add([_rec("/w/a.jpg", "ha", 1), _rec("/w/d/b.jpg", "hb", 2), _rec("/w/d/e/c.jpg", "hc", 3)])
        db.add([_rec("/w/target.jpg", "ht", 4), _rec("name.jpg", "hn", 5, "/w/d/name.jpg")])
        vec_a = db.get("/w/a.jpg").vector  # type: ignore[union-attr]
        # a rename over an existing file replaces its row
        assert db.rename([Move("/w/a.jpg", "/w/target.jpg", 11, 21)]) == 1
        got = db.get("/w/target.jpg")
        assert got is not None and got.content_hash == "ha" and (got.size, got.mtime_ns) == (11, 21)
        assert np.array_equal(got.vector, vec_a) and db.get("/w/a.jpg") is None
        assert db.count() == 4
        # a folder move: every row below it in one transaction; a name label keeps its label
        assert db.move_prefix("/w/d", "/w/moved") == 3
        labels = sorted(r.label for r in db.records())
        assert labels == ["/w/moved/b.jpg", "/w/moved/e/c.jpg", "/w/target.jpg", "name.jpg"]
        assert db.get("name.jpg").path == "/w/moved/name.jpg"  # type: ignore[union-attr]
        assert db.count_below("/w/moved") == 3
        assert db.rename([Move("/w/missing.jpg", "/w/x.jpg")]) == 0
        hits = db.search(vec_a, k=1)
        assert hits[0].label == "/w/target.jpg"  # the index follows the catalog
    finally:
        db.close()
    db = Database.open(tmp_path, "m", model_key="fake", dim=8)  # and survives a reopen
    try:
        assert db.count() == 4 and len(db.index_ids()) == 4
    finally:
        db.close()


# -- the watcher with a fake embedder: polling fallback when inotify is exhausted ---------------------


class FakeHost:
    """The engine's role: a real database, a fake embedding (a hash of the bytes)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.jobs = JobQueue()
        self.dbs: dict[str, Database] = {}
        self.embedded: list[str] = []

    def watched_folders(self, name: str) -> list[dict[str, Any]]:
        return watched_folders(self.home, name)

    def database(self, name: str, *, create: bool) -> Database:
        if name not in self.dbs:
            self.dbs[name] = Database.open(self.home, name, model_key="fake", dim=8)
        return self.dbs[name]

    def index_paths(self, db: Database, paths: Sequence[str], cancel: threading.Event | None) -> AddReport:
        records = []
        for p in paths:
            data = Path(p).read_bytes()
            st = Path(p).stat()
            h = hashlib.blake2b(data, digest_size=16).hexdigest()
            existing = db.get(p)
            if existing is not None and (existing.size, existing.mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            vec = db.vector_for_hash(h)
            if vec is None:
                self.embedded.append(p)
                seed = int(h[:8], 16)
                vec = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
            records.append(ImageRecord(p, p, st.st_size, st.st_mtime_ns, h, vec))
        db.add(records)
        return AddReport(added=len(records))

    def close(self) -> None:
        self.jobs.close(5)
        for db in self.dbs.values():
            db.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    h = FakeHost(tmp_path / "home")
    yield h
    h.close()


def _exhausted_inotify() -> Any:
    from watchdog.observers import Observer

    class Exhausted(Observer):  # type: ignore[misc,valid-type]
        def schedule(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    return Exhausted()


def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_inotify_exhausted_falls_back_to_polling(host: FakeHost, tmp_path: Path) -> None:
    root = tmp_path / "w"
    _write(root / "a.jpg", b"aaa")
    opts = WatchOptions(settle_s=0.2, poll_interval_s=0.2, tick_s=0.05)
    watcher = Watcher(host, opts, inotify_factory=_exhausted_inotify)
    try:
        fw = watcher.start_folder("db", str(root), [], "catalog")
        _until(lambda: fw.state == "polling")
        assert fw.mode == "polling" and "max_user_watches" in fw.reason
        db = host.database("db", create=True)
        assert {r.label for r in db.records()} == {str(root / "a.jpg")}
        # the polling observer sees a new file, a rename (no re-embedding) and a delete
        _write(root / "b.jpg", b"bbb")
        _until(lambda: db.get(str(root / "b.jpg")) is not None)
        (root / "b.jpg").rename(root / "c.jpg")
        (root / "a.jpg").unlink()
        _until(lambda: {r.label for r in db.records()} == {str(root / "c.jpg")})
        assert host.embedded == [str(root / "a.jpg"), str(root / "b.jpg")]
        _until(lambda: watcher.folders()[0].pending == 0)
        listed = watcher.folders()
        assert listed[0].state == "polling" and listed[0].images == 1 and listed[0].mode == "polling"
    finally:
        watcher.stop()


def test_missing_folder_keeps_images_and_recovers(host: FakeHost, tmp_path: Path) -> None:
    root = tmp_path / "drive"
    _write(root / "a.jpg", b"aaa")
    opts = WatchOptions(settle_s=0.1, tick_s=0.05, retry_s=0.2)
    watcher = Watcher(host, opts)
    try:
        fw = watcher.start_folder("db", str(root), [], "catalog")
        _until(lambda: fw.state == "watching")
        db = host.database("db", create=True)
        _until(lambda: db.count() == 1)
        moved = tmp_path / "unmounted"
        root.rename(moved)  # like an unmounted drive: the images must stay
        _until(lambda: fw.state == "error")
        assert "not found" in fw.reason and db.count() == 1
        moved.rename(root)
        _until(lambda: fw.state == "watching")
        _write(root / "b.jpg", b"bbb")
        _until(lambda: db.count() == 2)
    finally:
        watcher.stop()


def test_watch_options_from_env() -> None:
    opts = WatchOptions.from_env({"ISEARCH_WATCH_POLLING": "1", "ISEARCH_WATCH_SETTLE_S": "0.3"})
    assert opts.force_polling and opts.settle_s == 0.3
    assert not WatchOptions.from_env({}).force_polling
    with pytest.raises(InvalidRequest):
        WatchOptions.from_env({"ISEARCH_WATCH_SETTLE_S": "soon"})


def test_unreadable_folder_is_reported_and_its_rows_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import isearchd.watch.reconcile as reconcile

    root = tmp_path / "w"
    _write(root / "ok.jpg")
    locked = root / "locked"
    _write(locked / "secret.jpg")
    real_scandir = reconcile.os.scandir

    def scandir(path: Any) -> Any:  # root may read every folder: simulate chmod 000
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(reconcile.os, "scandir", scandir)
    walked = walk_folder(str(root), PathFilter(str(root)))
    assert list(walked.files) == [str(root / "ok.jpg")]
    assert walked.unreadable == [(str(locked), "permission denied")]
    secret = str(locked / "secret.jpg")
    d = diff(walked, [(secret, secret, 1, 1)])
    assert d.vanished == []  # not seen is not deleted


def test_same_folder_in_two_databases(host: FakeHost, tmp_path: Path) -> None:
    root = tmp_path / "shared"
    _write(root / "a.jpg", b"aaa")
    watcher = Watcher(host, WatchOptions(settle_s=0.1, tick_s=0.05))
    try:
        watcher.watch("one", [str(root)], [])
        watcher.watch("two", [str(root)], [])
        one, two = host.database("one", create=True), host.database("two", create=True)
        _until(lambda: one.count() == 1 and two.count() == 1)
        assert watcher.unwatch("one", str(root)) == Unwatched(path=str(root), db="one", removed=0)
        _write(root / "b.jpg", b"bbb")  # the other database keeps receiving events
        _until(lambda: two.count() == 2)
        assert one.count() == 1 and one.folders() == [] and [f.path for f in two.folders()] == [str(root)]
    finally:
        watcher.stop()
