"""The web page's people routes: the JSON API of the People view and the face crops.

    GET  /api/people?db=DB[&all=1]          the people (``isearch people --json``)
    GET  /api/people/ID?db=DB               one person's photos (``isearch people show ID --json``,
                                            each photo with its picture URLs)
    POST /api/people/ID/name    {"db", "name"}       name a person (null or "": no name)
    POST /api/people/merge      {"db", "people": [ID, ...]}
    POST /api/people/ID/split   {"db"}               undo the last merge into that person
    POST /api/people/ID/hide    {"db", "hidden"}     hide a person from the list (false: show again)
    POST /api/people/ID/remove  {"db", "path"}       that person is not in that photo
    GET  /face/DB/FACE                      a face's crop (WebP; placeholder SVG when the photo
                                            changed or is gone; 404 for a face that is not there)

Faces, like images, are asked for by database and id; the daemon says where they are (``face``)
and the crop is cut only from the path its catalog holds.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isearchd.errors import InvalidRequest
from isearchd.messages import (
    FaceLocation,
    FaceRequest,
    HidePersonRequest,
    MergePeopleRequest,
    NamePersonRequest,
    PeopleRequest,
    PersonPhotos,
    PersonRequest,
    RemoveFaceRequest,
    SplitPersonRequest,
)
from isearchd.protocol import to_wire
from isearchd.web.faces import face_crop, face_key
from isearchd.web.forms import answers_errors, json_body, json_reply, with_urls
from isearchd.web.state import ask, page_of

__all__ = ["PEOPLE_ROUTES"]

PLACEHOLDER_HEADERS = {"cache-control": "no-store", "x-imgsearch-placeholder": "1"}


def _db(request: Request) -> str:
    return request.query_params.get("db") or "default"


@answers_errors
async def people(request: Request) -> Response:
    hidden = request.query_params.get("all", "") in ("1", "true")
    return json_reply(to_wire(await ask(request, PeopleRequest(db=_db(request), hidden=hidden))))


@answers_errors
async def person(request: Request) -> Response:
    db = _db(request)
    found: PersonPhotos = await ask(request, PersonRequest(db=db, person=request.path_params["id"]))
    return json_reply({**to_wire(found), "photos": [with_urls(db, p) for p in found.photos]})


@answers_errors
async def name_person(request: Request) -> Response:
    body = await json_body(request, '{"db": ..., "name": ...}')
    name, db = body.get("name"), str(body.get("db") or "default")
    asked = NamePersonRequest(db=db, person=request.path_params["id"], name=str(name) if name else None)
    return json_reply(to_wire(await ask(request, asked)))


@answers_errors
async def merge_people(request: Request) -> Response:
    body = await json_body(request, '{"db": ..., "people": [id, id, ...]}')
    ids = body.get("people")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidRequest('"people" must be a list of person ids')
    asked = MergePeopleRequest(db=str(body.get("db") or "default"), people=ids)
    return json_reply(to_wire(await ask(request, asked)))


@answers_errors
async def split_person(request: Request) -> Response:
    body = await json_body(request, '{"db": ...}')
    asked = SplitPersonRequest(db=str(body.get("db") or "default"), person=request.path_params["id"])
    return json_reply(to_wire(await ask(request, asked)))


@answers_errors
async def hide_person(request: Request) -> Response:
    body = await json_body(request, '{"db": ..., "hidden": true or false}')
    hidden = body.get("hidden", True)
    if not isinstance(hidden, bool):
        raise InvalidRequest('"hidden" must be true or false')
    db = str(body.get("db") or "default")
    asked = HidePersonRequest(db=db, person=request.path_params["id"], hidden=hidden)
    return json_reply(to_wire(await ask(request, asked)))


@answers_errors
async def remove_face(request: Request) -> Response:
    body = await json_body(request, '{"db": ..., "path": ...}')
    db = str(body.get("db") or "default")
    asked = RemoveFaceRequest(db=db, person=request.path_params["id"], path=str(body.get("path") or ""))
    return json_reply(to_wire(await ask(request, asked)))


@answers_errors
async def face(request: Request) -> Response:
    page = page_of(request)
    location: FaceLocation = await ask(
        request, FaceRequest(db=request.path_params["db"], face=request.path_params["id"])
    )
    etag = f'"{face_key(location)}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    data = await face_crop(page.thumbs, location)
    if data is None:
        return Response(page.placeholder, media_type="image/svg+xml", headers=PLACEHOLDER_HEADERS)
    return Response(
        data, media_type="image/webp", headers={"etag": etag, "cache-control": "private, max-age=300"}
    )


PEOPLE_ROUTES = [
    Route("/api/people", people),
    Route("/api/people/merge", merge_people, methods=["POST"]),
    Route("/api/people/{id:int}", person),
    Route("/api/people/{id:int}/name", name_person, methods=["POST"]),
    Route("/api/people/{id:int}/remove", remove_face, methods=["POST"]),
    Route("/api/people/{id:int}/split", split_person, methods=["POST"]),
    Route("/api/people/{id:int}/hide", hide_person, methods=["POST"]),
    Route("/face/{db}/{id:int}", face),
]
