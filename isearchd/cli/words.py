"""``isearch info PATH``: everything the database knows of one photo (its facts, the people in it,
the words read in it); ``isearch words --disable/--enable``: stop or start reading the words in a
database's photos (off deletes every text read in it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for
from isearchd.files.names import json_safe, printable, shown
from isearchd.messages import ImageInfo
from isearchd.protocol import to_wire

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the schema is in docs/words.md).")]


def info(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="PATH", help="A photo of the database.")],
    as_json: JsonOpt = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Everything the database knows of one photo: file, size, type, date, place, people, words."""
    with client_for(ctx, db, bind) as client:
        found = client.photo_info(str(Path(path).expanduser()))
    if as_json:
        typer.echo(json_safe(json.dumps(info_document(found), ensure_ascii=False)))
        return
    for line in info_lines(found):
        typer.echo(line)


def info_document(found: ImageInfo) -> dict[str, object]:
    """``info --json``: the photo's facts; the named ``people`` in it; ``words``
    null until the photo has been read, "" when it holds no text."""
    wire = to_wire(found)
    doc: dict[str, object] = {
        key: wire.get(key)
        for key in (
            "path",
            "label",
            "id",
            "bytes",
            "type",
            "width",
            "height",
            "taken",
            "taken_source",
            "place",
        )
    }
    doc["people"] = wire.get("people")
    doc["words"] = wire.get("words")
    doc["lines"] = wire.get("lines", [])
    return doc


def info_lines(found: ImageInfo) -> list[str]:
    size = f"{found.width}x{found.height}" if found.width and found.height else "size unknown"
    taken = found.taken or "-"
    if found.taken and found.taken_source == "mtime":
        taken += " (file time)"
    people = found.people if isinstance(found.people, list) else None
    lines = [
        shown(found.path),
        f"* File: {found.bytes or 0:,} bytes, {found.type or 'unknown type'}, {size}",
        f"* Taken: {taken}",
        f"* Place: {printable(found.place or '-')}",
        f"* People: {', '.join(people) if people else '-' if people is not None else 'not kept here'}",
    ]
    if not isinstance(found.words, str):
        lines.append("* Words: not read yet")
    elif not found.words:
        lines.append("* Words: none")
    else:
        lines.append("* Words:")
        lines += [f"    {printable(line)}" for line in found.words.splitlines()]
    return lines


def words(
    ctx: typer.Context,
    enable: Annotated[
        bool,
        typer.Option(
            "--enable/--disable",
            help="Read the words in this database's photos, or stop and delete every text read in it.",
        ),
    ],
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Turn the reading of words in pictures on or off for a database (off deletes the text read)."""
    with client_for(ctx, db, bind) as client:
        state = client.words_settings(enabled=enable)
    if state.enabled:
        typer.echo(f'Words of "{state.db}" on: read in {state.read:,} of {state.total:,} photos.')
    else:
        typer.echo(f'Words of "{state.db}" off: every text read in its photos was deleted.')
