"""``isearch search`` (the default command) and ``isearch cmp``: ask the daemon how alike images are.

``search`` prints the results as numbered lines (or JSON with ``--json``) and may open them
with the platform's opener; ``cmp`` prints the similarity of two image files.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from isearchd.cli.library import db_info, no_images_yet
from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.errors import NotFound
from isearchd.files.names import json_safe, shown

QUERY_DISPLAY_CHARS = 120
JSON_HELP = (
    'Print JSON instead: {"query": str, "kind": "text"|"image", "db": str, "min_similarity": float, '
    '"results": [{"path": str, "label": str, "similarity": float}]} (similarity in percent, best first).'
)


def search(
    ctx: typer.Context,
    query: Annotated[
        list[str],
        typer.Argument(metavar="QUERY", help="An image file (image search) or any text (text search)."),
    ],
    num: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of results.")] = 10,
    min_similarity: Annotated[
        float,
        typer.Option(
            "-m", "--min-similarity", min=0.0, max=100.0, help="Minimum similarity in percent (0-100)."
        ),
    ] = 0.0,
    open_results: Annotated[bool, typer.Option("-o", "--open", help="Open the result images.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Search by image (QUERY is an image file) or by text (default command)."""
    text = " ".join(query)
    db_name, _ = target(ctx, db, bind)
    kind = "image" if _is_image_query(text) else "text"
    client = client_for(ctx, db, bind)
    info = db_info(client)  # nothing is printed before the service answers and the database exists
    empty = info is None or not info.get("size")
    if empty and not as_json:
        typer.echo(no_images_yet(db_name))
        return
    if not as_json:
        brief = text if len(text) <= QUERY_DISPLAY_CHARS else text[: QUERY_DISPLAY_CHARS - 3] + "..."
        typer.echo(f"Searching {shown(brief)}...")
    hits = [] if empty else client.search_hits(text, num=num, similarity=min_similarity)
    if as_json:
        doc = {"query": text, "kind": kind, "db": db_name, "min_similarity": min_similarity, "results": hits}
        typer.echo(json_safe(json.dumps(doc, ensure_ascii=False)))
    else:
        typer.echo(f"Found {len(hits)} similar images (similarity ≥ {min_similarity:.1f}%):")
        for i, hit in enumerate(hits, 1):
            typer.echo(f"{i:2d}. {shown(hit['path'])}\t{hit['similarity']:.1f}%")
    if open_results and hits:
        open_paths([hit["path"] for hit in hits])


def _is_image_query(text: str) -> bool:
    from isearchd.searchquery import is_image_query

    try:
        return is_image_query(text)
    except OSError:  # a 10,000-character text is not a valid path
        return False


def open_paths(paths: list[str]) -> None:
    """Open files with the platform's opener ($ISEARCH_OPENER, else open / xdg-open)."""
    custom = os.environ.get("ISEARCH_OPENER")
    if custom:
        opener = shlex.split(custom)
    elif sys.platform == "win32":
        for path in paths:
            os.startfile(path)  # type: ignore[attr-defined]  # noqa: S606 - Windows only
        return
    elif sys.platform == "darwin":
        opener = ["open"]
    else:
        opener = ["xdg-open"]
    if not opener or shutil.which(opener[0]) is None:
        raise NotFound(
            f"cannot open the results: {opener[0] if opener else 'opener'} not found; "
            "set ISEARCH_OPENER to a program that opens a file"
        )
    for path in paths:
        subprocess.Popen(
            [*opener, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def compare(
    ctx: typer.Context,
    img1: Annotated[str, typer.Argument(metavar="IMG1", help="First image file.")],
    img2: Annotated[str, typer.Argument(metavar="IMG2", help="Second image file.")],
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Print the similarity of two images (0-100%)."""
    for path in (img1, img2):
        if not Path(path).expanduser().is_file():
            raise NotFound(f"{path}: no such image file")
    client = client_for(ctx, db, bind)
    similarity = client.compare_images(str(Path(img1).expanduser()), str(Path(img2).expanduser()))
    typer.echo(f"Similarity between images: {similarity:.1f}%")
