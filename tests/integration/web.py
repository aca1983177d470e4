"""HTTP helpers for the web page's tests: raw requests (any Host, Origin or header a hostile page
or a browser would send) to a real daemon's page, with nothing between them."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def placeholder(self) -> bool:
        return self.headers.get("x-imgsearch-placeholder") == "1"


def request(
    address: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    host: str | None = None,
) -> Reply:
    """One request to ``address`` ("HOST:PORT"); ``host`` overrides the Host header."""
    name, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(name.strip("[]"), int(port), timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else address)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(
            resp.status,
            {k.lower(): v for k, v in resp.getheaders()},
            data,
            [v for k, v in resp.getheaders() if k.lower() == "set-cookie"],
        )
    finally:
        conn.close()


def csrf_token(address: str, headers: dict[str, str] | None = None) -> str:
    page = request(address, "GET", "/", headers=headers)
    assert page.status == 200, page.body[:300]
    m = re.search(rb'name="csrf-token" content="([^"]+)"', page.body)
    assert m is not None, "the page carries no CSRF token"
    return m.group(1).decode()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    address: str, path: str, image: bytes, *, csrf: str | None, origin: str | None, **fields: str
) -> Reply:
    body, ctype = multipart(fields, {"image": ("query.jpg", image)})
    headers = {"Content-Type": ctype}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    if origin is not None:
        headers["Origin"] = origin
    return request(address, "POST", path, headers=headers, body=body)
