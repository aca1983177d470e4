"""Shared fixtures. Every test runs with its own data home, weights cache and config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from isearchd.client import Client

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ISEARCH_HOME, ISEARCH_CACHE and ISEARCH_CONFIG at a fresh temporary tree.

    Unix socket paths are limited to ~107 bytes, so the home is kept short (pytest's tmp paths
    are usually short enough; tests that need a socket use ``home / "s.sock"``).
    """
    root = tmp_path_factory.mktemp("h")
    home = root / "home"
    monkeypatch.setenv("ISEARCH_HOME", str(home))
    monkeypatch.setenv("ISEARCH_CACHE", str(root / "cache"))
    monkeypatch.setenv("ISEARCH_CONFIG", str(root / "config.toml"))
    return home


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def reference_src() -> Path:
    """The reference TinyCLIP implementation (``tinyclip/`` from the imgsearch==0.3.3 wheel).

    .ci/run extracts it into ``.reference/src``; it is deliberately not pip-installed because the
    wheel's own ``imgsearch`` package would shadow our alias package. The parity tests are the
    only users. Under CI (ISEARCH_REQUIRE_REFERENCE=1) a missing reference is a failure.
    """
    import os
    import sys

    src = REPO / ".reference" / "src"
    if not (src / "tinyclip" / "__init__.py").exists():
        if os.environ.get("ISEARCH_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"reference implementation missing at {src}; run .ci/run to fetch it")
        pytest.skip("reference implementation not fetched (.ci/run fetches it)")
    if str(src) not in sys.path:
        sys.path.append(str(src))
    return src


@pytest.fixture
def client_factory(daemon: Any) -> Iterator[Callable[..., Client]]:
    """``client_factory(db_name)`` -> a Client of the module's ``daemon`` (a daemon process in
    tests/integration, an in-process one in tests/inprocess); all closed at the end."""
    made: list[Client] = []

    def make(db_name: str = "default", **kwargs: object) -> Client:
        c: Client = daemon.client(db_name, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 held-out images of each of the 30 colour/shape classes (90 JPEGs)."""
    import sys

    if str(FIXTURES) not in sys.path:
        sys.path.insert(0, str(FIXTURES))
    from shapes import write_samples

    folder = tmp_path_factory.mktemp("gallery")
    write_samples(folder, 3)
    return folder
