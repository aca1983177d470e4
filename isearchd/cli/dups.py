"""``isearch dups``: groups of near-duplicate images, the one to keep first.

Finding changes nothing; ``--move-to`` and ``--undo`` (``isearchd.cli.dups_move``) set the
duplicates aside and put them back. Nothing is ever deleted.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from typer import _click as click

from isearchd.cli.dups_move import move_duplicates, undo
from isearchd.cli.library import db_info, no_images_yet
from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.cli.output import plural
from isearchd.files.names import json_safe, shown
from isearchd.messages import DupImage, DupsReply
from isearchd.protocol import to_wire

DEFAULT_MIN_SIMILARITY = 90.0
MOVE_ALL = 2**31 - 1  # --move-to acts on every group, not only the -n shown
JSON_HELP = (
    'Print JSON instead: {"db": str, "min_similarity": float, "groups": [{"keep": str, "reason": str, '
    '"images": [{"path", "label", "similarity", "width", "height", "bytes", "taken"}]}]} '
    "(contrib/launchers/dups-result.schema.json)."
)


MinOpt = Annotated[
    float,
    typer.Option(
        "-m",
        "--min-similarity",
        min=0.0,
        max=100.0,
        help="Model similarity (percent) for two images to be compared at all; copies are then "
        "confirmed by their pixels (perceptual hash, colours, aspect ratio).",
    ),
]
InOpt = Annotated[str | None, typer.Option("--in", metavar="PATH", help="Only the images below this folder.")]
NumOpt = Annotated[int, typer.Option("-n", "--num", min=1, help="Number of groups shown.")]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
MoveOpt = Annotated[
    str | None,
    typer.Option(
        "--move-to",
        metavar="DIR",
        help="Move every image but the one to keep of every group (-n aside) below DIR, each at its "
        "path relative to its watched folder (else its absolute path); writes a manifest first. "
        "DIR may not be inside a watched folder or the data home. Nothing is overwritten or deleted.",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="With --move-to: print the moves, move nothing.")]
YesOpt = Annotated[bool, typer.Option("-y", "--yes", help="With --move-to: move without asking.")]
UndoOpt = Annotated[
    str | None,
    typer.Option(
        "--undo",
        metavar="MANIFEST",
        help="Put back every file a --move-to moved (never over a file now at its old place).",
    ),
]


def dups(
    ctx: typer.Context,
    min_similarity: MinOpt = DEFAULT_MIN_SIMILARITY,
    within: InOpt = None,
    num: NumOpt = 100,
    as_json: JsonOpt = False,
    move_to: MoveOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    undo_manifest: UndoOpt = None,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Find near-duplicate images (resized, re-encoded, converted copies); --move-to sets them aside."""
    if undo_manifest is not None:
        if move_to is not None or dry_run or as_json:
            raise click.exceptions.UsageError(
                "--undo goes alone (not with --move-to, --dry-run, --json)", ctx
            )
        undo(undo_manifest)
        return
    if (dry_run or yes) and move_to is None:
        raise click.exceptions.UsageError("--dry-run and -y go with --move-to DIR", ctx=ctx)
    if move_to is not None and as_json:
        raise click.exceptions.UsageError("--move-to prints the moves, not JSON", ctx=ctx)
    db_name, _ = target(ctx, db, bind)
    client = client_for(ctx, db, bind)
    info = db_info(client)
    empty = info is None or not info.size
    if move_to is not None:
        groups = [] if empty else client.dups(similarity=min_similarity, within=within, num=MOVE_ALL).groups
        watched = [f.path for f in client.watch_list()]
        home = client.status().home
        move_duplicates(groups, move_to, db=db_name, watched=watched, home=home, dry_run=dry_run, yes=yes)
        return
    if empty and not as_json:
        typer.echo(no_images_yet(db_name))
        return
    found = (
        DupsReply(min_similarity=min_similarity, total=0, groups=[])
        if empty
        else client.dups(similarity=min_similarity, within=within, num=num)
    )
    if as_json:
        doc = {"db": db_name, "min_similarity": found.min_similarity, "groups": to_wire(found.groups)}
        typer.echo(json_safe(json.dumps(doc, ensure_ascii=False)))
    else:
        _show(found)


def _show(found: DupsReply) -> None:
    groups, total = found.groups, found.total
    if not groups:
        typer.echo(
            f"No duplicates found (model similarity ≥ {found.min_similarity:.1f}%, confirmed by pixels)."
        )
        return
    extra = sum(len(g.images) - 1 for g in groups)
    shown_note = f" (showing {len(groups)})" if total > len(groups) else ""
    typer.echo(
        f"Found {total} {plural(total, 'group')} of duplicates{shown_note}: "
        f"{extra} {plural(extra, 'image')} besides the ones to keep."
    )
    for n, group in enumerate(groups, 1):
        typer.echo(f"\nGroup {n}: keep {shown(group.keep)} ({group.reason})")
        for i, img in enumerate(group.images):
            typer.echo(("  keep " if i == 0 else "       ") + _line(img))


def _line(img: DupImage) -> str:
    size = f"{img.width}x{img.height}" if img.width and img.height else "?x?"
    date = (img.taken or "")[:10] or "no date"
    return f"{img.similarity:5.1f}%  {size:>11}  {img.bytes:>11,} B  {date}  {shown(img.path)}"
