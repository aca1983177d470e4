"""Words in pictures on a Qdrant database: ``QdrantDatabase`` is a ``WordsStore`` through
``QdrantWords``.

The words of an image are fields of its point (no collection of their own):

=============  ===========================================================================
words_text     its text, lines joined by newlines ("" when read and none was found)
words_folded   the same text folded (``words.fold``: case and accents off); what ``--words``
               matches, one ``MatchSubstring`` per piece (a keyword index with ``prefix`` on a
               server, created with the collection)
words_lines    every line: ``{"text", "box": [left, top, width, height], "score"}``
=============  ===========================================================================

A point without ``words_text`` has not been read. The words analysis's outcome is the point's
``analysis_words`` / ``analysis_words_failure``, as every analysis's (``qdrant_passes``); a point
written again with another picture loses both (``image_payload`` keeps them only for the same
content hash). The switch (``words_enabled``) is the database's, in the store's meta collection,
shared by every machine, and read through its cache (``qdrant_meta.SETTING_TTL_S``): this daemon's
switch is seen at once, another daemon's within seconds; ``store_words`` reads it fresh, so what
was read before another daemon turned words off is not written after its forget.
``forget_words`` clears the words of every machine's photos.

Ranking (no bm25 in Qdrant): the photo whose text holds the pieces most often first, then the
shorter text, then the higher image id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from qdrant_client import models as qm

from isearchd.messages import JsonObject
from isearchd.store.qdrant_passes import Passes
from isearchd.store.qdrant_payload import NewPayload, analysis_key, analysis_update, point_id
from isearchd.store.qdrant_points import payload_of
from isearchd.store.words import ENABLED_KEY, WORDS_ANALYSIS, LineRow, fold, pieces

if TYPE_CHECKING:
    from isearchd.store.qdrant_meta import QdrantMeta

__all__ = ["WORDS_FIELDS", "QdrantWords", "words_payload"]

TEXT, FOLDED, LINES = "words_text", "words_folded", "words_lines"
WORDS_FIELDS = (TEXT, FOLDED, LINES)


def words_payload(lines: Sequence[LineRow]) -> NewPayload:
    """The words fields of a point whose picture holds ``lines`` (none: read, no text)."""
    text = "\n".join(ln.text for ln in lines)
    return {
        TEXT: text,
        FOLDED: fold(text),
        LINES: [{"text": ln.text, "box": list(ln.box), "score": float(ln.score)} for ln in lines],
    }


def _lines_from(payload: JsonObject) -> list[LineRow]:
    out = []
    for ln in payload.get(LINES) or []:
        left, top, width, height = (int(v) for v in ln["box"])
        out.append(LineRow(str(ln["text"]), (left, top, width, height), float(ln["score"])))
    return out


class QdrantWords(Passes):
    """The ``WordsStore`` operations of a Qdrant database (see the module docstring)."""

    if TYPE_CHECKING:
        _meta: QdrantMeta

    def words_enabled(self) -> bool:
        return self._meta.setting(self.name, ENABLED_KEY) is not False

    def set_words_enabled(self, enabled: bool) -> None:
        self._meta.put_setting(self.name, ENABLED_KEY, enabled)

    def words_of(self, image_ids: Sequence[int]) -> dict[int, str]:
        """The text of these images ("" when read and none was found); unread images are left out."""
        points = self._by_iid(list(image_ids), mine=False, fields=[TEXT])
        return {i: str(pl[TEXT]) for i, p in points.items() if TEXT in (pl := payload_of(p))}

    def word_lines(self, image_id: int) -> list[LineRow]:
        """The lines read in one image, in reading order ([] when none, or not read yet)."""
        return _lines_from(payload_of(self._by_iid([image_id], mine=False).get(image_id)))

    def image_id_of(self, label: str) -> int | None:
        pid = point_id(self.host, label)
        found = self._retrieve([pid]).get(pid)
        return None if found is None else int(payload_of(found)["iid"])

    def rank_by_words(self, words_: str, image_ids: Sequence[int]) -> list[int]:
        """``image_ids``, the text holding the pieces of ``words_`` most often first (then the shorter
        text, then the higher id)."""
        wanted = pieces(words_)
        points = self._by_iid(list(image_ids), mine=False, fields=[FOLDED])  # (not the lines)

        def key(image_id: int) -> tuple[int, int, int]:
            folded = str(payload_of(points.get(image_id)).get(FOLDED) or "")
            return (-sum(folded.count(p) for p in wanted), len(folded), -image_id)

        return sorted(image_ids, key=key)

    def store_words(
        self, version: int, rows: Mapping[int, Sequence[LineRow]], failures: Mapping[int, str] | None = None
    ) -> None:
        """The text version ``version`` of the words analysis read in these images of this machine,
        and the images it could not read (the reasons), each point written at once; nothing
        while words are off."""
        if self._meta.setting(self.name, ENABLED_KEY, fresh=True) is False:
            return  # another daemon turned words off (and forgot them) since the cached switch
        failed = dict(failures or {})
        points = self._by_iid([*rows, *failed], mine=True)
        updates: list[tuple[str, NewPayload]] = []
        for image_id, lines in rows.items():
            if image_id in points:
                payload = words_payload(lines) | analysis_update(WORDS_ANALYSIS, version, None)
                updates.append((str(points[image_id].id), payload))
        for image_id, why in failed.items():
            if image_id in points:
                updates.append((str(points[image_id].id), analysis_update(WORDS_ANALYSIS, version, why)))
        self._set_payloads(updates)

    def forget_words(self) -> None:
        """Delete all text read in this database (every machine's photos) and the words analysis's
        record of which photos it read; the switch stays."""
        self._check_open()
        keys = [*WORDS_FIELDS, analysis_key(WORDS_ANALYSIS), analysis_key(WORDS_ANALYSIS) + "_failure"]
        with self._link.guard() as client:
            client.delete_payload(self.collection, keys, qm.FilterSelector(filter=qm.Filter()), wait=True)
