"""The web page's routes: the page itself, its JSON API under ``/api/`` and the pictures.

Every route translates HTTP into protocol requests sent through a ``Client`` (the daemon's own
request handling validates them as it does any other client's) and never names a file: images
are asked for by database and id, and the daemon reads only the paths its catalog holds for them.

    GET  /api/search?q=TEXT&n=N&db=DB&min=PCT[&after&before&folder&place&type&sort]   by text
    GET  /api/search?like=ID&...                 more like an image of the database
    POST /api/search  (multipart, field "image") by an image file; the other fields as above
    GET  /api/dbs     GET /api/status?db=DB     GET /api/image/DB/ID     GET /api/dups?db&min&folder&n
    POST /api/open    {"db", "id"}: open the image's folder (a browser on the daemon's machine only)
    GET  /thumb/DB/ID   GET /image/DB/ID
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from isearchd.client import Client
from isearchd.errors import InvalidRequest, ISearchError, PermissionDenied
from isearchd.files.opener import open_paths
from isearchd.protocol import b64encode, is_loopback
from isearchd.transports import Transport
from isearchd.version import __version__
from isearchd.web.guard import SESSION_COOKIE, Guard, Policy
from isearchd.web.thumbs import Thumbnails

# An image dropped on the page: at most this many bytes (the daemon's own bomb guard decodes it).
UPLOAD_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_RESULTS = 50
MAX_RESULTS = 500
LOGIN_FAILURE_DELAY_S = 1.0
_STATUS = {"invalid_request": 400, "protocol_error": 400, "bad_image": 400, "not_found": 404,
           "permission_denied": 403, "model_mismatch": 409, "busy": 503}  # fmt: skip
_NO_STORE = {"cache-control": "no-store"}
_PLACEHOLDER_HEADERS = {"cache-control": "no-store", "x-imgsearch-placeholder": "1"}


def _static(name: str) -> bytes:
    return resources.files("isearchd.web").joinpath("static", name).read_bytes()


class Backend:
    """One ``Client`` per thread over the daemon's in-process transport (requests name their
    database themselves)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._local = threading.local()

    def call(self, op: str, args: dict[str, Any]) -> Any:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(transport=self.transport)
        return client.call(op, args)


