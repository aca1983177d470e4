"""``isearch migrate``: copy a database between the daemon's embedded store and Qdrant."""

from __future__ import annotations

from typing import Annotated

import typer

from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.cli.output import ProgressBar, plural
from isearchd.errors import InvalidRequest


def migrate(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="URL", help="Copy the local database to this Qdrant store (qdrant://HOST:PORT)."
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="URL", help="Copy the database of this Qdrant store into the local one."
        ),
    ] = None,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Copy a database (vectors, catalog, watched folders) to or from Qdrant; the source stays as it was.

    Local means the embedded store in the service's data home; the URL is qdrant://HOST:PORT,
    qdrants://HOST:PORT or qdrant:///ABS/PATH. Nothing is embedded again. The service does the copy
    (start it first); running it again after an interruption finishes it.
    """
    if (to is None) == (source is None):
        raise InvalidRequest("give exactly one of --to URL and --from URL")
    db_name, _ = target(ctx, db, bind)
    client = client_for(ctx, db, bind)
    progress = ProgressBar("Copying", "images")
    try:
        result = client.migrate(to=to, source=source, progress=lambda e: progress.update(e.done, e.total))
    finally:
        progress.close()
    copied = result.copied
    what = f'{copied} {plural(copied, "image")} of database "{db_name}"'
    typer.echo(f"Copied {what} from {result.source} to {result.to}")
