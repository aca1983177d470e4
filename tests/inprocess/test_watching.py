"""Watched folders through the engine's watcher (in-process): real files, real file-system events,
the tiny test model.

Each change on disk must show up in the database (read straight from its catalog, so the test
sees exactly what is stored) within a deadline; the tests poll, they never sleep a fixed time.
The settle interval is 0.4 s. What needs a daemon process (a kill -9, the config file's folders,
polling over TCP) is in tests/integration/test_watch.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from harness import InProcessDaemon, short_tmpdir
from shapes import render
from watching import folder_state, img, on_disk, stored, top_label, wait_for, wait_synced

from isearchd.errors import InvalidRequest, NotFound
from isearchd.messages import Unwatched

SETTLE_S = 0.4  # InProcessDaemon's default WatchOptions


@pytest.fixture(scope="module")
def wd(daemon: InProcessDaemon) -> InProcessDaemon:
    """The module's daemon (it listens on its socket too, for the CLI test)."""
    return daemon


@pytest.fixture
def make_wd(make_daemon: Callable[..., InProcessDaemon]) -> Callable[..., InProcessDaemon]:
    return make_daemon


# -- live changes (inotify) ------------------------------------------------------------------------


def test_live_changes_are_reflected(wd: InProcessDaemon, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    img(pics / "red.png", "red", "circle", 1)
    img(pics / "a" / "blue.png", "blue", "star", 2)
    outside = tmp_path / "outside"
    db = "live"
    with wd.client(db) as c:
        res = c.watch([str(pics)])
        assert res[0].path == str(pics) and res[0].db == db
        wait_synced(c, wd, db, pics)
        st = folder_state(c, pics)
        assert st.mode == "inotify" and st.images == 2 and st.source == "catalog"

        # create (direct write, several events) -> one row
        render("green", "square", 3).save(pics / "green.png")
        wait_synced(c, wd, db, pics)
        assert top_label(c, "a green square") == str(pics / "green.png")

        # modify: new content under the same name
        render("yellow", "cross", 4).save(pics / "green.png")
        wait_synced(c, wd, db, pics)
        assert top_label(c, "a yellow cross") == str(pics / "green.png")

        # rename, then move between subfolders: the row follows, its vector is kept
        before = folder_state(c, pics).indexed
        (pics / "green.png").rename(pics / "renamed.png")
        wait_synced(c, wd, db, pics)
        (pics / "renamed.png").rename(pics / "a" / "moved.png")
        wait_synced(c, wd, db, pics)
        st = folder_state(c, pics)
        assert st.moved >= 2 and st.indexed == before  # nothing embedded again
        assert top_label(c, "a yellow cross") == str(pics / "a" / "moved.png")

        # delete a file
        (pics / "red.png").unlink()
        wait_synced(c, wd, db, pics)

        # a folder of images moved in from outside, renamed inside, then moved out again
        for i in range(12):
            img(outside / "trip" / f"p{i}.png", "purple", "triangle", 100 + i)
        shutil.move(str(outside / "trip"), str(pics / "trip"))
        wait_synced(c, wd, db, pics)
        assert len(stored(wd.home, db)) == 2 + 12
        (pics / "trip").rename(pics / "trip-2024")
        wait_synced(c, wd, db, pics)
        assert folder_state(c, pics).indexed == before + 12  # the folder rename embedded nothing
        shutil.move(str(pics / "trip-2024"), str(outside / "back"))
        wait_synced(c, wd, db, pics)
        assert not any("trip" in label for label in stored(wd.home, db))

        # delete a whole subfolder
        shutil.rmtree(pics / "a")
        wait_synced(c, wd, db, pics)
        assert stored(wd.home, db) == {}

        # hidden, temporary and non-image files are ignored
        (pics / ".hidden.png").write_bytes((outside / "back" / "p0.png").read_bytes())
        (pics / "download.png.part").write_bytes(b"partial")
        (pics / "~$lock.png").write_bytes(b"lock")
        (pics / "notes.txt").write_text("hello")
        img(pics / "last.png", "orange", "star", 9)
        wait_synced(c, wd, db, pics)
        assert set(stored(wd.home, db)) == {str(pics / "last.png")}


def test_slow_writer_is_embedded_once_when_complete(wd: InProcessDaemon, tmp_path: Path) -> None:
    pics = tmp_path / "slow"
    pics.mkdir()
    db = "slow"
    src = tmp_path / "big.jpg"
    render("blue", "circle", 7, 256).save(src, quality=95)
    data = src.read_bytes()
    with wd.client(db) as c:
        c.watch([str(pics)])
        wait_synced(c, wd, db, pics)
        target = pics / "camera.jpg"
        chunks = 12
        step = -(-len(data) // chunks)
        with target.open("wb") as fh:  # ~3 s of writing, a chunk every 0.25 s
            for i in range(chunks):
                fh.write(data[i * step : (i + 1) * step])
                fh.flush()
                time.sleep(0.25)
                assert str(target) not in stored(wd.home, db), "embedded before the write completed"
        wait_synced(c, wd, db, pics)
        time.sleep(SETTLE_S * 3)  # would a second embedding follow?
        st = folder_state(c, pics)
        assert st.indexed == 1 and st.failed == 0
        assert stored(wd.home, db) == on_disk(pics)


def test_500_files_dropped_at_once(wd: InProcessDaemon, tmp_path: Path) -> None:
    pics = tmp_path / "drop"
    pics.mkdir()
    db = "drop"
    staging = tmp_path / "staging"
    staging.mkdir()
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    for i in range(500):
        render(colours[i % 6], "square", 2000 + i, 32).save(staging / f"s{i:03d}.png")
    with wd.client(db) as c:
        c.watch([str(pics)])
        wait_synced(c, wd, db, pics)
        for p in sorted(staging.iterdir()):  # copied in one after the other, as a file manager does
            shutil.copyfile(p, pics / p.name)
        wait_synced(c, wd, db, pics, timeout=120)
        st = folder_state(c, pics)
        assert st.images == 500 and len(stored(wd.home, db)) == 500
        assert st.indexed == 500 and st.failed == 0  # each file embedded exactly once
        assert c.status().queue == 0


def test_watch_errors_and_unwatch(wd: InProcessDaemon, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    img(pics / "sub" / "x.png", "red", "star", 1)
    db = "errs"
    with wd.client(db) as c:
        with pytest.raises(NotFound):
            c.watch([str(tmp_path / "missing")])
        with pytest.raises(InvalidRequest, match="folders"):
            c.watch([str(pics / "sub" / "x.png")])
        c.watch([str(pics)], exclude=["**/raw/**"])
        with pytest.raises(InvalidRequest, match="inside"):
            c.watch([str(pics / "sub")])
        wait_synced(c, wd, db, pics)
        img(pics / "raw" / "r.png", "blue", "cross", 2)
        img(pics / "y.png", "green", "circle", 3)
        wait_for(lambda: str(pics / "y.png") in stored(wd.home, db), "y.png", wd)
        assert str(pics / "raw" / "r.png") not in stored(wd.home, db)
        assert folder_state(c, pics).exclude == ["**/raw/**"]

        # unwatch keeps the images (searchable), stops syncing; --purge removes them
        res = c.unwatch(str(pics))
        assert res == Unwatched(path=str(pics), db=db, removed=0)
        assert all(f.path != str(pics) for f in c.watch_list())
        assert len(stored(wd.home, db)) == 2
        img(pics / "z.png", "purple", "square", 4)
        time.sleep(SETTLE_S * 3)
        assert str(pics / "z.png") not in stored(wd.home, db)
        with pytest.raises(NotFound):
            c.unwatch(str(pics))
        c.watch([str(pics)], exclude=["**/raw/**"])
        wait_for(lambda: str(pics / "z.png") in stored(wd.home, db), "rescan on watch", wd)
        assert c.unwatch(str(pics), purge=True).removed == 3
        assert stored(wd.home, db) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_unreadable_folder_is_reported_not_fatal(wd: InProcessDaemon, tmp_path: Path) -> None:
    pics = tmp_path / "perm"
    img(pics / "ok.png", "red", "circle", 1)
    locked = pics / "locked"
    img(locked / "secret.png", "blue", "star", 2)
    locked.chmod(0)
    try:
        with wd.client("perm") as c:
            c.watch([str(pics)])
            wait_for(lambda: folder_state(c, pics).state == "watching", "watching", wd)
            st = folder_state(c, pics)
            assert st.error_count == 1 and st.errors[0][0] == str(locked)
            assert set(stored(wd.home, "perm")) == {str(pics / "ok.png")}
    finally:
        locked.chmod(0o755)


# -- restarts --------------------------------------------------------------------------------------


def test_reconcile_after_restart_matches_disk(
    make_wd: Callable[..., InProcessDaemon], tmp_path: Path
) -> None:
    root = short_tmpdir()
    try:
        pics = tmp_path / "pics"
        for i in range(20):
            img(pics / f"d{i % 3}" / f"f{i}.png", ["red", "green", "blue"][i % 3], "circle", 300 + i)
        d = make_wd(root).start()
        with d.client() as c:
            c.watch([str(pics)])
            wait_synced(c, d, "default", pics)
        assert d.stop() == 0

        # while the daemon is down: add, change, delete, rename, move a folder
        img(pics / "new.png", "yellow", "star", 1)
        render("orange", "cross", 2).save(pics / "d0" / "f0.png")
        (pics / "d1" / "f1.png").unlink()
        (pics / "d2" / "f2.png").rename(pics / "d2" / "f2-renamed.png")
        (pics / "d0").rename(pics / "d0-moved")
        shutil.rmtree(pics / "d1")

        d2 = make_wd(root)
        d2.start()
        with d2.client() as c:
            wait_synced(c, d2, "default", pics)  # the registered folder is watched again
            st = folder_state(c, pics)
            assert st.source == "catalog" and st.scan_seconds is not None
            assert top_label(c, "an orange cross") == str(pics / "d0-moved" / "f0.png")
            # live watching resumed after the reconcile
            img(pics / "after.png", "purple", "star", 5)
            wait_synced(c, d2, "default", pics)
        assert d2.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- polling fallback, config-file folders, TCP ----------------------------------------------------


# -- the CLI commands (cli_watch, mounted on a root app like isearch's) --------------------------------


def _cli_app() -> Any:
    from isearchd.cli.watch import register

    app = typer.Typer()

    @app.callback()
    def root(
        ctx: typer.Context,
        db: str | None = typer.Option(None, "-d", "--db"),
        bind: str | None = typer.Option(None, "-B", "--bind"),
    ) -> None:
        ctx.obj = {"db": db, "bind": bind}

    register(app)
    return app


def test_cli_watch_list_unwatch(wd: InProcessDaemon, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    pics = tmp_path / "cli"
    img(pics / "a.png", "red", "circle", 1)
    runner = CliRunner()
    app = _cli_app()
    res = runner.invoke(
        app, ["-B", wd.bind, "watch", str(pics), "-d", "cli", "--exclude", "*.raw.png", "--wait"]
    )
    assert res.exit_code == 0, res.output
    assert f'Watching {pics} for database "cli"' in res.output
    assert "watching" in res.output and "excluding *.raw.png" in res.output
    res = runner.invoke(app, ["-B", wd.bind, "-d", "cli", "watch", "--list", "--json"])
    assert res.exit_code == 0, res.output
    (folder,) = json.loads(res.output)
    assert folder["path"] == str(pics) and folder["images"] == 1 and folder["state"] == "watching"
    res = runner.invoke(app, ["-B", wd.bind, "-d", "cli", "watch", "--list"])
    assert res.output.splitlines()[0].split() == ["FOLDER", "DATABASE", "STATE", "IMAGES", "PENDING"]
    res = runner.invoke(app, ["-B", wd.bind, "unwatch", str(pics), "-d", "cli"])
    assert res.exit_code == 0 and "its images stay" in res.output, res.output
    assert stored(wd.home, "cli") == on_disk(pics)


def test_phone_formats_are_watched(wd: InProcessDaemon, tmp_path: Path) -> None:
    import pillow_heif

    pics = tmp_path / "DCIM"
    pics.mkdir()
    render("red", "circle", 1).save(pics / "IMG_0001.avif", "AVIF")
    pillow_heif.from_pillow(render("blue", "star", 2)).save(pics / "IMG_0002.heic")
    db = "phone"
    with wd.client(db) as c:
        c.watch([str(pics)])
        want = {str(pics / "IMG_0001.avif"), str(pics / "IMG_0002.heic")}
        wait_for(lambda: set(stored(wd.home, db)) == want, "the folder's HEIC and AVIF indexed", wd)
        # an iPhone import drops an upper-case .HEIC: written aside, then renamed into place
        tmp = pics / ".IMG_0003.HEIC.tmp"
        pillow_heif.from_pillow(render("green", "square", 3)).save(tmp)
        tmp.rename(pics / "IMG_0003.HEIC")
        want.add(str(pics / "IMG_0003.HEIC"))
        wait_for(lambda: set(stored(wd.home, db)) == want, "the new .HEIC indexed", wd)
        assert top_label(c, "a green square") == str(pics / "IMG_0003.HEIC")
