"""Videos: the frame choice on its own, the reader on videos made here with PyAV, and how both
stores keep a video's frames together (delete, re-add, move) and count a video once."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from store_backends import make_store

from isearchd.engine.migrate import copy_database
from isearchd.errors import BadImage
from isearchd.files.formats import is_indexed_name, is_video_name
from isearchd.files.video import FramePicker, VideoLimits, gaps, read_video, samples, thin
from isearchd.store import ImageDatabase, ImageRecord, Move, Store
from isearchd.store.metadata import PhotoInfo
from isearchd.store.people import FACES_ANALYSIS, FaceRow
from isearchd.store.people_db import PeopleStore
from isearchd.store.qdrant import QdrantDatabase
from isearchd.store.videos import frame_label
from tests.fixtures.videos import Scene, mean_difference, upright, upright_size, write_audio_only, write_video

GREY = np.full((18, 32), 100, dtype=np.uint8)
WHITE = np.full((18, 32), 250, dtype=np.uint8)


def kept(picker: FramePicker, offers: list[tuple[float, np.ndarray]]) -> list[float]:
    out: list[float] = []
    prev = None
    for at, sig in offers:
        for which in picker.offer(at, sig):
            out.append(at if which == "this" else prev)  # type: ignore[arg-type]
        prev = at
    return sorted(out)


def test_names() -> None:
    for name in ("a.mp4", "B.MOV", "c.m4v", "d.MKV", "e.webm", "f.AVI", "g.3gp"):
        assert is_video_name(name) and is_indexed_name(name), name
    assert not is_video_name(".hidden.mp4") and not is_video_name("a.mp3") and is_indexed_name("x.JPG")


def test_picker_keeps_the_first_frame_and_scene_changes() -> None:
    offers = [(0.0, GREY), (1.0, GREY), (2.0, WHITE), (3.0, WHITE), (4.0, GREY)]
    assert kept(FramePicker(interval=10), offers) == [0.0, 2.0, 4.0]


def test_picker_keeps_a_frame_before_the_interval_runs_out() -> None:
    offers = [(float(t), GREY) for t in range(0, 31, 4)]  # keyframes every 4 s, one scene
    times = kept(FramePicker(interval=10), offers)
    assert times[0] == 0.0
    assert all(b - a <= 10 for a, b in itertools.pairwise(times)), times
    assert len(times) <= 5


def test_gaps_samples_and_thin() -> None:
    assert gaps([0.0], 25.0, 10) == [10.0, 20.0]
    assert gaps([0.0, 8.0, 16.0], 20.0, 10) == []
    assert samples(36_000, 4) == [0.0, 9000.0, 18000.0, 27000.0]
    assert thin(list(range(10)), 4) == [0, 3, 6, 9] and thin([1, 2], 5) == [1, 2]


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi"])
def test_reader_finds_the_scenes(suffix: str, tmp_path: Path) -> None:
    scenes = [Scene("red", "circle", 3), Scene("blue", "square", 14), Scene("green", "star", 3)]
    path = write_video(tmp_path / f"v{suffix}", scenes, audio=suffix != ".avi",
                       metadata={"creation_time": "2022-03-04T05:06:07.000000Z"})  # fmt: skip
    video = read_video(path, VideoLimits(interval=10, max_frames=200), side=64)
    times = [f.at for f in video.frames]
    assert times[0] == 0.0 and any(2.9 <= t < 4 for t in times) and any(16.9 <= t < 18 for t in times), times
    assert all(b - a <= 10 + 1e-6 for a, b in itertools.pairwise(times)), times
    assert abs(video.duration - 20) < 0.1 and min(video.frames[0].picture.size) == 64
    if suffix != ".avi":  # (AVI has no creation time)
        assert video.created is not None and video.created.year == 2022
    # keyframes only: one a second in these videos (MJPEG: two a second, every frame is a keyframe)
    assert video.frames_decoded <= 2 * 20 + 1


def test_reader_times_the_keyframes_the_decoder_gives_back_last(tmp_path: Path) -> None:
    # the decoder's threads hold the last keyframes until it is flushed; flushed frames came back
    # without a time base, so each read as 0 s and the last scene's frame took the first's place
    scenes = [Scene("red", "circle", 2), Scene("blue", "square", 2)]
    video = read_video(write_video(tmp_path / "short.mp4", scenes), VideoLimits(), side=32)
    assert [f.at for f in video.frames] == [0.0, 2.0]


def test_reader_pauses_before_each_keyframe_and_the_pause_is_not_counted(tmp_path: Path) -> None:
    # the indexer's pause is the query gate's wait: a search holding it must not run the video out
    # of its time limit, however often it comes
    path = write_video(tmp_path / "v.webm", [Scene("red", "circle", 3), Scene("blue", "square", 3)])
    now = [0.0]
    pauses = []

    def pause() -> None:
        pauses.append(now[0])
        now[0] += 60.0  # a minute of searches each time

    video = read_video(path, VideoLimits(time_limit=30), 32, clock=lambda: now[0], pause=pause)
    assert [f.at for f in video.frames] == [0.0, 3.0]
    assert len(pauses) >= video.keyframes_decoded >= 6


@pytest.mark.parametrize(
    ("rotation", "gop", "limits"),
    [(-90, 0, VideoLimits()),  # keyframes only
     (90, 1000, VideoLimits(interval=1)),  # one keyframe: the other moments are seeks
     (180, 0, VideoLimits(interval=1, max_frames=2))],  # sampled: longer than max_frames x interval
)  # fmt: skip
def test_a_phone_s_portrait_video_is_indexed_upright(
    rotation: int, gop: int, limits: VideoLimits, tmp_path: Path
) -> None:
    # stored sideways (or upside down) with a display matrix that turns it upright, as phones film
    scenes = [Scene("red", "circle", 2), Scene("blue", "square", 2)]
    video = read_video(write_video(tmp_path / "phone.mp4", scenes, gop=gop, rotation=rotation), limits, 64)
    assert (video.width, video.height) == upright_size(128) == (128, 160)
    assert len(video.frames) >= 2
    for frame in video.frames:
        i = int(frame.at // 2)
        assert frame.picture.size == (64, 80)
        assert mean_difference(frame.picture, upright(scenes[i], i, 128)) < 8, (frame.at, rotation)


def test_reader_long_video_costs_max_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", [Scene("red", "circle", 30)], fps=5)
    video = read_video(path, VideoLimits(interval=1, max_frames=6), side=32)
    assert len(video.frames) <= 6 and video.frames_decoded <= 6


def test_reader_fills_sparse_keyframes(tmp_path: Path) -> None:
    path = write_video(tmp_path / "sparse.mp4", [Scene("red", "circle", 25)], gop=1000)
    video = read_video(path, VideoLimits(interval=10, max_frames=200), side=32)
    assert [f.at for f in video.frames] == [0.0, 10.0, 20.0]


def test_reader_reasons(tmp_path: Path) -> None:
    sound = write_audio_only(tmp_path / "sound.mp4")
    with pytest.raises(BadImage, match="no video stream"):
        read_video(sound, VideoLimits(), 64)
    good = write_video(tmp_path / "good.webm", [Scene("red", "circle", 20)]).read_bytes()
    (tmp_path / "cut.webm").write_bytes(good[: len(good) // 4])
    with pytest.raises(BadImage, match="truncated"):
        read_video(tmp_path / "cut.webm", VideoLimits(), 64)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(BadImage, match="not a readable video"):
        read_video(tmp_path / "junk.mp4", VideoLimits(), 64)
    ticks = iter(range(0, 10_000, 100))
    with pytest.raises(BadImage, match="time_limit"):
        read_video(tmp_path / "good.webm", VideoLimits(time_limit=50), 64, clock=lambda: float(next(ticks)))


def _video_rows(label: str, times: list[float], dim: int = 8) -> list[ImageRecord]:
    """The rows of a video as ``videoframes.video_records`` writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for i, at in enumerate(times):
        vec = rng.normal(size=dim).astype(np.float32)
        rows.append(
            ImageRecord(
                label if i == 0 else frame_label(label, at), label, 10, 1, "h" if i == 0 else f"h@{at:.3f}",
                vec / np.linalg.norm(vec),
                info=PhotoInfo(type="video", at=at, duration=30.0),
            )
        )  # fmt: skip
    return rows


