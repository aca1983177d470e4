"""``isearch watch`` and ``isearch unwatch``: a thin typer adapter over the Client's watch calls.

The main CLI mounts them on its root app with ``register(app)``; they take the options every
command shares (``cli.options``). Without ``-d``, ``watch --list`` and ``--errors`` show every
database's folders.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from isearchd.cli.options import BindOpt, DbOpt, client_for
from isearchd.files.names import json_safe, printable, shown
from isearchd.protocol import to_wire

if TYPE_CHECKING:
    from isearchd.client import Client
    from isearchd.messages import FolderState, Status, WatchFailure

# How often `watch --wait` asks the daemon how far the initial scan got.
WAIT_POLL_S = 0.5


def _named(ctx: typer.Context, db: str | None) -> bool:
    """Whether a database was named (on the command or the root): else lists cover every one."""
    return bool(db or (ctx.find_root().obj or {}).get("db"))


def _state_text(f: FolderState) -> str:
    state = f.state
    if f.mode == "polling" and state != "polling":
        state += " (polling)"
    return state


def format_folders(folders: list[FolderState]) -> list[str]:
    """The `watch --list` table, then one line per folder with something to explain."""
    if not folders:
        return ["No folders are watched. Watch one with `isearch watch FOLDER`."]
    head = ("FOLDER", "DATABASE", "STATE", "IMAGES", "PENDING")
    rows = [
        (shown(f.path), f.db, _state_text(f), "-" if f.images is None else str(f.images), str(f.pending))
        for f in folders
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (head, *rows)]
    for f in folders:
        notes = _notes(f)
        if notes:
            lines.append(f"  {shown(f.path)}: " + "; ".join(notes))
    return lines


def _notes(f: FolderState) -> list[str]:
    notes = []
    if f.reason:
        notes.append(f.reason)
    if f.error_count:
        first = f.errors[0] if f.errors else None
        where = f": {shown(first[0])} ({printable(first[1])})" if first else ""
        notes.append(f"{f.error_count} unreadable folder(s){where}")
    if f.failed_files:
        last = f.last_failure
        detail = f"; last: {shown(last[0])} ({printable(last[1])})" if last else ""
        notes.append(f"{f.failed_files} file(s) could not be indexed{detail} (`isearch watch --errors`)")
    if f.exclude:
        notes.append("excluding " + ", ".join(f.exclude))
    if f.source == "config":
        notes.append("from the config file")
    return notes


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
    named = _named(ctx, db)
    with client_for(ctx, db, bind) as client:
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
            _list(client, all_dbs=not named, as_json=as_json)
            return
        result = client.watch(paths, exclude=exclude or ())
        for f in result:
            typer.echo(f'Watching {shown(f.path)} for database "{f.db}"; scanning it now.')
        if wait:
            _wait_for_scan(client, [f.path for f in result], as_json)
        elif as_json:
            _print(result, True)
        else:
            typer.echo("`isearch watch --list` shows the progress.")


def _list(client: Client, *, all_dbs: bool, as_json: bool) -> None:
    """`watch --list`: the folders, then how far each database's faces and words are read."""
    folders = client.watch_list(all_dbs=all_dbs)
    _print(folders, as_json)
    if not as_json:
        for line in people_lines(client.status(), sorted({f.db for f in folders})):
            typer.echo(line)


def people_lines(status: Status, dbs: list[str]) -> list[str]:
    """How far the faces and the words of each database's photos are read (where on for it)."""
    lines = []
    for analysis, what, read in (("faces", "people", "faces"), ("words", "words", "words")):
        found = status.analyses.get(analysis, {})
        lines += [
            f'{what} of "{db}": {read} read in {found[db].done:,} of {found[db].total:,} photos'
            for db in dbs
            if db in found
        ]
    return lines


def _wait_for_scan(client: Client, roots: list[str], as_json: bool) -> None:
    last = ""
    while True:
        mine = [f for f in client.watch_list(all_dbs=False) if f.path in roots]
        busy = [f for f in mine if f.state in ("starting", "scanning") or f.pending]
        if not busy:
            break
        line = ", ".join(f"{shown(f.path)}: {f.pending} pending" for f in busy)
        if line != last and not as_json:
            typer.echo(line)
            last = line
        time.sleep(WAIT_POLL_S)
    _print(mine, as_json)


def _print(folders: list[FolderState], as_json: bool) -> None:
    if as_json:
        typer.echo(json_safe(json.dumps(to_wire(folders), indent=2, ensure_ascii=False)))
        return
    for line in format_folders(folders):
        typer.echo(line)


def _print_failures(failures: list[WatchFailure], as_json: bool) -> None:
    if as_json:
        typer.echo(json_safe(json.dumps(to_wire(failures), indent=2, ensure_ascii=False)))
        return
    if not failures:
        typer.echo("No file of a watched folder failed to index.")
        return
    for f in failures:
        typer.echo(f"{shown(f.path)}: {printable(f.reason)}")
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
    with client_for(ctx, db, bind) as client:
        result = client.unwatch(path, purge=purge)
    if purge:
        n = result.removed
        typer.echo(
            f"Stopped watching {shown(result.path)}; removed its {n} {'image' if n == 1 else 'images'} "
            f'from database "{result.db}".'
        )
    else:
        typer.echo(
            f'Stopped watching {shown(result.path)}; its images stay in database "{result.db}" '
            "(`isearch unwatch --purge` removes them)."
        )


def register(app: typer.Typer) -> None:
    """Add ``watch`` and ``unwatch`` to the root ``isearch`` app."""
    app.command("watch")(watch_command)
    app.command("unwatch")(unwatch_command)
