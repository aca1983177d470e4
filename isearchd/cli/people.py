"""``isearch people``: who is in the photos of a database, and the corrections that stick.

``isearch people`` lists the people (named first, then by photo count); its subcommands show one
person's photos and make the corrections: name, merge (and split, its undo), remove a face from a
person, hide and unhide. ``--forget`` deletes every face, descriptor, person and name of the
database and turns people off for it; ``--enable``/``--disable`` turn it on and off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.cli.output import confirm, plural
from isearchd.errors import InvalidRequest
from isearchd.files.names import json_safe, shown
from isearchd.messages import PeopleList, PeopleState
from isearchd.protocol import to_wire

if TYPE_CHECKING:
    from isearchd.client import Client

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the schema is in docs/people.md).")]
PersonArg = Annotated[int, typer.Argument(metavar="ID", help="A person's id, as `isearch people` lists it.")]

people_app = typer.Typer(
    help="The people in your photos: list, show, name, merge, split, remove a face, hide, forget.",
    rich_markup_mode=None,
    invoke_without_command=True,
)


@people_app.callback()
def people(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    show_all: Annotated[bool, typer.Option("--all", help="List hidden people too.")] = False,
    forget: Annotated[
        bool,
        typer.Option("--forget", help="Delete every face, person and name of the database; turn it off."),
    ] = False,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Forget without asking for confirmation.")] = False,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Find faces in this database's photos, or stop.")
    ] = None,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """List the people found in a database's photos: named first, then by how many photos."""
    ctx.obj = {**(ctx.obj or {}), "people_db": db, "people_bind": bind}
    if ctx.invoked_subcommand is not None:
        return
    client = client_for(ctx, db, bind)
    db_name, _ = target(ctx, db, bind)
    if forget:
        question = f'Delete every face, person and name of database "{db_name}"?'
        refusal = InvalidRequest(
            f'refusing to forget the people of "{db_name}" without confirmation; pass -y'
        )
        if not yes and not confirm(question, refusal):
            typer.echo("Nothing was deleted.")
            return
        _said(client.people_settings(forget=True), "forgot every face and person; people are off")
        return
    if enable is not None:
        _said(client.people_settings(enabled=enable), "people are on" if enable else "people are off")
        return
    found = client.people(hidden=show_all)
    if as_json:
        typer.echo(json_safe(json.dumps(to_wire(found), ensure_ascii=False)))
        return
    _print_list(found)


def _print_list(found: PeopleList) -> None:
    read = f"faces read in {found.analysed:,} of {found.total:,} photos"
    typer.echo(
        f'People of "{found.db}": {len(found.people)} ({read}{"" if found.enabled else "; people are off"})'
    )
    for p in found.people:
        name = p.name or "(no name)"
        hidden = " [hidden]" if p.hidden else ""
        sample = f"  e.g. {shown(p.sample)}" if p.sample else ""
        typer.echo(f"{p.id:>6}  {name}{hidden}  {p.photos} {plural(p.photos, 'photo')}{sample}")


def _said(state: PeopleState, what: str) -> None:
    person = f" (person {state.person})" if state.person is not None else ""
    typer.echo(f'Database "{state.db}": {what}{person}')


def _client(ctx: typer.Context, db: str | None, bind: str | None) -> Client:
    """The Client for a subcommand: its own -d/-B, else those given to `people`."""
    obj = ctx.obj or {}
    return client_for(ctx, db or obj.get("people_db"), bind or obj.get("people_bind"))


@people_app.command("show")
def show(
    ctx: typer.Context, person: PersonArg, as_json: JsonOpt = False, db: DbOpt = None, bind: BindOpt = None
) -> None:
    """A person's photos, newest first."""
    photos = _client(ctx, db, bind).person(person)
    if as_json:
        typer.echo(json_safe(json.dumps(to_wire(photos), ensure_ascii=False)))
        return
    count = len(photos.photos)
    typer.echo(f"Person {photos.id}: {photos.name or '(no name)'}, {count} {plural(count, 'photo')}")
    for p in photos.photos:
        typer.echo(shown(p.path))


@people_app.command("name")
def name(
    ctx: typer.Context,
    person: PersonArg,
    new_name: Annotated[str, typer.Argument(metavar="NAME", help='The name ("" takes it away).')],
    db: DbOpt = None,
    bind: BindOpt = None,
) -> None:
    """Name a person (names are unique in a database)."""
    state = _client(ctx, db, bind).name_person(person, new_name or None)
    _said(state, f'named "{new_name}"' if new_name else "name taken away")


@people_app.command("merge")
def merge(
    ctx: typer.Context,
    people_ids: Annotated[list[int], typer.Argument(metavar="ID...", help="Two or more people.")],
    db: DbOpt = None,
    bind: BindOpt = None,
) -> None:
    """Merge people into one (undo with `isearch people split ID`)."""
    state = _client(ctx, db, bind).merge_people(people_ids)
    _said(state, f"merged {len(set(people_ids))} people into one")


@people_app.command("split")
def split(ctx: typer.Context, person: PersonArg, db: DbOpt = None, bind: BindOpt = None) -> None:
    """Undo the last merge into a person: the merged people come back as they were."""
    _said(_client(ctx, db, bind).split_person(person), "the last merge was undone")


@people_app.command("remove")
def remove(
    ctx: typer.Context,
    person: PersonArg,
    photo: Annotated[str, typer.Argument(metavar="PHOTO", help="A photo the person is not in.")],
    db: DbOpt = None,
    bind: BindOpt = None,
) -> None:
    """Take a face out of a person for good: it never rejoins that person by itself."""
    path = str(Path(photo).expanduser().absolute())
    _said(_client(ctx, db, bind).remove_face(person, path), f"the face in {shown(path)} removed")


@people_app.command("hide")
def hide(ctx: typer.Context, person: PersonArg, db: DbOpt = None, bind: BindOpt = None) -> None:
    """Leave a person out of the list (`--all` shows them)."""
    _said(_client(ctx, db, bind).hide_person(person, True), "hidden")


@people_app.command("unhide")
def unhide(ctx: typer.Context, person: PersonArg, db: DbOpt = None, bind: BindOpt = None) -> None:
    """List a hidden person again."""
    _said(_client(ctx, db, bind).hide_person(person, False), "listed again")
