"""The web page's routes: the page itself, its JSON API under ``/api/`` and the pictures.

Every route translates HTTP into protocol requests sent through a ``Client`` (the daemon's own
request handling validates them as it does any other client's) and never names a file: images
are asked for by database and id, and the daemon reads only the paths its catalog holds for them.

    GET  /api/search?q=TEXT&n=N&db=DB&min=PCT[&after&before&folder&place&type&sort]   by text
    GET  /api/search?like=ID&...                 more like an image of the database
    POST /api/search  (multipart, field "image") by an image file; the other fields as above
    GET  /api/dbs     GET /api/status?db=DB     GET /api/image/DB/ID     GET /api/dups?db&min&folder&n
    POST /api/open    {"db", "id"[, "file": true]}: open the image's folder, or a video itself at its
                      moment (a browser on the daemon's machine only)
    GET  /thumb/DB/ID   GET /image/DB/ID   (a video's row: the picture at its moment)
    GET  /video/DB/ID   a video's file as it is, with range requests (``isearchd.web.videos``)
    the people routes and the face crops: ``isearchd.web.people``

Routes are module-level functions; what they share (the daemon, the thumbnails, the security
policy, the page's files) is the application's ``state``, set once by ``build_app``.
"""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from isearchd.errors import InvalidRequest, ISearchError, PermissionDenied
from isearchd.files.opener import open_paths
from isearchd.messages import (
    DbInfoRequest,
    DupsRequest,
    ImageInfo,
    ImageInfoRequest,
    ImageRef,
    ListDbsRequest,
    StatusRequest,
)
from isearchd.protocol import to_wire
from isearchd.version import __version__
from isearchd.web.forms import (
    answers_errors,
    int_param,
    is_loopback_client,
    json_body,
    json_reply,
    number_param,
    search_fields,
    upload,
    with_urls,
)
from isearchd.web.guard import Guard, Policy
from isearchd.web.login import login, login_form
from isearchd.web.people import PEOPLE_ROUTES, PLACEHOLDER_HEADERS
from isearchd.web.state import Backend, Page, ask, page_of
from isearchd.web.thumbs import Thumbnails
from isearchd.web.videos import VIDEO_TYPE, moment, served_video

DEFAULT_RESULTS = 50
_NO_STORE = {"cache-control": "no-store"}


def _static(name: str) -> bytes:
    return resources.files("isearchd.web").joinpath("static", name).read_bytes()


def build_app(backend: Backend, thumbs: Thumbnails, policy: Policy) -> Guard:
    """The web page's ASGI application, behind its ``Guard``."""
    index = _static("index.html").decode()
    index = index.replace("{{csrf}}", policy.csrf).replace("{{version}}", __version__)
    app = Starlette(routes=ROUTES)
    app.state.page = Page(backend, thumbs, policy, index, _static("login.html"), _static("placeholder.svg"))
    return Guard(app, policy)


async def page(request: Request) -> Response:
    return HTMLResponse(page_of(request).index, headers=_NO_STORE)


@answers_errors
async def search(request: Request) -> Response:
    params: dict[str, str] = dict(request.query_params)
    image: ImageRef | None = None
    if request.method == "POST":
        image = await upload(request, params)
    db = params.get("db") or "default"
    form = search_fields(params, DEFAULT_RESULTS, request.query_params.getlist("person"))
    like = params.get("like")
    if image is not None:
        query, kind, asked = image.display, "image", form.request(db, image=image)
    elif like:
        liked = ImageInfoRequest(db=db, image_id=int_param(like, "like", 0, 2**62))
        info: ImageInfo = await ask(request, liked)
        query, kind, asked = info.label, "like", form.request(db, like=info.label)
    elif params.get("q", "").strip():
        query, kind, asked = params["q"], "text", form.request(db, text=params["q"])
    elif form.people:
        query, kind, asked = ", ".join(form.people), "people", form.request(db)
    elif form.words:
        query, kind, asked = form.words, "words", form.request(db)
    else:
        raise InvalidRequest(
            "give a text (q), an image of the database (like), an image file, a person or words"
        )
    hits = await ask(request, asked)
    return json_reply(
        {"query": query, "kind": kind, "db": db, "min_similarity": form.similarity,
         "sort": form.sort, "results": [with_urls(db, h) for h in hits]}
    )  # fmt: skip


@answers_errors
async def dbs(request: Request) -> Response:
    return json_reply({"dbs": await ask(request, ListDbsRequest()), "default": "default"})


