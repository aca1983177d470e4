"""The analysis seam (``isearchd.engine.analysis``) through the real engine, indexer and store.

A small analysis defined here (the mean brightness of a photo, read from pixels) stands in for
faces and words: new photos are read after their add from the picture the indexer decoded (no
second decode), photos from before it existed are read in the background, a failure is recorded
with its reason, a new version reads everything again, and nothing is read while a search
computes or the write queue has work.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from isearchd.engine import analysis as analysis_mod
from isearchd.engine.analysis import Failed, Outcome, Photo
from isearchd.engine.engine import Engine
from isearchd.messages import BackfillProgress
from isearchd.models import load_model
from isearchd.store import ImageDatabase

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from shapes import write_samples  # noqa: E402
from videos import Scene, write_video  # noqa: E402


@dataclass
class Brightness:
    """Mean brightness of each photo, kept in ``seen`` (by label) as a store table would keep it."""

    version: int = 1
    name: str = "brightness"
    priority: int = 3
    side: int = 96
    chunk: int = 3
    tables: tuple[str, ...] = ("(a dict in the test)",)
    reads_new: bool = True
    decodes_files: bool = False
    seen: dict[str, float] = field(default_factory=dict)
    sides: list[int] = field(default_factory=list)
    skip: set[str] = field(default_factory=set)  # databases it does not read
    failures: dict[str, str] = field(default_factory=dict)  # label -> why it could not be read
    asked: list[str] = field(default_factory=list)  # the files ``read`` was given

    def applies(self, db: ImageDatabase) -> bool:
        return db.name not in self.skip

    def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
        out: dict[int, Outcome] = {}
        self.asked.extend(p.file.path for p in photos)
        for p in photos:
            assert p.picture is not None
            self.sides.append(min(p.picture.size))
            out[p.file.id] = float(np.asarray(p.picture.convert("L")).mean())
        return out

    def save(self, db: ImageDatabase, outcomes: Mapping[int, Outcome]) -> None:
        labels = {f.id: f.label for f in db.pending(self.name, self.version, 10_000)}
        for i, outcome in outcomes.items():
            if isinstance(outcome, float) and i in labels:
                self.seen[labels[i]] = outcome
            if isinstance(outcome, Failed) and i in labels:
                self.failures[labels[i]] = outcome.reason
        failures = {i: o.reason if isinstance(o, Failed) else None for i, o in outcomes.items()}
        db.record_analysis(self.name, self.version, failures)


@pytest.fixture(scope="module")
def model() -> object:
    return load_model(str(REPO / "tests" / "fixtures" / "tiny-clip.pt"), backend="torch")


@pytest.fixture
def make_engine(model: object, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(*analyses: Brightness) -> Engine:
        engine = Engine(model, tmp_path / "home", batch_size=4, analyses=analyses)  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the analysis runner decodes itself (not handed over by the indexer)."""
    calls: list[str] = []
    real = analysis_mod.load_image

    def counting(source: object, **kw: object) -> object:
        calls.append(str(source))
        return real(source, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(analysis_mod, "load_image", counting)
    return calls


def test_new_photos_are_read_from_the_picture_the_indexer_decoded(
    make_engine: Callable[..., Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = write_samples(tmp_path / "new", 2, classes=[("red", "circle"), ("blue", "square")], size=160)
    bright = Brightness()
    engine = make_engine(bright)
    decoded = _decodes(monkeypatch)
    report = engine.add_paths("lib", [str(tmp_path / "new")])
    assert report.added == len(images) == 4
    _until(lambda: len(bright.seen) == 4)
    assert decoded == []  # each file decoded once, by the indexer, for the tower and the analysis
    assert bright.sides and min(bright.sides) >= 96  # at least the side the analysis asked for
    red = next(str(p) for p in images if "red" in p.name)
    blue = next(str(p) for p in images if "blue" in p.name)
    assert bright.seen[red] != bright.seen[blue]
    progress = engine.status().analyses["brightness"]["lib"]
    assert progress == BackfillProgress(total=4, done=4, unreadable=0)


def test_photos_from_before_an_analysis_are_read_in_the_background(
    make_engine: Callable[..., Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_samples(tmp_path / "old", 3, classes=[("green", "star")], size=128)
    first = make_engine()
    assert first.add_paths("lib", [str(tmp_path / "old")]).added == 3
    first.close()
    gone = tmp_path / "old" / sorted(p.name for p in (tmp_path / "old").iterdir())[0]
    gone.unlink()  # a photo whose file went away meanwhile: it fails alone, with its reason
    decoded = _decodes(monkeypatch)
    bright = Brightness()
    engine = make_engine(bright)
    db = engine.database("lib", create=False)  # opening it starts the background reading
    _until(lambda: db.count_pending("brightness", 1) == 0)
    assert len(bright.seen) == 2 and str(gone) not in bright.seen
    assert len(decoded) == 3  # nothing was in memory: each decoded by the analysis runner
    assert db.count_failed("brightness", 1) == 1
    assert engine.status().analyses["brightness"]["lib"] == BackfillProgress(total=3, done=3, unreadable=1)
    # a new version of the analysis reads them all again
    again = Brightness(version=2)
    engine.close()
    newer = make_engine(again)
    newer.database("lib", create=False)
    _until(lambda: len(again.seen) == 2)
    _until(lambda: newer.database("lib", create=False).count_pending("brightness", 2) == 0)


def test_a_database_an_analysis_does_not_apply_to_is_never_read(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    write_samples(tmp_path / "a", 1, classes=[("red", "circle")], size=128)
    bright = Brightness(skip={"off"})
    engine = make_engine(bright)
    assert engine.add_paths("off", [str(tmp_path / "a")]).added == 1
    assert engine.add_paths("on", [str(tmp_path / "a")]).added == 1
    _until(lambda: len(bright.seen) == 1)
    time.sleep(0.5)  # would the runner go on to "off"?
    assert engine.database("off", create=False).count_pending("brightness", 1) == 1  # never read
    assert set(engine.status().analyses["brightness"]) == {"on"}  # and not reported


def test_nothing_is_read_while_a_search_computes_or_the_write_queue_works(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    write_samples(tmp_path / "q", 2, classes=[("yellow", "cross")], size=128)
    bright = Brightness()
    engine = make_engine(bright)
    release = threading.Event()
    started = threading.Event()

    def busy_job() -> None:  # indexing that takes a while: the analyses wait behind it
        started.set()
        release.wait(30)

    engine.add_paths("lib", [str(tmp_path / "q")])
    with engine.gate.query():  # a search is computing: nothing is read
        time.sleep(1.0)
        assert bright.seen == {}
    job = engine.jobs.submit(busy_job, "busy")
    started.wait(10)
    time.sleep(1.0)
    assert bright.seen == {}
    release.set()
    job.wait(30)
    _until(lambda: len(bright.seen) == 2)


def test_analyses_run_by_priority_and_a_failing_one_fails_alone(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    write_samples(tmp_path / "p", 2, classes=[("purple", "triangle")], size=128)
    order: list[str] = []

    @dataclass
    class Broken(Brightness):
        name: str = "broken"
        priority: int = 2

        def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
            order.append(self.name)
            raise RuntimeError("a bug in this analysis")

    @dataclass
    class Later(Brightness):
        name: str = "later"
        priority: int = 9

        def read(self, photos: Sequence[Photo]) -> dict[int, Outcome]:
            order.append(self.name)
            return super().read(photos)

    broken, later = Broken(), Later()
    engine = make_engine(later, broken)
    engine.add_paths("lib", [str(tmp_path / "p")])
    db = engine.database("lib", create=False)
    _until(lambda: len(later.seen) == 2)
    assert order.index("broken") < order.index("later")
    assert db.count_pending("broken", 1) == 0 and db.count_failed("broken", 1) == 2  # recorded, not retried


def test_a_video_s_frames_are_recorded_as_not_read_without_a_decode(
    make_engine: Callable[..., Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_samples(tmp_path / "v", 1, classes=[("green", "star")], size=128)
    clip = write_video(tmp_path / "v" / "clip.mp4", [Scene("red", "circle", 2), Scene("blue", "square", 2)])
    bright = Brightness()
    engine = make_engine(bright)
    decoded = _decodes(monkeypatch)
    assert engine.add_paths("lib", [str(tmp_path / "v")]).added == 2
    db = engine.database("lib", create=False)
    rows = db.count()
    assert rows == 3  # the photo, and the video's two moments
    _until(lambda: db.count_pending("brightness", 1) == 0)
    assert len(bright.seen) == 1 and str(clip) not in bright.asked and decoded == []
    assert set(bright.failures.values()) == {"a video's frame (brightness are not read from videos)"}
    assert len(bright.failures) == db.count_failed("brightness", 1) == 2
