"""Fixtures of the in-process tests (see harness.py): the engine's behaviour through the Client and
the protocol, without a daemon process. The names match tests/integration's fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import TINY_MODEL, InProcessDaemon, short_tmpdir
from tinycache import tiny_cache

from isearchd.engine.engine import EngineModel


@pytest.fixture(scope="session")
def tiny_model() -> EngineModel:
    """The tiny test model as the daemon loads it (``backend="auto"``: from its ONNX export in the
    session's shared cache, ``tinycache``), once for every in-process test."""
    from isearchd.models import load_model

    if not TINY_MODEL.exists():
        pytest.fail(f"the tiny test model is missing at {TINY_MODEL} (tests/fixtures/train_tiny_clip.py)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ISEARCH_CACHE", str(tiny_cache(TINY_MODEL)))
        return load_model(str(TINY_MODEL), backend="auto")


@pytest.fixture
def make_daemon(tiny_model: EngineModel) -> Iterator[Callable[..., InProcessDaemon]]:
    """Factory for in-process daemons a test controls itself (each on its own home)."""
    made: list[InProcessDaemon] = []
    roots: list[Path] = []

    def make(root: Path | None = None, **kwargs: object) -> InProcessDaemon:
        if root is None:
            root = short_tmpdir()
            roots.append(root)
        d = InProcessDaemon(root, tiny_model, **kwargs)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(tiny_model: EngineModel) -> Iterator[InProcessDaemon]:
    """One in-process daemon shared by the tests of a module (each test uses its own database);
    it also listens on its Unix socket, for the tests that run the CLI against it."""
    root = short_tmpdir()
    d = InProcessDaemon(root, tiny_model, listen=True).start()
    yield d
    try:
        assert d.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