@answers_errors
async def status(request: Request) -> Response:
    db = request.query_params.get("db") or "default"
    info = await ask(request, StatusRequest())
    try:
        size = (await ask(request, DbInfoRequest(db=db))).size
    except ISearchError:
        size = None  # a database that does not exist yet
    return json_reply(
        {"version": info.version, "model": info.model, "queue": info.queue, "watch": to_wire(info.watch),
         "metadata": to_wire(info.metadata), "db": db, "images": size, "local": is_loopback_client(request),
         "people": to_wire(info.analyses.get("faces", {}).get(db)),
         "words": to_wire(info.analyses.get("words", {}).get(db))}
    )  # fmt: skip


@answers_errors
async def image_info(request: Request) -> Response:
    db, image_id = request.path_params["db"], request.path_params["id"]
    asked = ImageInfoRequest(db=db, image_id=image_id, people=True, words=True)
    info = with_urls(db, await ask(request, asked))
    info.pop("mtime_ns", None)
    return json_reply(info)


@answers_errors
async def dups(request: Request) -> Response:
    p = request.query_params
    db = p.get("db") or "default"
    found = await ask(
        request,
        DupsRequest(
            db=db,
            similarity=number_param(p.get("min") or "90", "min"),
            num=int_param(p.get("n") or "200", "n", 1, 10_000),
            within=p.get("folder") or None,
        ),
    )
    groups = [{**to_wire(g), "images": [with_urls(db, i) for i in g.images]} for g in found.groups]
    return json_reply(
        {"db": db, "min_similarity": found.min_similarity, "total": found.total, "groups": groups}
    )


@answers_errors
async def open_folder(request: Request) -> Response:
    """The image's folder, or (``"file": true``) a video itself, at its moment where the opener
    is a player that takes one (what ``isearch search -o`` does): for a video the browser cannot
    play."""
    if not is_loopback_client(request):
        raise PermissionDenied("folders and videos open only for a browser on the daemon's own machine")
    body = await json_body(request, '{"db": ..., "id": ...}')
    db = str(body.get("db") or "default")
    image_id = int_param(str(body.get("id")), "id", 0, 2**62)
    info: ImageInfo = await ask(request, ImageInfoRequest(db=db, image_id=image_id))
    if body.get("file") is True:
        if info.type != VIDEO_TYPE or info.host is not None:
            raise InvalidRequest(f"image {image_id} is not a video of this machine: open its folder")
        await run_in_threadpool(open_paths, [info.path], [moment(info)])
        return json_reply({"opened": info.path})
    folder = info.path.rsplit("/", 1)[0] or "/"
    await run_in_threadpool(open_paths, [folder])
    return json_reply({"opened": folder})


@answers_errors
async def video(request: Request) -> Response:
    """A video's file (by database and the id of any of its frames), for the large view's player:
    a 404 error for a photo, an unknown id, or a video moved, changed or deleted since indexing.
    ``FileResponse`` answers ``Range`` requests (206), so the browser seeks without reading it all."""
    db, image_id = request.path_params["db"], request.path_params["id"]
    info: ImageInfo = await ask(request, ImageInfoRequest(db=db, image_id=image_id))
    path, st, media = await run_in_threadpool(served_video, info)
    return FileResponse(path, stat_result=st, media_type=media, headers=_NO_STORE)


async def _picture(request: Request, full: bool) -> Response:
    page = page_of(request)
    db, image_id = request.path_params["db"], request.path_params["id"]
    try:
        info: ImageInfo = await ask(request, ImageInfoRequest(db=db, image_id=image_id))
    except ISearchError:
        return Response(page.placeholder, media_type="image/svg+xml", headers=PLACEHOLDER_HEADERS)
    etag = f'"{info.hash}{"" if full else "-t"}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    if full:
        got = await page.thumbs.full(info)
        data, media = got if got is not None else (None, "")
    else:
        data, media = await page.thumbs.thumbnail(info), "image/webp"
    if data is None:
        return Response(page.placeholder, media_type="image/svg+xml", headers=PLACEHOLDER_HEADERS)
    return Response(data, media_type=media, headers={"etag": etag, "cache-control": "private, max-age=300"})


async def thumb(request: Request) -> Response:
    return await _picture(request, full=False)


async def full_image(request: Request) -> Response:
    return await _picture(request, full=True)


ROUTES = [
    Route("/", page),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/api/search", search, methods=["GET", "POST"]),
    Route("/api/dbs", dbs),
    Route("/api/status", status),
    Route("/api/image/{db}/{id:int}", image_info),
    Route("/api/dups", dups),
    Route("/api/open", open_folder, methods=["POST"]),
    *PEOPLE_ROUTES,
    Route("/thumb/{db}/{id:int}", thumb),
    Route("/image/{db}/{id:int}", full_image),
    Route("/video/{db}/{id:int}", video),
    Mount("/static", StaticFiles(packages=[("isearchd.web", "static")])),
]
