"""Watched folders where the daemon process matters: a kill -9 in the middle of a reconcile, the
config file's folders, polling over TCP (the watcher's behaviour itself is tested in-process, in
tests/inprocess/test_watching.py).

The tests poll the catalog until it matches the disk, never sleep a fixed time for the daemon. The
settle interval is shortened to 0.4 s through ``ISEARCH_WATCH_SETTLE_S``.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemons import DaemonProcess, free_tcp_port, module_daemon, short_tmpdir
from shapes import render
from watching import folder_state, img, stored, top_label, wait_for, wait_synced

from isearchd.client import Client
from isearchd.errors import InvalidRequest, PermissionDenied

SETTLE_S = "0.4"


class WatchDaemon(DaemonProcess):
    """A daemon with a short settle interval (and optionally forced polling)."""

    def __init__(self, root: Path, *, polling: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.polling = polling

    def env(self) -> dict[str, str]:
        env = super().env()
        env["ISEARCH_WATCH_SETTLE_S"] = SETTLE_S
        env.pop("ISEARCH_WATCH_POLLING", None)
        if self.polling:
            env["ISEARCH_WATCH_POLLING"] = "1"
            env["ISEARCH_WATCH_POLL_S"] = "0.5"
        return env


@pytest.fixture(scope="module")
def wd() -> Iterator[DaemonProcess]:
    yield from module_daemon(WatchDaemon)


@pytest.fixture
def make_wd() -> Iterator[Callable[..., WatchDaemon]]:
    made: list[WatchDaemon] = []
    roots: list[Path] = []

    def make(root: Path | None = None, **kwargs: Any) -> WatchDaemon:
        if root is None:
            root = short_tmpdir()
            roots.append(root)
        d = WatchDaemon(root, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)


def test_sigkill_during_reconcile_converges(make_wd: Callable[..., WatchDaemon], tmp_path: Path) -> None:
    root = short_tmpdir()
    try:
        pics = tmp_path / "many"
        pics.mkdir()
        for i in range(400):
            render(["red", "green", "blue"][i % 3], "star", 4000 + i, 128).save(pics / f"k{i:03d}.jpg")
        d = make_wd(root).start()
        with d.client() as c:
            c.watch([str(pics)])
            wait_for(lambda: len(stored(d.home, "default")) > 0, "first batch", d)
            # searches are answered while the reconcile is still indexing
            assert c.search("a red star", num=3)
        d.stop(signal.SIGKILL)
        partial = len(stored(d.home, "default"))
        # change things while it is down, then restart
        (pics / "k000.jpg").unlink()
        img(pics / "extra.png", "orange", "circle", 1)
        d2 = make_wd(root)
        d2.start()
        with d2.client() as c:
            wait_synced(c, d2, "default", pics, timeout=120)
            assert c.get_db_info()["size"] == 400
        assert d2.stop() == 0
        print(f"killed with {partial} of 400 images committed")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_polling_fallback_and_config_folders(make_wd: Callable[..., WatchDaemon], tmp_path: Path) -> None:
    root = short_tmpdir()
    try:
        pics = tmp_path / "polled"
        img(pics / "a.png", "red", "circle", 1)
        img(pics / "sub" / "b.png", "blue", "star", 2)
        (root / "config.toml").write_text(
            f'[[watch]]\npath = "{pics}"\ndb = "cfg"\nexclude = ["*.skip.png"]\n', encoding="utf-8"
        )
        port = free_tcp_port()
        d = make_wd(root, polling=True, bind=f"127.0.0.1:{port}").start()
        with Client("cfg", bind=f"127.0.0.1:{port}", timeout=60) as c:
            wait_synced(c, d, "cfg", pics)
            st = folder_state(c, pics)
            assert st.mode == "polling" and st.state == "polling" and "forced" in st.reason
            assert st.source == "config"
            assert "polling" in d.output()

            img(pics / "x.skip.png", "green", "square", 4)
            img(pics / "c.png", "green", "square", 3)
            wait_for(lambda: str(pics / "c.png") in stored(d.home, "cfg"), "c.png", d)
            assert str(pics / "x.skip.png") not in stored(d.home, "cfg")
            (pics / "x.skip.png").unlink()
            render("yellow", "cross", 5).save(pics / "a.png")
            (pics / "c.png").rename(pics / "sub" / "c.png")
            wait_synced(c, d, "cfg", pics)
            assert top_label(c, "a yellow cross") == str(pics / "a.png")
            (pics / "sub").rename(pics / "sub2")
            wait_synced(c, d, "cfg", pics)
            shutil.rmtree(pics / "sub2")
            wait_synced(c, d, "cfg", pics)
            assert set(stored(d.home, "cfg")) == {str(pics / "a.png")}

            # over TCP the daemon never watches paths a client names
            with pytest.raises(PermissionDenied):
                c.watch([str(tmp_path)])
            with pytest.raises(PermissionDenied):
                c.unwatch(str(pics))
        assert d.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_config_folder_cannot_be_unwatched_by_command(
    make_wd: Callable[..., WatchDaemon], tmp_path: Path
) -> None:
    root = short_tmpdir()
    try:
        pics = tmp_path / "cfg"
        pics.mkdir()
        (root / "config.toml").write_text(f'[[watch]]\npath = "{pics}"\n', encoding="utf-8")
        d = make_wd(root).start()
        with d.client() as c:
            wait_for(lambda: folder_state(c, pics).state == "watching", "watching", d)
            with pytest.raises(InvalidRequest, match=r"\[\[watch\]\]"):
                c.unwatch(str(pics))
        assert d.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