def build_app(backend: Backend, thumbs: Thumbnails, policy: Policy) -> Guard:
    """The web page's ASGI application, behind its ``Guard``."""
    index = (
        _static("index.html").decode().replace("{{csrf}}", policy.csrf).replace("{{version}}", __version__)
    )
    login_page = _static("login.html")
    placeholder = _static("placeholder.svg")

    async def call(op: str, **args: Any) -> Any:
        return await run_in_threadpool(backend.call, op, args)

    def picture_urls(db: str, item: dict[str, Any]) -> dict[str, Any]:
        if item.get("id") is None:
            return {**item, "thumbnail": None, "image": None}
        return {**item, "thumbnail": f"/thumb/{db}/{item['id']}", "image": f"/image/{db}/{item['id']}"}

    async def page(request: Request) -> Response:
        return HTMLResponse(index, headers=_NO_STORE)

    async def login_form(request: Request) -> Response:
        if not policy.login_required:
            return RedirectResponse("/", status_code=303)
        page = login_page
        if "failed" in request.query_params:
            page = page.replace(
                b"<form", b'<p class="error">That is not the token. Try again.</p>\n  <form', 1
            )
        return HTMLResponse(page, headers=_NO_STORE)

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        given = form.get("token")
        if not isinstance(given, str) or not policy.token_ok(given):
            await asyncio.sleep(LOGIN_FAILURE_DELAY_S)  # a guess a second, at most
            return RedirectResponse("/login?failed=1", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, policy.session, httponly=True, samesite="strict", path="/")
        return response

    @_answers_errors
    async def search(request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        image: dict[str, Any] | None = None
        if request.method == "POST":
            form = await _upload_form(request)
            params.update({k: v for k, v in form.multi_items() if isinstance(v, str)})
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise InvalidRequest("send the image as the multipart field 'image'")
            data = await upload.read(UPLOAD_MAX_BYTES + 1)
            await form.close()
            if len(data) > UPLOAD_MAX_BYTES:
                raise InvalidRequest(f"the image is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB")
            name = (upload.filename or "dropped image")[:200]
            image = {"data": b64encode(data), "name": name}
        db = params.get("db") or "default"
        args = search_args(params)
        like = params.get("like")
        if image is not None:
            args["image"], kind, query = image, "image", image["name"]
        elif like:
            info = await call("image_info", db=db, image_id=_int(like, "like", 0, 2**62))
            args["like"], kind, query = info["label"], "like", info["label"]
        elif params.get("q", "").strip():
            args["text"], kind, query = params["q"], "text", params["q"]
        else:
            raise InvalidRequest("give a text (q), an image of the database (like) or an image file")
        hits = await call("search", db=db, **args)
        return JSONResponse(
            {"query": query, "kind": kind, "db": db, "min_similarity": args["similarity"],
             "sort": args.get("sort", "similarity"), "results": [picture_urls(db, h) for h in hits]},
            headers=_NO_STORE,
        )  # fmt: skip

    @_answers_errors
    async def dbs(request: Request) -> Response:
        return JSONResponse({"dbs": await call("list_dbs"), "default": "default"}, headers=_NO_STORE)

    @_answers_errors
    async def status(request: Request) -> Response:
        db = request.query_params.get("db") or "default"
        info = await call("status")
        try:
            size = (await call("db_info", db=db)).get("size", 0)
        except ISearchError:
            size = None  # a database that does not exist yet
        return JSONResponse(
            {"version": info.get("version"), "model": info.get("model"), "queue": info.get("queue"),
             "watch": info.get("watch"), "metadata": info.get("metadata"), "db": db, "images": size,
             "local": _loopback(request)},
            headers=_NO_STORE,
        )  # fmt: skip

    @_answers_errors
    async def image_info(request: Request) -> Response:
        db, image_id = request.path_params["db"], request.path_params["id"]
        info = await call("image_info", db=db, image_id=image_id)
        info.pop("mtime_ns", None)
        return JSONResponse(picture_urls(db, info), headers=_NO_STORE)

    @_answers_errors
    async def dups(request: Request) -> Response:
        p = request.query_params
        db = p.get("db") or "default"
        args: dict[str, Any] = {"similarity": _number(p.get("min") or "90", "min"),
                                "num": _int(p.get("n") or "200", "n", 1, 10_000)}  # fmt: skip
        if p.get("folder"):
            args["within"] = p["folder"]
        found = await call("dups", db=db, **args)
        for group in found["groups"]:
            group["images"] = [picture_urls(db, i) for i in group["images"]]
        return JSONResponse({"db": db, **found}, headers=_NO_STORE)

    @_answers_errors
    async def open_folder(request: Request) -> Response:
        if not _loopback(request):
            raise PermissionDenied("folders open only for a browser on the daemon's own machine")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise InvalidRequest('send {"db": ..., "id": ...}')
        db = body.get("db") or "default"
        info = await call("image_info", db=str(db), image_id=_int(str(body.get("id")), "id", 0, 2**62))
        folder = info["path"].rsplit("/", 1)[0] or "/"
        await run_in_threadpool(open_paths, [folder])
        return JSONResponse({"opened": folder}, headers=_NO_STORE)

    async def picture(request: Request, full: bool) -> Response:
        db, image_id = request.path_params["db"], request.path_params["id"]
        try:
            info = await call("image_info", db=db, image_id=image_id)
        except ISearchError:
            return Response(placeholder, media_type="image/svg+xml", headers=_PLACEHOLDER_HEADERS)
        etag = f'"{info["hash"]}{"" if full else "-t"}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        if full:
            got = await thumbs.full(info)
            data, media = got if got is not None else (None, "")
        else:
            data, media = await thumbs.thumbnail(info), "image/webp"
        if data is None:
            return Response(placeholder, media_type="image/svg+xml", headers=_PLACEHOLDER_HEADERS)
        return Response(
            data, media_type=media, headers={"etag": etag, "cache-control": "private, max-age=300"}
        )

    async def thumb(request: Request) -> Response:
        return await picture(request, full=False)

    async def full_image(request: Request) -> Response:
        return await picture(request, full=True)

    routes = [
        Route("/", page),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/api/search", search, methods=["GET", "POST"]),
        Route("/api/dbs", dbs),
        Route("/api/status", status),
        Route("/api/image/{db}/{id:int}", image_info),
        Route("/api/dups", dups),
        Route("/api/open", open_folder, methods=["POST"]),
        Route("/thumb/{db}/{id:int}", thumb),
        Route("/image/{db}/{id:int}", full_image),
        Mount("/static", StaticFiles(packages=[("isearchd.web", "static")])),
    ]
    return Guard(Starlette(routes=routes), policy)


def search_args(params: dict[str, str]) -> dict[str, Any]:
    """The ``search`` op's fields (less the query itself) from the page's parameters."""
    args: dict[str, Any] = {
        "num": _int(params.get("n") or str(DEFAULT_RESULTS), "n", 1, MAX_RESULTS),
        "similarity": _number(params.get("min") or "0", "min"),
    }
    for name in ("after", "before", "place"):
        if params.get(name, "").strip():
            args[name] = params[name].strip()
    if params.get("folder", "").strip():
        args["within"] = [params["folder"].strip()]
    if params.get("type", "").strip():
        args["types"] = [t.strip() for t in params["type"].split(",") if t.strip()]
    if params.get("sort", "").strip() not in ("", "similarity"):
        args["sort"] = params["sort"].strip()
    return args


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, not {value}")
    return value


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, not {text[:40]!r}") from None


def _loopback(request: Request) -> bool:
    return (
        request.client is not None and is_loopback(request.client.host) and request.client.host != "localhost"
    )


async def _upload_form(request: Request) -> FormData:
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise InvalidRequest("an upload needs a Content-Length")
    if int(length) > UPLOAD_MAX_BYTES + 64 * 1024:
        raise InvalidRequest(f"the image is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB")
    return await request.form(max_files=1, max_fields=20, max_part_size=UPLOAD_MAX_BYTES)


def _answers_errors(
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
