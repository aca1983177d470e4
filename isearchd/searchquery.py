"""What a search asks for, as the Python ``Client`` sends it.

``search_request`` turns the ``Client.search`` keywords into the protocol's ``SearchRequest``:
the query (a text, an image file, or ``like``: an image already in the database), its
``plus``/``minus`` parts with their weights, and the filters. Only the shapes are settled here
(dates as text, folders made absolute, images as the caller sends them); what the values mean,
and whether they are valid, is the daemon's to say, once, for every client.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypedDict, Unpack

from isearchd.errors import InvalidRequest
from isearchd.files.formats import IMAGE_EXTENSIONS
from isearchd.files.scan import absolute
from isearchd.messages import ImageRef, QueryPart, SearchRequest

PathArg = str | os.PathLike[str]
# One more part of a query (``plus``/``minus``): a text or an image file, alone or with a weight.
PartArg = PathArg | tuple[PathArg, float]
DateArg = str | datetime.date
# How the caller sends an image file: by path to a local daemon, by its bytes over TCP.
ImageReader = Callable[[PathArg], ImageRef]


class SearchOptions(TypedDict, total=False):
    """The keywords of ``Client.search`` and ``Client.search_hits`` besides the query (one list,
    typed: ``**options: Unpack[SearchOptions]``)."""

    after: DateArg | None
    before: DateArg | None
    within: PathArg | Iterable[PathArg] | None
    place: str | None
    types: str | Iterable[str] | None
    sort: str
    plus: PartArg | Iterable[PartArg]
    minus: PartArg | Iterable[PartArg]
    like: PathArg | None
    people: str | Iterable[str]
    words: str | None
    with_words: bool


def search_request(
    query: str | None,
    image_source: ImageReader,
    *,
    db: str,
    num: int,
    similarity: float,
    **options: Unpack[SearchOptions],
) -> SearchRequest:
    """The ``search`` request for these keywords. ``image_source`` turns an image file into what
    the daemon reads."""
    like = options.get("like")
    people = [str(p) for p in _names(options.get("people", ()))]
    main: QueryPart | None
    words = options.get("words")
    if words is not None and not words.strip():
        raise InvalidRequest("the words to find are empty")
    if query is None and like is None and (people or words):
        main = None  # the photos of these people, or with these words
    elif like is not None:
        if query is not None:
            raise InvalidRequest(
                "search by a query or like an image of the database, not both (add a text with plus)"
            )
        main = QueryPart(like=absolute(like))
    elif not isinstance(query, str) or not query.strip():
        raise InvalidRequest("the search query is empty")
    else:
        main = _part(query, "the query", image_source)
    within, types = options.get("within"), options.get("types")
    parts = {
        name: [_weighted(p, f"{name}[{i}]", image_source) for i, p in enumerate(_parts(given))]
        for name, given in (("plus", options.get("plus", ())), ("minus", options.get("minus", ())))
    }
    return SearchRequest(
        db=db,
        num=num,
        similarity=similarity,
        text=main.text if main else None,
        image=main.image if main else None,
        like=main.like if main else None,
        after=_date_text(options.get("after"), "after"),
        before=_date_text(options.get("before"), "before"),
        within=[absolute(p) for p in _names(within)] if within is not None else [],
        place=options.get("place"),
        types=[os.fspath(t) for t in _names(types)] if types is not None else [],
        sort=options.get("sort", "similarity"),
        plus=parts["plus"],
        minus=parts["minus"],
        people=people,
        words=words,
        with_words=options.get("with_words", False),
    )


def is_image_query(query: str) -> bool:
    """An existing file with an image extension (any case) is an image query; anything else is
    text (also a text too long to be a file name)."""
    try:
        full = Path(query).expanduser()
        return full.suffix.lower() in IMAGE_EXTENSIONS and full.is_file()
    except (OSError, ValueError):  # a name too long for the file system; a NUL
        return False


def _part(item: PathArg, what: str, image_source: ImageReader, weight: float = 1.0) -> QueryPart:
    """A text or an image file, as the protocol names a part of a query: a ``str`` that names an
    existing image file is an image (as the main query is); a ``PathLike`` is always one."""
    if isinstance(item, os.PathLike) or (isinstance(item, str) and is_image_query(item)):
        return QueryPart(image=image_source(item), weight=weight)
    if isinstance(item, str):
        return QueryPart(text=item, weight=weight)
    raise InvalidRequest(f"{what} must be a text or an image path, not {type(item).__name__}")


def _weighted(item: PartArg, what: str, image_source: ImageReader) -> QueryPart:
    if not isinstance(item, tuple):
        return _part(item, what, image_source)
    if len(item) != 2:
        raise InvalidRequest(f"{what} must be a text, an image path, or (text or path, weight)")
    part, weight = item
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidRequest(f"{what}: the weight must be a number, not {weight!r}")
    if not 0 < weight <= 100:
        raise InvalidRequest(f"{what}: the weight must be a number in (0, 100], not {weight}")
    return _part(part, what, image_source, float(weight))


def _date_text(value: DateArg | None, name: str) -> str | None:
    """A ``datetime.date`` as ``YYYY-MM-DD`` (a ``datetime``: its date); text as it is."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise InvalidRequest(f"{name} must be a datetime.date or 'YYYY[-MM[-DD]]' text, not {value!r}")


def _names(value: PathArg | Iterable[PathArg]) -> list[PathArg]:
    """One name (a ``str`` is one name, not its letters) or several."""
    return [value] if isinstance(value, str | os.PathLike) else list(value)


def _parts(value: PartArg | Iterable[PartArg]) -> list[PartArg]:
    """One part of a query or several; ``("sunset", 0.5)``, a pair that ends in a number, is one
    part with its weight."""
    if isinstance(value, str | os.PathLike):
        return [value]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int | float):
        return [value]
    return list(value)
