"""Fixtures that start real daemons (see daemons.py): a module-scoped shared one and a factory."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import DaemonProcess, short_tmpdir


@pytest.fixture
def make_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    """Factory for daemons a test controls itself (each on its own home); all killed at the end."""
    started: list[DaemonProcess] = []
    roots: list[Path] = []

    def make(root: Path | None = None, **kwargs: object) -> DaemonProcess:
        if root is None:
            root = short_tmpdir()
            roots.append(root)
        d = DaemonProcess(root, **kwargs)  # type: ignore[arg-type]
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    """One daemon on a Unix socket shared by the tests of a module."""
    root = short_tmpdir()
    d = DaemonProcess(root).start()
    yield d
    try:
        code = d.stop()
        assert code == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)
