"""What the page sends, read into the protocol's terms: query parameters, uploads, and errors.

``search_fields`` reads the page's search parameters into a ``SearchForm`` (a ``SearchRequest``
less the database and the query); ``upload`` reads a dropped image, ``json_body`` a POST's JSON;
``json_reply`` answers; ``answers_errors`` turns a route's ``ISearchError`` into the protocol's
error object with an HTTP status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isearchd.errors import InvalidRequest, ISearchError
from isearchd.messages import ImageRef, JsonObject, Message, SearchRequest
from isearchd.protocol import is_loopback, to_wire

# An image dropped on the page: at most this many bytes (the daemon's own bomb guard decodes it).
UPLOAD_MAX_BYTES = 32 * 1024 * 1024
MAX_RESULTS = 500
_STATUS = {"invalid_request": 400, "protocol_error": 400, "bad_image": 400, "not_found": 404,
           "permission_denied": 403, "model_mismatch": 409, "busy": 503}  # fmt: skip
_NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class SearchForm:
    """The page's search parameters in the protocol's terms: everything of a ``SearchRequest``
    but the database and the query itself."""

    num: int
    similarity: float
    after: str | None = None
    before: str | None = None
    place: str | None = None
    within: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    sort: str = "similarity"
    people: list[str] = field(default_factory=list)  # named people who must all be in the photo
    words: str | None = None  # every word must occur in the picture's text

    def request(self, db: str, *, text: str | None = None, image: ImageRef | None = None,
                like: str | None = None) -> SearchRequest:  # fmt: skip
        """The ``SearchRequest`` for this form and one query (at most one of the three: none
        lists the photos of ``people`` or with ``words``)."""
        return SearchRequest(
            db=db, text=text, image=image, like=like, num=self.num, similarity=self.similarity,
            after=self.after, before=self.before, place=self.place, within=self.within,
            types=self.types, sort=self.sort, people=self.people, words=self.words,
        )  # fmt: skip


def search_fields(
    params: dict[str, str], default_results: int, people: list[str] | None = None
) -> SearchForm:
    """The search form from the page's parameters, each checked (``people``: the ``person``
    parameters, which may repeat)."""

    def given(name: str) -> str | None:
        return params.get(name, "").strip() or None

    folder, sort = given("folder"), given("sort")
    return SearchForm(
        num=int_param(params.get("n") or str(default_results), "n", 1, MAX_RESULTS),
        similarity=number_param(params.get("min") or "0", "min"),
        after=given("after"),
        before=given("before"),
        place=given("place"),
        within=[folder] if folder else [],
        types=[t.strip() for t in params.get("type", "").split(",") if t.strip()],
        sort=sort or "similarity",
        people=[p.strip() for p in people or () if p.strip()],
        words=given("words"),
    )


async def upload(request: Request, params: dict[str, str]) -> ImageRef:
    """The image of a multipart search (field ``image``); its other fields join ``params``."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise InvalidRequest("an upload needs a Content-Length")
    if int(length) > UPLOAD_MAX_BYTES + 64 * 1024:
        raise InvalidRequest(f"the image is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB")
    form = await request.form(max_files=1, max_fields=20, max_part_size=UPLOAD_MAX_BYTES)
    params.update({k: v for k, v in form.multi_items() if isinstance(v, str)})
    file = form.get("image")
    if not isinstance(file, UploadFile):
        raise InvalidRequest("send the image as the multipart field 'image'")
    data = await file.read(UPLOAD_MAX_BYTES + 1)
    await form.close()
    if len(data) > UPLOAD_MAX_BYTES:
        raise InvalidRequest(f"the image is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB")
    return ImageRef(data=data, name=(file.filename or "dropped image")[:200])


async def json_body(request: Request, shape: str) -> JsonObject:
    """A POST's JSON object (``shape``: what it should hold, for the error)."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest(f"send {shape}")
    return body


def with_urls(db: str, item: Message) -> JsonObject:
    """An image (a hit, a group's image, an image's details, a person's photo) with its picture
    URLs (None for an image without an id), and a video's (``"type": "video"``) file URL."""
    data: JsonObject = to_wire(item)
    image_id = data.get("id")
    if image_id is None:
        return {**data, "thumbnail": None, "image": None}
    urls = {"thumbnail": f"/thumb/{db}/{image_id}", "image": f"/image/{db}/{image_id}"}
    if data.get("type") == "video":  # the picture at its moment, and the file to play from there
        urls["video"] = f"/video/{db}/{image_id}"
    return {**data, **urls}


def json_reply(content: Any) -> JSONResponse:
    """An API answer (never cached: it changes as photos are added)."""
    return JSONResponse(content, headers=_NO_STORE)


def int_param(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, not {value}")
    return value


def number_param(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, not {text[:40]!r}") from None


def is_loopback_client(request: Request) -> bool:
    """Whether the browser runs on the daemon's machine (an IP address on loopback)."""
    return (
        request.client is not None and is_loopback(request.client.host) and request.client.host != "localhost"
    )


def answers_errors(
    route: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A route whose ``ISearchError`` becomes the protocol's error object with an HTTP status."""

    async def answer(request: Request) -> Response:
        try:
            return await route(request)
        except ISearchError as e:
            return JSONResponse(
                {"error": e.to_dict()}, status_code=_STATUS.get(e.code, 500), headers=_NO_STORE
            )

    return answer
