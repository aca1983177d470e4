"""What a search asks for, as the Python ``Client`` sends it, and what comes back.

``search_fields`` turns the ``Client.search`` keywords into the fields of the protocol's
``search`` op: the query (a text, an image file, or ``like``: an image already in the database),
its ``plus``/``minus`` parts with their weights, and the filters. Only the shapes are settled
here (dates as text, folders made absolute, images as the caller sends them); what the values
mean, and whether they are valid, is the daemon's to say, once, for every client.

``SearchHit`` is one result as the ``Client`` returns it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NotRequired, TypedDict, Unpack

from isearchd.errors import InvalidRequest
from isearchd.files.formats import IMAGE_EXTENSIONS
from isearchd.files.scan import absolute

PathArg = str | os.PathLike[str]
# One more part of a query (``plus``/``minus``): a text or an image file, alone or with a weight.
QueryPart = PathArg | tuple[PathArg, float]
DateArg = str | datetime.date
# How the caller sends an image file: {"path"} over a Unix socket, {"data"} over TCP.
ImageSource = Callable[[PathArg], dict[str, Any]]


class SearchHit(TypedDict):
    """One search result: ``label`` as added (a path or a file name), ``path`` where the file was
    when added, ``similarity`` in percent (one decimal).

    What the photo says of itself (None where it says nothing, or until the daemon has read it):
    ``taken`` (ISO 8601, with the UTC offset when the camera wrote one), ``taken_source``
    (``"exif"``, or ``"mtime"`` for the file's modification time), ``width`` and ``height`` (as
    displayed, after EXIF rotation), ``place`` (``"Intendente, Lisbon, Portugal"``), ``type`` (the
    detected format: ``"jpeg"``, ``"png"``...), ``bytes`` (file size); ``id``, the image's id in
    its database (``Client.image_info``, the web page's ``/thumb/DB/ID``); ``host``, only on
    images another machine indexed into a shared (Qdrant) store: the machine ``path`` is on.
    These keys are not required, so a ``SearchHit`` built with the first three still type-checks.
    """

    path: str
    label: str
    similarity: float
    taken: NotRequired[str | None]
    taken_source: NotRequired[str | None]
    width: NotRequired[int | None]
    height: NotRequired[int | None]
    place: NotRequired[str | None]
    type: NotRequired[str | None]
    bytes: NotRequired[int | None]
    id: NotRequired[int | None]
    host: NotRequired[str]


class SearchOptions(TypedDict, total=False):
    """The keywords of ``Client.search`` and ``Client.search_hits`` besides the query (one list,
    typed: ``**options: Unpack[SearchOptions]``)."""

    after: DateArg | None
    before: DateArg | None
    within: PathArg | Iterable[PathArg] | None
    place: str | None
    types: str | Iterable[str] | None
    sort: str
    plus: QueryPart | Iterable[QueryPart]
    minus: QueryPart | Iterable[QueryPart]
    like: PathArg | None


def search_fields(
    query: str | None, image_source: ImageSource, **options: Unpack[SearchOptions]
) -> dict[str, Any]:
    """The ``search`` op's fields for these keywords (only those that are set), less ``db``,
    ``num`` and ``similarity``. ``image_source`` turns an image file into what the daemon reads."""
    after, before = options.get("after"), options.get("before")
    within, place, types = options.get("within"), options.get("place"), options.get("types")
    sort, like = options.get("sort", "similarity"), options.get("like")
    plus, minus = options.get("plus", ()), options.get("minus", ())
    fields: dict[str, Any] = {}
    if like is not None:
        if query is not None:
            raise InvalidRequest(
                "search by a query or like an image of the database, not both (add a text with plus)"
            )
        fields["like"] = absolute(like)
    elif not isinstance(query, str) or not query.strip():
        raise InvalidRequest("the search query is empty")
    else:
        fields.update(_part(query, "the query", image_source))
    for name, value in (("after", after), ("before", before)):
        if value is not None:
            fields[name] = _date_text(value, name)
    if within is not None:
        fields["within"] = [absolute(p) for p in _names(within)]
    if place is not None:
        fields["place"] = place
    if types is not None:
        fields["types"] = [os.fspath(t) for t in _names(types)]
    if sort != "similarity":
        fields["sort"] = sort
    for name, parts in (("plus", plus), ("minus", minus)):
        items = [_weighted(p, f"{name}[{i}]", image_source) for i, p in enumerate(_parts(parts))]
        if items:
            fields[name] = items
    return fields


def search_hit(h: dict[str, Any]) -> SearchHit:
    """A result as the daemon sent it (the keys an older daemon does not send are None)."""
    hit = SearchHit(
        path=str(h["path"]),
        label=str(h["label"]),
        similarity=float(h["similarity"]),
        taken=h.get("taken"),
        taken_source=h.get("taken_source"),
        width=h.get("width"),
        height=h.get("height"),
        place=h.get("place"),
        type=h.get("type"),
        bytes=h.get("bytes"),
        id=h.get("id"),
    )
    if h.get("host"):
        hit["host"] = str(h["host"])
    return hit


def is_image_query(query: str) -> bool:
    """An existing file with an image extension (any case) is an image query; anything else is
    text (also a text too long to be a file name)."""
    try:
        full = Path(query).expanduser()
        return full.suffix.lower() in IMAGE_EXTENSIONS and full.is_file()
    except (OSError, ValueError):  # a name too long for the file system; a NUL
        return False


def _part(item: PathArg, what: str, image_source: ImageSource) -> dict[str, Any]:
    """A text or an image file, as the protocol names a part of a query: a ``str`` that names an
    existing image file is an image (as the main query is); a ``PathLike`` is always one."""
    if isinstance(item, os.PathLike) or (isinstance(item, str) and is_image_query(item)):
        return {"image": image_source(item)}
    if isinstance(item, str):
        return {"text": item}
    raise InvalidRequest(f"{what} must be a text or an image path, not {type(item).__name__}")


def _weighted(item: QueryPart, what: str, image_source: ImageSource) -> dict[str, Any]:
    if not isinstance(item, tuple):
        return _part(item, what, image_source)
    if len(item) != 2:
        raise InvalidRequest(f"{what} must be a text, an image path, or (text or path, weight)")
    part, weight = item
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidRequest(f"{what}: the weight must be a number, not {weight!r}")
    return {**_part(part, what, image_source), "weight": float(weight)}


def _date_text(value: DateArg, name: str) -> str:
    """A ``datetime.date`` as ``YYYY-MM-DD`` (a ``datetime``: its date); text as it is."""
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise InvalidRequest(f"{name} must be a datetime.date or 'YYYY[-MM[-DD]]' text, not {value!r}")


def _names(value: PathArg | Iterable[PathArg]) -> list[PathArg]:
    """One name (a ``str`` is one name, not its letters) or several."""
    return [value] if isinstance(value, str | os.PathLike) else list(value)


def _parts(value: QueryPart | Iterable[QueryPart]) -> list[QueryPart]:
    """One part of a query or several; ``("sunset", 0.5)``, a pair that ends in a number, is one
    part with its weight."""
    if isinstance(value, str | os.PathLike):
        return [value]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int | float):
        return [value]
    return list(value)
