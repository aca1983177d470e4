"""``isearch search`` (the default command) and ``isearch cmp``: ask the daemon how alike images are.

``search`` prints the results as numbered lines (or JSON with ``--json``) and may open them
with the platform's opener; its filters (``--after``, ``--before``, ``--in``, ``--place``,
``--type``), ``--sort``, ``--plus``/``--minus`` and ``--like`` go to the daemon as they are (it
says what is wrong with a bad value); ``cmp`` prints the similarity of two image files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from typer import _click as click

from isearchd.cli.library import db_info, no_images_yet
from isearchd.cli.options import BindOpt, DbOpt, VersionOpt, client_for, target
from isearchd.errors import NotFound
from isearchd.files.names import json_safe, printable, shown
from isearchd.files.opener import open_paths
from isearchd.messages import Hit
from isearchd.protocol import to_wire
from isearchd.searchquery import PartArg, SearchOptions, is_image_query

QUERY_DISPLAY_CHARS = 120
JSON_HELP = (
    'Print JSON instead: {"query": str, "kind": "text"|"image", "db": str, "min_similarity": float, '
    '"sort": str, "results": [{"path": str, "label": str, "similarity": float, "taken": str|null, '
    '"taken_source": "exif"|"mtime"|null, "width": int|null, "height": int|null, "place": str|null, '
    '"type": str|null, "bytes": int|null}]} (similarity in percent; best first unless --sort).'
)
# --plus/--minus X:WEIGHT: a plain decimal number after the last colon (a sign, so that a negative
# weight is refused by the daemon rather than searched for as text)
_WEIGHTED = re.compile(r"(?P<item>.+):(?P<weight>[+-]?(?:\d+(?:\.\d*)?|\.\d+))", re.S)


QueryArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="QUERY",
        help="An image file (image search) or any text (text search); not with --like.",
        show_default=False,
    ),
]
NumOpt = Annotated[int, typer.Option("-n", "--num", min=1, help="Number of results.")]
MinOpt = Annotated[
    float,
    typer.Option("-m", "--min-similarity", min=0.0, max=100.0, help="Minimum similarity in percent (0-100)."),
]
AfterOpt = Annotated[
    str | None,
    typer.Option(
        "--after",
        metavar="DATE",
        help="Only photos taken on or after DATE: YYYY, YYYY-MM or YYYY-MM-DD (local time where taken).",
    ),
]
BeforeOpt = Annotated[
    str | None,
    typer.Option("--before", metavar="DATE", help="Only photos taken on or before DATE (as --after)."),
]
InOpt = Annotated[
    list[str] | None, typer.Option("--in", metavar="PATH", help="Only images below this folder (repeatable).")
]
PlaceOpt = Annotated[
    str | None,
    typer.Option(
        "--place", metavar="TEXT", help="Only photos taken in this city, region or country (any case)."
    ),
]
TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type",
        metavar="TYPES",
        help="Only these formats, comma-separated: jpg,png,heic (the detected format, not the name).",
    ),
]
SortOpt = Annotated[
    str,
    typer.Option(
        "--sort",
        metavar="similarity|oldest|newest",
        help="Order: by similarity, or the most similar by when they were taken.",
    ),
]
PlusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plus",
        metavar="X[:WEIGHT]",
        help="Add a text or an image file to the query (repeatable); WEIGHT in (0, 100], default 1.",
    ),
]
MinusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--minus", metavar="X[:WEIGHT]", help="Take a text or an image away from the query (as --plus)."
    ),
]
LikeOpt = Annotated[
    str | None,
    typer.Option(
        "--like",
        metavar="PATH",
        help="Search like an image already in the database (its stored embedding); instead of QUERY.",
    ),
]
DetailsOpt = Annotated[
    bool, typer.Option("--details", help="Also show when and where each photo was taken, and its words.")
]
OpenOpt = Annotated[bool, typer.Option("-o", "--open", help="Open the result images.")]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
PersonOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--person",
        metavar="NAME",
        help="Only photos this named person is in (repeat: all of them); alone: their photos, newest first.",
    ),
]

WordsOpt = Annotated[
    str | None,
    typer.Option(
        "--words",
        metavar="TEXT",
        help="Only pictures whose text holds every word of TEXT (any case and accents; a word may be"
        " part of a longer one); alone: those pictures, best text match first.",
    ),
]
# Characters of a hit's text shown after its path (``--json`` has the first 200).
SNIPPET_CHARS = 60


def search(
    ctx: typer.Context,
    query: QueryArg = None,
    num: NumOpt = 10,
    min_similarity: MinOpt = 0.0,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    within: InOpt = None,
    place: PlaceOpt = None,
    types: TypeOpt = None,
    sort: SortOpt = "similarity",
    plus: PlusOpt = None,
    minus: MinusOpt = None,
    like: LikeOpt = None,
    person: PersonOpt = None,
    words: WordsOpt = None,
    details: DetailsOpt = False,
    open_results: OpenOpt = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Search by image (QUERY is an image file) or by text (default command)."""
    if like is not None and query:
        raise click.exceptions.UsageError("give QUERY or --like, not both (add a text with --plus)", ctx=ctx)
    if like is None and not query and not person and words is None:
        raise click.exceptions.UsageError(
            "Missing argument 'QUERY' (or --like PATH, --person NAME or --words TEXT).", ctx=ctx
        )
    text = like if like is not None else " ".join(query or [])
    options = SearchOptions(
        after=after, before=before, within=within, place=place, sort=sort, like=like, people=person or [],
        words=words, with_words=details, types=_formats(types, ctx) if types is not None else None,
        plus=[parse_part(p) for p in plus or ()], minus=[parse_part(p) for p in minus or ()],
    )  # fmt: skip
    db_name, _ = target(ctx, db, bind)
    with client_for(ctx, db, bind) as client:
        info = db_info(client)  # nothing is printed before the service answers and the database exists
        empty = info is None or not info.size
        if empty and not as_json:
            typer.echo(no_images_yet(db_name))
            return
        if not as_json:
            typer.echo(_searching(text, person, words))
        query_text = None if like is not None or not text else text
        hits = [] if empty else client.search_hits(query_text, num=num, similarity=min_similarity, **options)
    if as_json:
        kind = ("people" if person else "words") if not text else _kind(text, like)
        doc = {"query": text, "kind": kind, "db": db_name, "min_similarity": min_similarity, "sort": sort,
               "results": to_wire(hits)}  # fmt: skip
        typer.echo(json_safe(json.dumps(doc, ensure_ascii=False)))
    elif not text:
        _print_photos(hits, details)
    else:
        _print_hits(hits, min_similarity, details)
    if open_results and hits:
        open_paths([hit.path for hit in hits], [moment_of(hit) for hit in hits])


