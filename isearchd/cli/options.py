"""The options every command shares (``-d``, ``-B``, ``-v``) and what they resolve to.

A command's own ``-d``/``-B`` win over the root's (``isearch -d photos add ...``), which win over
the configuration (config file, environment) and the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from isearchd.config import settings
from isearchd.version import __version__

if TYPE_CHECKING:
    from isearchd.client import Client
    from isearchd.config.file import Config

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"isearch {__version__}")
        raise typer.Exit()


DbOpt = Annotated[
    str | None,
    typer.Option("-d", "--db", metavar="DB_NAME", help='Database name [default: "default"].'),
]
BindOpt = Annotated[
    str | None,
    typer.Option(
        "-B",
        "--bind",
        metavar="BIND",
        help="Service address: a Unix socket path or host:port [default: ~/.isearch/isearch.sock].",
    ),
]
VersionOpt = Annotated[
    bool,
    typer.Option("-v", "--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
]


def target(ctx: typer.Context, db: str | None, bind: str | None) -> tuple[str, str]:
    """The database and bind address: the command's own options, else the root's, else defaults."""
    root = ctx.find_root().obj or {}
    db_name = db or root.get("db") or settings.DEFAULT_DB
    address = bind or root.get("bind") or effective_config().service.bind
    from isearchd.service.control import resolve_bind

    return db_name, resolve_bind(address)


def effective_config() -> Config:
    """The effective configuration (user config file, environment); defaults for -B, -m, -L."""
    from isearchd.config.file import load_config

    return load_config()


def client_for(ctx: typer.Context, db: str | None, bind: str | None) -> Client:
    """A Client for the database and address the options name."""
    from isearchd.client import Client

    db_name, address = target(ctx, db, bind)
    return Client(db_name=db_name, bind=address)
