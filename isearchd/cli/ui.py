"""``isearch ui``: have the daemon serve its web page and open it in the default browser."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.errors import InvalidRequest
from isearchd.files.opener import open_paths
from isearchd.protocol import is_loopback

LISTEN_HELP = (
    "Address the page is served at, HOST:PORT [default: the config's ui.listen, else 127.0.0.1:8765]. "
    "Beyond loopback the daemon needs a token, and the page asks for it."
)


def ui(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option("--listen", metavar="HOST:PORT", help=LISTEN_HELP)] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the page's address instead of opening it.")
    ] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Search and look at your photos in the browser (the daemon serves the page)."""
    db_name, _ = target(ctx, db, bind)
    with client_for(ctx, db, bind) as client:
        served = client.ui(listen)
        remote = client.is_tcp
    url = served.url
    if remote and _loopback(served.listen):
        raise InvalidRequest(
            f"the daemon at {client.bind} serves its page on its own loopback ({served.listen}), out of "
            "this machine's reach: give --listen 0.0.0.0:8765 (it then asks for the token), or forward "
            "the port (ssh -L 8765:127.0.0.1:8765 ...)"
        )
    if remote:  # a wildcard address names no host: the daemon's is the one -B names
        host = client.bind.rsplit(":", 1)[0]
        url = url.replace("127.0.0.1", host, 1).replace("[::1]", f"[{host}]" if ":" in host else host, 1)
    if db_name != "default":
        url += f"?db={quote(db_name)}"
    login = " (log in with the daemon's token)" if served.login else ""
    typer.echo(f"ImgSearch web page: {url}{login}")
    if not no_browser:
        open_paths([url])


def _loopback(listen: str) -> bool:
    return is_loopback(listen.rsplit(":", 1)[0].strip("[]"))