def _photo(label: str, dim: int = 8) -> ImageRecord:
    vec = np.random.default_rng(len(label)).normal(size=dim).astype(np.float32)
    return ImageRecord(
        label, label, 5, 1, f"p{label}", vec / np.linalg.norm(vec), info=PhotoInfo(type="jpeg")
    )


def _give_faces(db: ImageDatabase) -> dict[str, int]:
    """One face to every image the faces analysis has not read; returns their ids by label."""
    assert isinstance(db, PeopleStore)
    ids = {p.label: p.id for p in db.pending(FACES_ANALYSIS, 1, 100)}
    marks = tuple((10.0 + k, 20.0) for k in range(5))
    face = FaceRow((0, 0, 40, 40), marks, 0.9, np.ones(128, dtype=np.float32))
    db.store_faces(1, {i: [face] for i in ids.values()})
    return ids


def _faces_stored(db: ImageDatabase) -> int:
    """Every face stored (in Qdrant, its faces collection as it is: reads leave out the faces of
    images that are gone, so only this sees a face left behind)."""
    if isinstance(db, QdrantDatabase):
        with db._link.guard() as client:
            return client.count(db._people.faces, exact=True).count
    assert isinstance(db, PeopleStore)
    return db.people_counts().faces


def test_both_stores_keep_a_video_together(store: Store) -> None:
    db = store.open("db", model_key="m", dim=8, create=True)
    try:
        db.add(_video_rows("/v/a.mp4", [0.0, 10.0, 20.0]))
        db.add(_video_rows("/v/b.mp4", [0.0, 5.0]))
        assert db.count() == 5
        _give_faces(db)
        db.add(_video_rows("/v/a.mp4", [0.0, 12.5]))  # changed: fewer, other moments
        labels = sorted(r.label for r in db.records())
        assert labels == ["/v/a.mp4", frame_label("/v/a.mp4", 12.5), "/v/b.mp4", frame_label("/v/b.mp4", 5.0)]
        assert _faces_stored(db) == 3  # the stale frames' faces went with them
        assert db.rename([Move("/v/a.mp4", "/w/c.mp4")]) == 1  # one file, its frames with it
        assert {(r.label, r.path) for r in db.records("/w")} == {
            ("/w/c.mp4", "/w/c.mp4"), (frame_label("/w/c.mp4", 12.5), "/w/c.mp4")
        }  # fmt: skip
        assert db.move_prefix("/w", "/x") == 1
        assert {(r.label, r.path) for r in db.records("/x")} == {
            ("/x/c.mp4", "/x/c.mp4"), (frame_label("/x/c.mp4", 12.5), "/x/c.mp4")
        }  # fmt: skip
        db.add(_video_rows("/v/d.mp4", [0.0, 7.0]))
        ids = _give_faces(db)  # d, its frame, and c's frame at 12.5
        assert db.rename([Move("/v/d.mp4", "/x/c.mp4")]) == 1  # d replaces c, and c's frames go
        assert {(r.label, r.path) for r in db.records("/x")} == {
            ("/x/c.mp4", "/x/c.mp4"), (frame_label("/x/c.mp4", 7.0), "/x/c.mp4")
        }  # fmt: skip
        assert _faces_stored(db) == 4  # c's two went; d's moved with it
        assert len(db.faces_in_image(ids[frame_label("/v/d.mp4", 7.0)])) == 1  # type: ignore[attr-defined]
        assert db.delete_labels(["/x/c.mp4"]) == 1  # one file, its frames with it
        assert sorted(r.label for r in db.records()) == ["/v/b.mp4", frame_label("/v/b.mp4", 5.0)]
        assert _faces_stored(db) == 2
        hits = db.search(_video_rows("/v/b.mp4", [0.0, 5.0])[1].vector, k=5, details=True)  # type: ignore[arg-type]
        assert hits[0].label == frame_label("/v/b.mp4", 5.0) and hits[0].info.at == 5.0
        assert db.delete_prefix("/v") == 1 and db.count() == 0 and _faces_stored(db) == 0
    finally:
        db.close()


