"""Who may ask the web page anything: the rules every HTTP request passes before a route sees it.

A web server on the user's machine is reachable by every page the user's browser visits (and by
other machines when it listens beyond loopback), so, for every request, in this order:

1. ``Host`` must be an IP address, ``localhost`` or one of this machine's own names. A DNS name
   that merely resolves to this machine (DNS rebinding: a hostile page's own name pointed here)
   is refused, so such a page never becomes same-origin with ours.
2. A request the browser marks as coming from another site (``Sec-Fetch-Site`` other than
   ``same-origin`` or ``none``) is refused, except a plain navigation to the page or the login
   form (a link to the page may still be followed; nothing can be embedded or fetched).
3. Beyond loopback, every route but the login form and the static files needs the session cookie
   the login form sets for the daemon's token (HttpOnly, SameSite=Strict).
4. Anything but GET and HEAD must come from our own origin (``Origin``), and, except the login
   form itself, carry the page's CSRF token in ``X-CSRF-Token`` (which another site can neither
   read nor send without a CORS preflight, which is never answered).

Every response also tells the browser: scripts, styles, images and videos from this origin only; never
inside a frame; no cross-origin reads of anything (``Cross-Origin-Resource-Policy``); no referrer.
There are no CORS headers at all.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "isearch_session"
CSRF_HEADER = "x-csrf-token"
# Paths anyone who passes rules 1 and 2 may reach, logged in or not.
OPEN_PATHS = ("/login", "/static/")
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        b"media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        b"base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def machine_names() -> frozenset[str]:
    """The names this machine answers to as a ``Host``: localhost and its own host names."""
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.update({name.lower(), name.lower().split(".")[0] + ".local"})
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    """The secrets and rules of one web server (made anew each time the daemon starts it)."""

    login_required: bool  # listening beyond loopback: the daemon's token opens a session
    token: str | None = None
    names: frozenset[str] = field(default_factory=machine_names)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def token_ok(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_ok(self, cookie: str | None) -> bool:
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session.encode())

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def host_name(host_header: str) -> str | None:
    """The name part of a ``Host`` header (``[::1]:8765`` -> ``::1``); None when malformed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1 :] and not host[end + 1 :].startswith(":")):
            return None
        return host[1:end]
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def host_allowed(host_header: str | None, names: frozenset[str]) -> bool:
    if not host_header:
        return False
    name = host_name(host_header)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # an address typed or linked as such: not a name that could be rebound
    except ValueError:
        return name.rstrip(".") in names


class Guard:
    """ASGI middleware applying ``Policy`` to every request and the security headers to every
    response."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # none are served; refuse before any handshake
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        refusal = self.check(Request(scope))

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                message = {**message, "headers": headers + list(SECURITY_HEADERS)}
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def check(self, request: Request) -> Response | None:
        """None when ``request`` may go on; else the response that refuses it."""
        headers: Headers = request.headers
        policy = self.policy
        if not host_allowed(headers.get("host"), policy.names):
            return _refuse(403, "this page answers only under this machine's own names or addresses")
        path, method = request.url.path, request.method
        navigation = method in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
        site = headers.get("sec-fetch-site")
        if site not in (None, "same-origin", "none") and not (navigation and path in ("/", "/login")):
            return _refuse(403, "requests from other sites are refused")
        logged_in = policy.session_ok(request.cookies.get(SESSION_COOKIE))
        if policy.login_required and not path.startswith(OPEN_PATHS) and not logged_in:
            if navigation and path == "/":
                return RedirectResponse("/login", status_code=303)
            return _refuse(401, "log in first: open the page and give the daemon's token")
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            own = f"{request.url.scheme}://{headers.get('host', '')}"
            if origin is None or origin.lower() != own.lower():
                return _refuse(403, "state-changing requests must come from this page itself")
            if path != "/login" and not policy.csrf_ok(headers.get(CSRF_HEADER)):
                return _refuse(403, "missing or wrong CSRF token; reload the page")
        return None


def _refuse(status: int, message: str) -> Response:
    body: dict[str, object] = {"error": {"code": "forbidden" if status == 403 else "unauthorized",
                                      "message": message}}  # fmt: skip
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})
