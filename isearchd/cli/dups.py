"""``isearch dups``: groups of near-duplicate images, the one to keep first. Nothing is moved or deleted."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from isearchd.cli.library import db_info, no_images_yet
from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.files.names import json_safe, shown

DEFAULT_MIN_SIMILARITY = 90.0
JSON_HELP = (
    'Print JSON instead: {"db": str, "min_similarity": float, "groups": [{"keep": str, "reason": str, '
    '"images": [{"path", "label", "similarity", "width", "height", "bytes", "taken"}]}]} '
    "(contrib/launchers/dups-result.schema.json)."
)


def dups(
    ctx: typer.Context,
    min_similarity: Annotated[
        float,
        typer.Option(
            "-m",
            "--min-similarity",
            min=0.0,
            max=100.0,
            help="Model similarity (percent) for two images to be compared at all; copies are then "
            "confirmed by their pixels (perceptual hash, colours, aspect ratio).",
        ),
    ] = DEFAULT_MIN_SIMILARITY,
    within: Annotated[
        str | None, typer.Option("--in", metavar="PATH", help="Only the images below this folder.")
    ] = None,
    num: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of groups shown.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Find near-duplicate images (resized, re-encoded, converted copies); nothing is changed."""
    db_name, _ = target(ctx, db, bind)
    client = client_for(ctx, db, bind)
    info = db_info(client)
    empty = info is None or not info.get("size")
    if empty and not as_json:
        typer.echo(no_images_yet(db_name))
        return
    found: dict[str, Any] = (
        {"min_similarity": min_similarity, "total": 0, "groups": []}
        if empty
        else client.dups(similarity=min_similarity, within=within, num=num)
    )
    groups = found["groups"]
    if as_json:
        doc = {"db": db_name, "min_similarity": found["min_similarity"], "groups": groups}
        typer.echo(json_safe(json.dumps(doc, ensure_ascii=False)))
        return
    total = found["total"]
    if not groups:
        typer.echo(f"No duplicates found (model similarity ≥ {min_similarity:.1f}%, confirmed by pixels).")
        return
    extra = sum(len(g["images"]) - 1 for g in groups)
    shown_note = f" (showing {len(groups)})" if total > len(groups) else ""
    typer.echo(f"Found {total} groups of duplicates{shown_note}: {extra} images besides the ones to keep.")
    for n, group in enumerate(groups, 1):
        typer.echo(f"\nGroup {n}: keep {shown(group['keep'])} ({group['reason']})")
        for i, img in enumerate(group["images"]):
            typer.echo(("  keep " if i == 0 else "       ") + _line(img))


def _line(img: dict[str, Any]) -> str:
    size = f"{img['width']}x{img['height']}" if img["width"] and img["height"] else "?x?"
    date = (img["taken"] or "")[:10] or "no date"
    return f"{img['similarity']:5.1f}%  {size:>11}  {img['bytes']:>11,} B  {date}  {shown(img['path'])}"
