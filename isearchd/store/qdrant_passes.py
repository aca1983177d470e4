"""A Qdrant database's background passes: which of this machine's photos each has read.

A point carries, per analysis, the version that read it (``analysis_<name>``) and why it failed
(``analysis_<name>_failure``); a point read by another version is pending (as in
``isearchd.store.analyses``); the two passes older than that (photo metadata, looks) keep theirs
in their own state fields. ``QdrantDatabase`` inherits these from ``Passes``.
"""

from __future__ import annotations

from collections.abc import Mapping

from qdrant_client import models as qm

from isearchd.store.looks import LOOK_UNKNOWN, LOOK_UNREADABLE, Look
from isearchd.store.metadata import META_UNREAD, META_UNREADABLE, PhotoInfo
from isearchd.store.qdrant_payload import (
    analysis_key,
    analysis_update,
    host_is,
    looks_update,
    match,
    metadata_update,
    name_from_key,
)
from isearchd.store.qdrant_points import Points, payload_of
from isearchd.store.records import PhotoFile

__all__ = ["Passes"]

# The passes older than the analysis state keep theirs in a field: (field, not read, unreadable).
_LEGACY_STATE = {
    "metadata": ("meta_state", META_UNREAD, META_UNREADABLE),
    "looks": ("look_state", LOOK_UNKNOWN, LOOK_UNREADABLE),
}


class Passes(Points):
    def _pending_filter(self, analysis: str, version: int) -> qm.Filter:
        if analysis in _LEGACY_STATE:
            field, unread, _ = _LEGACY_STATE[analysis]
            return self._mine(match(field, unread))
        done = qm.FieldCondition(key=analysis_key(analysis), match=qm.MatchValue(value=version))
        return qm.Filter(must=[host_is(self.host)], must_not=[done])

    def pending(self, analysis: str, version: int, limit: int) -> list[PhotoFile]:
        return [
            PhotoFile(
                int(pl["iid"]), name_from_key(pl["label"]), name_from_key(pl["path"]), int(pl["mtime_ns"])
            )
            for pl in (
                payload_of(p) for p in self._scroll(self._pending_filter(analysis, version), limit=limit)
            )
        ]

    def count_pending(self, analysis: str, version: int) -> int:
        return self._count(self._pending_filter(analysis, version))

    def count_failed(self, analysis: str, version: int) -> int:
        if analysis in _LEGACY_STATE:
            field, _, unreadable = _LEGACY_STATE[analysis]
            return self._count(self._mine(match(field, unreadable)))
        read = qm.FieldCondition(key=analysis_key(analysis), match=qm.MatchValue(value=version))
        failed = qm.IsEmptyCondition(is_empty=qm.PayloadField(key=analysis_key(analysis) + "_failure"))
        return self._count(qm.Filter(must=[host_is(self.host), read], must_not=[failed]))

    def record_analysis(self, analysis: str, version: int, outcomes: Mapping[int, str | None]) -> None:
        points = self._by_iid(list(outcomes), mine=True)
        self._set_payloads(
            [
                (str(points[i].id), analysis_update(analysis, version, why))
                for i, why in outcomes.items()
                if i in points
            ]
        )

    def store_metadata(self, rows: Mapping[int, PhotoInfo | None]) -> None:
        points = self._by_iid(list(rows), mine=True)
        self._set_payloads(
            [(str(points[i].id), metadata_update(info)) for i, info in rows.items() if i in points]
        )

    def store_looks(self, rows: Mapping[int, Look | None]) -> None:
        points = self._by_iid(list(rows), mine=True)
        self._set_payloads(
            [(str(points[i].id), looks_update(look)) for i, look in rows.items() if i in points]
        )
