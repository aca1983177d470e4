"""How an image is written into a Qdrant point, and a search's filters into a Qdrant filter.

Point id: ``uuid5(host NUL label-bytes)``, so adding the same image again (a re-add, a batch
retried after a lost acknowledgement) overwrites the same point: an idempotent upsert, and two
machines never write each other's points. Image id (``iid``, what search hits and ``/thumb/DB/ID``
carry): 53 bits of ``uuid5(... salt)``, kept for the point's life; at 100M images two of them
would share a first choice with probability ~0.4, so ``QdrantDatabase.add`` takes the next salt
when another point holds it (``image_ids``).

Payload (one point per image; names through ``name_key`` so that names of any bytes survive JSON):

=============  ===========================================================================
host           the machine that indexed it (``name_key``)
label, path    ``name_key`` of the label and of the path on that machine
dirs           every folder above the path (``name_key`` each): ``--in FOLDER`` is one keyword match
size, mtime_ns, hash   file size, modification time (ns), content hash
iid            the image id
model, precision       the model key that embedded it and its precision (fp32 or int8)
taken ... type PhotoInfo's fields; ``taken_ts``: taken_local as seconds (a number range for
               dates); ``places``: city/region/country case-folded (``--place`` is one match)
meta_state     0 unread, 1 read, 2 unreadable (as the catalog's column)
phash, colours, look_state   the look: signed 64-bit hash, base64 colours, 0/1/2
updated        when this point was written (ISO 8601, UTC)
analysis_*     each analysis's state (``analysis_key``)
words_*        the words read in the picture (``qdrant_words``)
=============  ===========================================================================
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from qdrant_client import models as qm

from isearchd.files.names import from_db, to_db
from isearchd.messages import JsonObject
from isearchd.store.catalog import now_iso
from isearchd.store.looks import LOOK_KNOWN, LOOK_UNKNOWN, LOOK_UNREADABLE, Look, signed_phash
from isearchd.store.metadata import INFO_COLUMNS, META_READ, META_UNREAD, META_UNREADABLE, Filters, PhotoInfo
from isearchd.store.records import INT8_SUFFIX, ImageRecord
from isearchd.store.videos import PHOTO_TYPE, VIDEO_TYPE
from isearchd.store.words import pieces

# uuid5 namespace of ImgSearch point ids (a fixed random uuid: changing it orphans every point)
POINT_NAMESPACE = uuid.UUID("6f1c7a3e-2b4d-5e8f-9a0b-1c2d3e4f5a6b")
# A payload (or the part of one) the store writes: built here, only ever handed to Qdrant.
NewPayload = dict[str, object]
IID_BITS = 53  # ids stay exact in JavaScript numbers (the web page)
_B64 = "b64:"  # a name that is not UTF-8; real paths start with "/" and labels never hold a NUL
# payload keyword fields with an index on a server (local mode has no payload indexes)
KEYWORD_INDEXES = ("host", "path", "dirs", "hash", "places", "type")  # never a filter on label: ids
# keyword fields matched by substring (``MatchSubstring``): a keyword index with ``prefix`` serves it
SUBSTRING_INDEXES = ("words_folded",)
INTEGER_INDEXES = ("iid", "meta_state", "look_state")
FLOAT_INDEXES = ("taken_ts",)


def name_key(name: str) -> str:
    """A name as payload text: itself when it is UTF-8, else ``b64:`` and its bytes in base64."""
    raw = to_db(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return _B64 + base64.b64encode(raw).decode("ascii")
    return name


def name_from_key(key: str) -> str:
    if key.startswith(_B64):
        return from_db(base64.b64decode(key[len(_B64) :]))
    return key


def encoded_name(key: str) -> qm.FieldCondition:
    """The points whose name at ``key`` is stored in base64 (not UTF-8: ``name_key``)."""
    return qm.FieldCondition(key=key, match=qm.MatchPrefix(prefix=_B64))


def point_id(host: str, label: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, host + "\0" + name_key(label)))


def image_id(host: str, label: str, salt: int = 0) -> int:
    """The ``salt``-th candidate image id of an image (53 bits, never 0)."""
    seed = f"{host}\0{name_key(label)}\0{salt}" if salt else f"{host}\0{name_key(label)}\0iid"
    return (uuid.uuid5(POINT_NAMESPACE, seed).int >> (128 - IID_BITS)) or 1


def folders_above(path: str) -> list[str]:
    """``/a/b/c.jpg`` -> ``["/", "/a", "/a/b"]`` (``name_key`` each)."""
    parts = path.rstrip("/").split("/")
    out = ["/"] if path.startswith("/") else []
    for i in range(2, len(parts)):
        out.append("/".join(parts[:i]))
    return [name_key(d) for d in out if d]


def precision_of(model_key: str) -> str:
    return "int8" if model_key.endswith(INT8_SUFFIX) else "fp32"


def taken_seconds(wall_clock: str | None) -> float | None:
    """A wall-clock time (``2019-07-01T12:00:00``) as seconds, read as if it were UTC: only
    comparisons between such numbers mean anything (dates filter on the time where it was taken)."""
    if not wall_clock:
        return None
    try:
        moment = datetime.fromisoformat(wall_clock)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def info_payload(info: PhotoInfo | None, state: int) -> NewPayload:
    values: NewPayload = {f: getattr(info, f) if info is not None else None for f in INFO_COLUMNS}
    values["taken_ts"] = taken_seconds(info.taken_local) if info is not None else None
    values["places"] = info.place_names() if info is not None else []
    values["meta_state"] = state
    return values


def look_payload(look: Look | None, state: int) -> NewPayload:
    if look is None:
        return {"phash": None, "colours": None, "look_state": state}
    return {
        "phash": signed_phash(look.phash),
        "colours": base64.b64encode(look.colours).decode("ascii"),
        "look_state": LOOK_KNOWN,
    }


def metadata_update(info: PhotoInfo | None) -> NewPayload:
    """The payload that stores read metadata (None: the file cannot be read)."""
    return info_payload(info, META_READ if info is not None else META_UNREADABLE)


def looks_update(look: Look | None) -> NewPayload:
    return look_payload(look, LOOK_KNOWN if look is not None else LOOK_UNREADABLE)


def image_payload(
    record: ImageRecord, host: str, model_key: str, iid: int, kept: JsonObject | None
) -> NewPayload:
    """The whole payload of ``record``; ``kept``: the point's old payload, whose metadata stays
    when ``record.info`` is None (as the catalog's upsert)."""
    payload: NewPayload = {
        "host": name_key(host),
        "label": name_key(record.label),
        "path": name_key(record.path),
        "dirs": folders_above(record.path),
        "size": int(record.size),
        "mtime_ns": int(record.mtime_ns),
        "hash": record.content_hash,
        "iid": iid,
        "model": model_key,
        "precision": precision_of(model_key),
        "updated": now_iso(),
    }
    if record.info is not None:
        payload.update(info_payload(record.info, META_READ))
    elif kept is not None and "meta_state" in kept:
        payload.update({k: kept.get(k) for k in (*INFO_COLUMNS, "taken_ts", "places", "meta_state")})
    else:
        payload.update(info_payload(None, META_UNREAD))
    payload.update(look_payload(record.look, LOOK_UNKNOWN))
    if kept is not None and kept.get("hash") == record.content_hash:  # the same picture: what the
        payload.update({k: v for k, v in kept.items() if k.startswith(KEPT_PREFIXES)})  # passes read stays
    return payload


# A background analysis's state on a point: ``analysis_<name>`` the version that read it,
# ``analysis_<name>_failure`` why it failed (flat keys, no dots, which Qdrant's filters read as
# nesting: setting one never touches another).
ANALYSIS_PREFIX = "analysis_"
# what the analyses stored on the point (``words_*``: ``qdrant_words``), kept for the same picture
KEPT_PREFIXES = (ANALYSIS_PREFIX, "words_")


def analysis_key(analysis: str) -> str:
    return ANALYSIS_PREFIX + analysis


def analysis_update(analysis: str, version: int, failure: str | None) -> NewPayload:
    """The payload that records that ``version`` of ``analysis`` read a point (or why it failed)."""
    return {analysis_key(analysis): version, analysis_key(analysis) + "_failure": failure}


def info_from(payload: JsonObject) -> PhotoInfo:
    return PhotoInfo(*(payload.get(f) for f in INFO_COLUMNS))


def look_from(payload: JsonObject) -> Look | None:
    if payload.get("look_state") != LOOK_KNOWN or payload.get("phash") is None:
        return None
    return Look(int(payload["phash"]) & ((1 << 64) - 1), base64.b64decode(payload["colours"]))


def record_from(payload: JsonObject, vector: Any, me: str) -> ImageRecord:
    """An ``ImageRecord`` from a point (``host`` None when it is this machine's)."""
    host = name_from_key(payload["host"])
    return ImageRecord(
        name_from_key(payload["label"]),
        name_from_key(payload["path"]),
        int(payload["size"]),
        int(payload["mtime_ns"]),
        str(payload["hash"]),
        None if vector is None else _vector(vector),
        info_from(payload) if payload.get("meta_state") == META_READ else None,
        look_from(payload),
        None if host == me else host,
    )


def _vector(raw: Any) -> Any:
    import numpy as np

    return np.asarray(raw, dtype=np.float32)


def match(key: str, value: Any) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def host_is(host: str) -> qm.FieldCondition:
    return match("host", name_key(host))


def below(prefix: str) -> qm.Filter:
    """The image at ``prefix`` and those below the folder ``prefix`` (folder semantics: not
    ``prefix`` + "b"; with a trailing "/", only those below), as the catalog's ``_below``."""
    folder = prefix.rstrip("/") or "/"
    return qm.Filter(should=[match("path", name_key(prefix)), match("dirs", name_key(folder))])


def search_filter(
    f: Filters | None, extra: list[qm.Condition] | None = None, *, people: Collection[int] | None = None
) -> qm.Filter | None:
    """The Qdrant filter of a search's ``Filters`` (the same semantics as the catalog's SQL);
    ``people``: the images that show everyone ``f.people`` names (the faces are not in the
    images' points: ``QdrantDatabase`` finds them first)."""
    must: list[qm.Condition] = list(extra or [])
    if f:
        if f.after or f.before:
            must.append(
                qm.FieldCondition(
                    key="taken_ts", range=qm.Range(gte=taken_seconds(f.after), lt=taken_seconds(f.before))
                )
            )
        if f.within:
            must.append(qm.Filter(should=[below(folder) for folder in f.within]))
        if f.place:
            must.append(match("places", f.place.strip().casefold()))
        if f.types:
            must.append(_types_condition(f.types))
        if f.people:
            if people is None:
                raise ValueError("a search by people needs the images that show them")
            # (image ids are never 0: no image, when nobody is in them all)
            must.append(qm.FieldCondition(key="iid", match=qm.MatchAny(any=sorted(people) or [0])))
        if f.words is not None:
            must.extend(_words_conditions(f.words))
    return qm.Filter(must=must) if must else None


def _types_condition(types: Collection[str]) -> qm.Condition:
    """``--type``: the named types; "photo" stands for every type but video (as the catalog)."""
    named = [t for t in types if t != PHOTO_TYPE]
    should: list[qm.Condition] = (
        [qm.FieldCondition(key="type", match=qm.MatchAny(any=named))] if named else []
    )
    if PHOTO_TYPE in types:
        should.append(
            qm.Filter(must_not=[qm.FieldCondition(key="type", match=qm.MatchValue(value=VIDEO_TYPE))])
        )
    return qm.Filter(should=should)


def _words_conditions(words: str) -> list[qm.Condition]:
    """Every piece of ``words`` (folded, split at spaces) occurs in the folded text; nothing to
    look for matches no image (image ids are never 0), as the catalog's ``words_where``."""
    wanted = pieces(words)
    if not wanted:
        return [match("iid", 0)]
    return [qm.FieldCondition(key="words_folded", match=qm.MatchSubstring(substring=p)) for p in wanted]
