"""A video's frames in a Qdrant database: found and counted with no payload field of their own.

A video's further frames (``isearchd.store.videos``) are points of the machine that indexed it,
with the video's ``path`` and ``type`` "video", labelled ``frame_label(<the video's label>, at)``.
So a video's frames are found from its own point or record: this machine's video points at its
path (``host``, ``path`` and ``type`` are indexed) whose ``video_label`` is its label. A video
labelled by its file name can be added again from another folder: the add also looks at the
path of the point it replaces, where the old frames still are.

A copy (``export``) reads every file's point before the further frames: an add of a video's own
row replaces the frames stored before it, so a frame copied before its video would be lost.

Files (a video once) are the points less the further frames: the video points whose label holds
the frame mark, one substring match that Qdrant answers by reading the video points' payloads
(``label`` has no index). A name that is not UTF-8 is base64 in the payload (``name_key``): those
few video points are read and their labels decoded here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping

from qdrant_client import models as qm

from isearchd.store.qdrant_payload import encoded_name, host_is, match, name_from_key, name_key, point_id
from isearchd.store.qdrant_points import PAGE, Points, payload_of
from isearchd.store.records import ImageRecord, owns_frames
from isearchd.store.videos import FRAME_MARK, VIDEO_TYPE, is_frame_label, video_label

__all__ = ["QdrantFrames", "label_of", "videos_among"]

_VIDEO = match("type", VIDEO_TYPE)
_MARKED = qm.FieldCondition(key="label", match=qm.MatchSubstring(substring=FRAME_MARK))  # a further frame


class QdrantFrames(Points):
    """Finding and counting videos' frames among a collection's points (``QdrantDatabase``'s)."""

    def _frames(self, videos: Mapping[str, Collection[str]], *, vectors: bool = False) -> list[qm.Record]:
        """This machine's further frames of the videos labelled by the keys of ``videos``, looked
        for at the paths given for each."""
        wanted: dict[str, set[str]] = {}  # path (``name_key``) -> the labels of the videos there
        for label, paths in videos.items():
            for path in paths:
                wanted.setdefault(name_key(path), set()).add(label)
        keys = sorted(wanted)
        found = []
        for start in range(0, len(keys), PAGE):
            at = qm.FieldCondition(key="path", match=qm.MatchAny(any=keys[start : start + PAGE]))
            for point in self._scroll(self._mine(_VIDEO, at), vectors=vectors):
                label = label_of(point)
                if is_frame_label(label) and video_label(label) in wanted.get(payload_of(point)["path"], ()):
                    found.append(point)
        return found

    def _stale_frames(self, batch: list[ImageRecord], existing: Mapping[str, qm.Record]) -> list[qm.Record]:
        """The frames stored before of the videos in ``batch`` (``existing``: its points stored
        before, by point id) that ``batch`` does not write again."""
        videos: dict[str, list[str]] = {}
        for record in batch:
            if owns_frames(record.label, record.info):
                old = payload_of(existing.get(point_id(self.host, record.label)))
                videos[record.label] = [record.path, *([name_from_key(old["path"])] if old else [])]
        written = {record.label for record in batch}
        return [p for p in self._frames(videos) if label_of(p) not in written]

    def _files_then_frames(self) -> Iterator[qm.Record]:
        """This machine's points with their vectors: every file's, then the videos' further
        frames (what a copy must add in that order)."""
        not_marked = qm.Filter(must=[host_is(self.host)], must_not=[qm.Filter(must=[_VIDEO, _MARKED])])
        yield from (p for p in self._scroll(not_marked, vectors=True) if not is_frame_label(label_of(p)))
        yield from (p for p in self._scroll(self._mine(_VIDEO), vectors=True) if is_frame_label(label_of(p)))

    def _count_files(self, flt: qm.Filter | None) -> int:
        """The files among the points ``flt`` selects (None: every point), a video once."""
        scope: list[qm.Condition] = [flt] if flt is not None else []
        further = self._count(qm.Filter(must=[*scope, _VIDEO, _MARKED]))
        encoded = self._scroll(qm.Filter(must=[*scope, _VIDEO, encoded_name("label")]), payload=["label"])
        further += sum(is_frame_label(label_of(p)) for p in encoded)
        return self._count(flt) - further


def label_of(point: qm.Record) -> str:
    return name_from_key(payload_of(point)["label"])


def videos_among(points: Iterable[qm.Record]) -> dict[str, list[str]]:
    """The videos' own points among ``points``: their label -> [their path]."""
    out = {}
    for point in points:
        payload = payload_of(point)
        label = name_from_key(payload["label"])
        if payload.get("type") == VIDEO_TYPE and not is_frame_label(label):
            out[label] = [name_from_key(payload["path"])]
    return out
