"""The login form beyond loopback: the daemon's token, given once, for a session cookie."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from isearchd.web.guard import SESSION_COOKIE
from isearchd.web.state import page_of

LOGIN_FAILURE_DELAY_S = 1.0
_NO_STORE = {"cache-control": "no-store"}


async def login_form(request: Request) -> Response:
    page = page_of(request)
    if not page.policy.login_required:
        return RedirectResponse("/", status_code=303)
    form = page.login
    if "failed" in request.query_params:
        form = form.replace(b"<form", b'<p class="error">That is not the token. Try again.</p>\n  <form', 1)
    return HTMLResponse(form, headers=_NO_STORE)


async def login(request: Request) -> Response:
    policy = page_of(request).policy
    form = await request.form(max_files=0, max_fields=4)
    given = form.get("token")
    if not isinstance(given, str) or not policy.token_ok(given):
        await asyncio.sleep(LOGIN_FAILURE_DELAY_S)  # a guess a second, at most
        return RedirectResponse("/login?failed=1", status_code=303)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, policy.session, httponly=True, samesite="strict", path="/")
    return response
