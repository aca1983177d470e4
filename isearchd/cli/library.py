"""``isearch add`` and ``isearch db``: fill a database, and inspect, list or clear databases.

Both ask the daemon through the Client; ``db_info`` (also used by ``search``) asks it before
anything is printed, so a command that cannot reach the service or its database prints nothing
but the error.
"""

from __future__ import annotations

import shlex
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer import _click as click

from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.cli.output import EXIT_ERROR, ProgressBar, confirm, plural
from isearchd.config import settings
from isearchd.errors import ISearchError, NotFound
from isearchd.files.names import printable, shown

if TYPE_CHECKING:
    from isearchd.client import Client
    from isearchd.messages import DbInfo


class LabelType(StrEnum):
    path = "path"
    name = "name"


def add(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="Image files and folders (recursive).")],
    label: Annotated[
        LabelType,
        typer.Option(
            "-l", "--label", case_sensitive=False, help="Label images by absolute path or by file name."
        ),
    ] = LabelType.path,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Add images to a database; skips duplicates and hidden files. Exit 1 if any file failed."""
    db_name, _ = target(ctx, db, bind)
    missing = [p for p in paths if not Path(p).expanduser().exists()]
    if missing:
        raise NotFound(f"{', '.join(missing)}: no such file or folder; nothing was added")
    client = client_for(ctx, db, bind)
    progress = ProgressBar("Adding", "images")
    try:
        report = client.add(
            [str(Path(p).expanduser()) for p in paths],
            label_type=label.value,
            progress=lambda event: progress.update(event.done, event.total),
        )
    finally:
        progress.close()
    for path, reason in report.failed:
        typer.secho(f"failed: {shown(path)}: {printable(reason)}", err=True, fg=typer.colors.RED)
    added = report.added
    typer.echo(
        f'Added {added} {plural(added, "image")} to database "{db_name}"; '
        f"skipped {report.skipped} already present; {len(report.failed)} failed"
    )
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


def db_info(client: Client) -> DbInfo | None:
    """The client's database info; None when the data home has no database at all (fresh).

    Commands ask it before printing a preamble or a question: it proves that the service answers
    and that the database exists. A missing database while others exist stays an error: the
    daemon's message names the closest existing name.
    """
    try:
        return client.db_info()
    except NotFound:
        if client.list_dbs():
            raise
        return None


def no_images_yet(db_name: str) -> str:
    option = "" if db_name == settings.DEFAULT_DB else f" -d {shlex.quote(db_name)}"
    return (
        f'Database "{db_name}" has no images yet. Add some with `isearch add{option} PATH...` '
        f"or keep a folder in sync with `isearch watch{option} FOLDER`."
    )


def db_command(
    ctx: typer.Context,
    info: Annotated[bool, typer.Option("-i", "--info", help="Show the database's information.")] = False,
    list_: Annotated[bool, typer.Option("-l", "--list", help="List all databases.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every image from the database.")] = False,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Clear without asking for confirmation.")] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Database management: --info, --list or --clear (one of them)."""
    if sum((info, list_, clear)) != 1:
        raise click.exceptions.UsageError("give exactly one of --info, --list, --clear", ctx=ctx)
    db_name, _ = target(ctx, db, bind)
    client = client_for(ctx, db, bind)
    if list_:
        names = client.list_dbs()
        if not names:
            typer.echo("No databases yet (add images with `isearch add PATH...`).")
            return
        typer.echo("Available databases:")
        for name in names:
            typer.echo(f"* {name}")
    elif info:
        data = db_info(client)
        if data is None:
            typer.echo(no_images_yet(db_name))
            return
        typer.echo(f'Database "{data.name}"')
        typer.echo(f"* Base: {data.base}")
        typer.echo(f"* Size: {data.size}")
        if data.vectors is not None and data.vectors != data.size:
            typer.echo(f"* Vectors: {data.vectors} (a video has one per indexed frame)")
        typer.echo(f"* Capacity: {data.capacity}")
        if data.model:
            typer.echo(f"* Model: {data.model}")
    else:
        size = client.db_info().size  # it answers and the database exists: ask
        if not yes:
            _confirm_clear(db_name, size)
        client.clear_db()
        typer.echo(f'Database "{db_name}" has been cleared.')


def _confirm_clear(db_name: str, size: int) -> None:
    """Ask before clearing (``confirm``: a piped answer counts; none at all refuses)."""
    question = (
        f'Clear database "{db_name}" ({size} {plural(size, "image")})? '
        "Every image in it is removed; this cannot be undone."
    )
    refusal = ISearchError(
        f'refusing to clear database "{db_name}" without confirmation: no answer was given; '
        "pass -y to confirm"
    )
    if not confirm(question, refusal):
        typer.echo("Nothing was cleared.")
        raise typer.Exit(EXIT_ERROR)