def _searching(text: str, person: list[str] | None, words: str | None) -> str:
    """The line printed while the search runs."""
    if text:
        brief = text if len(text) <= QUERY_DISPLAY_CHARS else text[: QUERY_DISPLAY_CHARS - 3] + "..."
        return f"Searching {shown(brief)}..."
    return f"Photos of {', '.join(person)}..." if person else f"Pictures with {shown(words or '')}..."


def _kind(text: str, like: str | None) -> str:
    return "image" if like is not None or is_image_query(text) else "text"


def _print_hits(hits: list[Hit], min_similarity: float, details: bool) -> None:
    typer.echo(f"Found {len(hits)} similar images (similarity ≥ {min_similarity:.1f}%):")
    for i, hit in enumerate(hits, 1):
        where = f"{hit.host}:" if hit.host else ""  # another machine's (shared store)
        line = f"{i:2d}. {where}{shown(hit.path)}{at_column(hit)}\t{hit.similarity:.1f}%"
        line = f"{line}\t{taken_column(hit)}\t{place_column(hit)}" if details else line
        typer.echo(line + _snippet(hit))


def _print_photos(hits: list[Hit], details: bool) -> None:
    """A search without a query (``--person`` or ``--words`` alone): photos, no similarity."""
    typer.echo(f"Found {len(hits)} {'photo' if len(hits) == 1 else 'photos'}:")
    for i, hit in enumerate(hits, 1):
        line = f"{i:2d}. {shown(hit.path)}{at_column(hit)}"
        line = f"{line}\t{taken_column(hit)}\t{place_column(hit)}" if details else line
        typer.echo(line + _snippet(hit))


def _snippet(hit: Hit) -> str:
    """The start of a hit's text, on one line, when words were asked ("" otherwise)."""
    if not isinstance(hit.words, str) or not hit.words:
        return ""
    text = " / ".join(hit.words.splitlines())
    return "\t" + shown(text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "...")


def parse_part(arg: str) -> PartArg:
    """``--plus``/``--minus`` X[:WEIGHT]: a text or an image file, with a weight when the argument
    ends in ``:NUMBER`` and is not itself an existing file (``sunset:0.5`` -> ``("sunset", 0.5)``;
    ``12:30`` is the text ``12`` with weight 30: write ``12:30:1`` for the text)."""
    m = _WEIGHTED.fullmatch(arg)
    if m is None or _exists(arg):
        return arg
    return (m["item"], float(m["weight"]))


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):  # too long to be a file name; a NUL
        return False


def _formats(types: str, ctx: typer.Context) -> list[str]:
    names = [t.strip() for t in types.split(",") if t.strip()]
    if not names:
        raise click.exceptions.UsageError("--type needs at least one format, e.g. --type jpg,png", ctx=ctx)
    return names


def moment_of(hit: Hit) -> float | None:
    """A video hit's moment in seconds (None: a photo)."""
    return hit.at if isinstance(hit.at, float | int) else None


def at_column(hit: Hit) -> str:
    """`` @ 1:23`` after a video's path (its best moment; ``@ 1:02:03`` past an hour); ""
    for a photo."""
    at = moment_of(hit)
    if at is None:
        return ""
    minutes, seconds = divmod(int(at), 60)
    hours, minutes = divmod(minutes, 60)
    return f" @ {hours}:{minutes:02d}:{seconds:02d}" if hours else f" @ {minutes}:{seconds:02d}"


def taken_column(hit: Hit) -> str:
    """When the photo was taken (``YYYY-MM-DD``, on the clock where it was taken), marked
    ``(file time)`` when that is the file's modification time (no date in its EXIF); ``-`` unknown."""
    if not hit.taken:
        return "-"
    return hit.taken[:10] + (" (file time)" if hit.taken_source == "mtime" else "")


def place_column(hit: Hit) -> str:
    """Where the photo was taken (``Intendente, Lisbon, Portugal``); ``-`` without GPS."""
    return printable(hit.place or "-")


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
    with client_for(ctx, db, bind) as client:
        similarity = client.compare_images(str(Path(img1).expanduser()), str(Path(img2).expanduser()))
    typer.echo(f"Similarity between images: {similarity:.1f}%")