def test_both_stores_count_a_video_once(store: Store) -> None:
    db = store.open("db", model_key="m", dim=8, create=True)
    odd = "/v/sub/caf\udce9.mp4"  # not UTF-8 (a Latin-1 name): base64 in a Qdrant payload
    try:
        db.add([_photo("/v/p.jpg"), _photo("/v/sub/q.jpg")])
        db.add(_video_rows("/v/sub/a.mp4", [0.0, 10.0, 20.0]))
        db.add(_video_rows(odd, [0.0, 5.0]))
        db.add(_video_rows("/v/one.mp4", [0.0]))
        assert db.count() == 8  # rows: what the passes go through
        assert db.count_files() == 5 and db.count_below("/v/sub") == 3 and db.count_below("/v/p.jpg") == 1
        info = db.info()
        assert (info.size, info.vectors) == (5, 8)
        assert db.move_prefix("/v/sub", "/w") == 3 and db.delete_prefix("/w") == 3
        assert db.count_files() == 2 and db.count() == 2
    finally:
        db.close()


@pytest.mark.parametrize(("source", "target"), [("qdrant", "embedded"), ("embedded", "qdrant")])
def test_a_copy_between_the_stores_keeps_every_frame(source: str, target: str, tmp_path: Path) -> None:
    stores = make_store(source, tmp_path / "from"), make_store(target, tmp_path / "to")
    src, dst = (s.open("db", model_key="m", dim=8, create=True) for s in stores)
    try:
        for n in range(6):  # batches of 3 cut through every video
            src.add(_video_rows(f"/v/{n}.mp4", [0.0, 1.0, 2.0, 3.0, 4.0]))
        assert copy_database(src, dst, batch=3) == 6  # files
        assert sorted(r.label for r in dst.records()) == sorted(r.label for r in src.records())
    finally:
        for db, store in zip((src, dst), stores, strict=True):
            db.close()
            store.close()
