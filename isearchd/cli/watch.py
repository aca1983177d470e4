"""``isearch watch`` and ``isearch unwatch``: a thin typer adapter over the Client's watch calls.

The main CLI mounts them on its root app with ``register(app)``; the root's ``-d``/``-B`` values
arrive through ``ctx.find_root().obj`` (``{"db": ..., "bind": ...}``) and the command's own
``-d``/``-B`` win over them.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from isearchd.config import settings
from isearchd.files.names import json_safe, printable, shown

if TYPE_CHECKING:
    from isearchd.client import Client

# How often `watch --wait` asks the daemon how far the initial scan got.
WAIT_POLL_S = 0.5

# The root command's -d/-B, repeated on these commands so they work after the command name too.
DbOpt = Annotated[
    str | None, typer.Option("-d", "--db", metavar="DB_NAME", help='Database name [default: "default"].')
]
BindOpt = Annotated[
    str | None,
    typer.Option("-B", "--bind", metavar="BIND", help="Service address (socket path or host:port)."),
]


def _target(ctx: typer.Context, db: str | None, bind: str | None) -> tuple[str, str, bool]:
    """(database, bind address, whether a database was named explicitly)."""
    from isearchd.config.file import load_config
    from isearchd.service.control import resolve_bind

    root = ctx.find_root().obj or {}
    named = db or root.get("db")
    address = bind or root.get("bind") or load_config().service.bind
    return named or settings.DEFAULT_DB, resolve_bind(address), bool(named)


def _client(db_name: str, bind: str) -> Client:
    from isearchd.client import Client

    return Client(db_name=db_name, bind=bind)


def _state_text(f: dict[str, Any]) -> str:
    state = str(f.get("state", "?"))
    if f.get("mode") == "polling" and state != "polling":
        state += " (polling)"
    return state


def format_folders(folders: list[dict[str, Any]]) -> list[str]:
    """The `watch --list` table, then one line per folder with something to explain."""
    if not folders:
        return ["No folders are watched. Watch one with `isearch watch FOLDER`."]
    head = ("FOLDER", "DATABASE", "STATE", "IMAGES", "PENDING")
    rows = [
        (
            shown(str(f["path"])),
            str(f["db"]),
            _state_text(f),
            "-" if f.get("images") is None else str(f["images"]),
            str(f.get("pending", 0)),
        )
        for f in folders
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (head, *rows)]
    for f in folders:
        notes = []
        if f.get("reason"):
            notes.append(str(f["reason"]))
        if f.get("error_count"):
            first = f["errors"][0] if f.get("errors") else None
            where = f": {shown(first[0])} ({printable(first[1])})" if first else ""
            notes.append(f"{f['error_count']} unreadable folder(s){where}")
        if f.get("failed_files"):
            last = f.get("last_failure")
            detail = f"; last: {shown(last[0])} ({printable(last[1])})" if last else ""
            count = f["failed_files"]
            notes.append(f"{count} file(s) could not be indexed{detail} (`isearch watch --errors`)")
        if f.get("exclude"):
            notes.append("excluding " + ", ".join(f["exclude"]))
        if f.get("source") == "config":
            notes.append("from the config file")
        if notes:
            lines.append(f"  {shown(f['path'])}: " + "; ".join(notes))
    return lines


def watch_command(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH", help="Folders to keep in sync with the database (recursively)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            "-x",
            metavar="GLOB",
            help="Skip matching files/folders, relative to the folder (`**/raw/**`, `*.psd`). Repeatable.",
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", "-l", help="List watched folders: state, images, pending changes.")
    ] = False,
    errors: Annotated[
        bool,
        typer.Option(
            "--errors", help="List the files of watched folders (or of PATH) that could not be indexed."
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the initial scan is done.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the folders' state as JSON.")] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
) -> None:
    """Watch folders: new, changed, moved and deleted images are synced automatically.

    The folders are remembered (watched again after a restart) and scanned right away; changes
    made while the service was stopped are picked up when it starts. Hidden files, partial
    downloads (.part, .crdownload, .tmp) and `--exclude` matches are skipped.
    """
    db_name, address, named = _target(ctx, db, bind)
    with _client(db_name, address) as client:
        if errors:
            if list_ or wait or exclude or (paths and len(paths) > 1):
                raise typer.BadParameter("--errors takes at most one folder and no other option but --json")
            failures = client.watch_errors(paths[0] if paths else None, all_dbs=not named)
            _print_failures(failures, as_json)
            return
        if list_ or not paths:
            if paths:
                raise typer.BadParameter("--list takes no folders")
            if not list_:
                raise typer.BadParameter("give one or more folders to watch, or --list")
            folders = client.watch_list(all_dbs=not named)
            _print(folders, as_json)
            return
        result = client.watch(paths, exclude=exclude or ())
        for f in result:
            typer.echo(f'Watching {shown(f["path"])} for database "{f["db"]}"; scanning it now.')
        if wait:
            _wait_for_scan(client, [f["path"] for f in result], db_name, as_json)
        elif as_json:
            _print(result, True)
        else:
            typer.echo("`isearch watch --list` shows the progress.")


def _wait_for_scan(client: Client, roots: list[str], db_name: str, as_json: bool) -> None:
    last = ""
    while True:
        mine = [f for f in client.watch_list(all_dbs=False) if f["path"] in roots]
        busy = [f for f in mine if f["state"] in ("starting", "scanning") or f.get("pending")]
        if not busy:
            break
        line = ", ".join(f"{shown(f['path'])}: {f['pending']} pending" for f in busy)
        if line != last and not as_json:
            typer.echo(line)
            last = line
        time.sleep(WAIT_POLL_S)
    _print(mine, as_json)


def _print(folders: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json_safe(json.dumps(folders, indent=2, ensure_ascii=False)))
        return
    for line in format_folders(folders):
        typer.echo(line)


def _print_failures(failures: list[dict[str, str]], as_json: bool) -> None:
    if as_json:
        typer.echo(json_safe(json.dumps(failures, indent=2, ensure_ascii=False)))
        return
    if not failures:
        typer.echo("No file of a watched folder failed to index.")
        return
    for f in failures:
        typer.echo(f"{shown(f['path'])}: {printable(f['reason'])}")
    n = len(failures)
    typer.echo(f"{n} {'file' if n == 1 else 'files'} could not be indexed.")


def unwatch_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="PATH", help="A watched folder.")],
    purge: Annotated[
        bool, typer.Option("--purge", help="Also remove the folder's images from the database.")
    ] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
) -> None:
    """Stop watching a folder. Its images stay searchable unless --purge removes them."""
    db_name, address, _ = _target(ctx, db, bind)
    with _client(db_name, address) as client:
        result = client.unwatch(path, purge=purge)
    if purge:
        n = int(result.get("removed", 0))
        typer.echo(
            f"Stopped watching {shown(result['path'])}; removed its {n} {'image' if n == 1 else 'images'} "
            f'from database "{result["db"]}".'
        )
    else:
        typer.echo(
            f'Stopped watching {shown(result["path"])}; its images stay in database "{result["db"]}" '
            "(`isearch unwatch --purge` removes them)."
        )


def register(app: typer.Typer) -> None:
    """Add ``watch`` and ``unwatch`` to the root ``isearch`` app."""
    app.command("watch")(watch_command)
    app.command("unwatch")(unwatch_command)
