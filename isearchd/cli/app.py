"""The ``isearch`` command line: a thin typer adapter over the Client, control and the weights cache.

``search`` is the default command: ``isearch QUERY`` is ``isearch search QUERY``, also with
search options before the query (``isearch -n 5 -m 80 ./query.jpg``). Every failure is one red
line on stderr and a non-zero exit status: 1 for errors, 2 for wrong usage, 3 from
``service status`` when no service runs.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from isearchd.cli.config import config_app
from isearchd.cli.service import register as register_service_commands
from isearchd.cli.watch import register as register_watch_commands
from isearchd.config import settings
from isearchd.config.home import data_home
from isearchd.errors import ISearchError, NotFound, ServiceError
from isearchd.files.names import json_safe, printable, shown
from isearchd.version import __version__

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
# Options of the root command and of `search` that take a value: needed to find the first
# positional word when deciding whether to insert the default `search` command.
VALUE_OPTIONS = frozenset({"-n", "--num", "-m", "--min-similarity", "-d", "--db", "-B", "--bind"})
SEARCH_COMMAND = "search"
SEARCH_ONLY_OPTIONS = frozenset({"-n", "--num", "-m", "--min-similarity", "-o", "--open", "--json"})
QUERY_DISPLAY_CHARS = 120
CLI_LOG_NAME = "isearch-cli.log"
# Progress redraw limits: a terminal bar at most 10 times a second, plain lines once a second.
BAR_REFRESH_S = 0.1
LINE_REFRESH_S = 1.0
BAR_WIDTH = 28
# `service start` downloads missing weights itself; when nothing at all arrives for this long (no
# network) it gives up with the error that names `model pull` (which keeps trying for 25 s).
START_DOWNLOAD_FIRST_BYTE_S = 5.0


def route_default_command(args: Sequence[str], commands: set[str] | frozenset[str]) -> list[str]:
    """Insert ``search`` when the first positional word is not a command name.

    Options (and the values of options that take one) before that word are skipped, so
    ``-n 5 -m 80 q.jpg`` becomes ``search -n 5 -m 80 q.jpg``. Help and version requests with no
    positional word are left alone.
    """
    args = list(args)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return [SEARCH_COMMAND, *args] if i + 1 < len(args) else args
        if tok.startswith("-") and tok != "-":
            if tok in VALUE_OPTIONS:
                i += 2
            else:
                i += 1
            continue
        return args if tok in commands else [SEARCH_COMMAND, *args]
    if any(tok in ("-h", "--help", "-v", "--version") for tok in args):
        return args
    if any(_option_name(tok) in SEARCH_ONLY_OPTIONS for tok in args):
        return [SEARCH_COMMAND, *args]  # search options but no query: let `search` say what is missing
    return args


def _option_name(tok: str) -> str:
    """``--num=5`` -> ``--num``; ``-n5`` -> ``-n``; anything else as it is."""
    if tok.startswith("--"):
        return tok.split("=", 1)[0]
    return tok[:2] if tok.startswith("-") else tok


class ISearchGroup(TyperGroup):
    """Root group: the default command, and errors turned into one red line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args:
            args = route_default_command(args, frozenset(self.commands))
        return super().parse_args(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        code = run_guarded(
            lambda: super(ISearchGroup, self).main(
                args,
                prog_name or "isearch",
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(call: Any) -> int:
    """Run the command; map every outcome to an exit status, failures to one red stderr line."""
    try:
        rv = call()
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help())
        return 0
    except click.exceptions.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{hint}")
        return EXIT_USAGE
    except click.exceptions.ClickException as exc:
        fail(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        fail("aborted")
        return EXIT_ERROR
    except ISearchError as exc:
        fail(exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        fail("interrupted")
        return 130
    except Exception as exc:  # the edge: anything unexpected becomes one line
        where = _log_unexpected(exc)
        fail(f"unexpected error: {type(exc).__name__}: {exc} (details in {where})")
        return EXIT_ERROR


def fail(message: str) -> None:
    """The one red line every failure prints."""
    line = " ".join(printable(message).split())
    typer.secho(f"Error: {line}", err=True, fg=typer.colors.RED)


def _log_unexpected(exc: BaseException) -> str:
    """Append the traceback to the CLI's log in the data home; returns where it went."""
    path = data_home() / CLI_LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} isearch {sys.argv[1:]}\n")
            fh.write("".join(traceback.format_exception(exc)))
        return str(path)
    except OSError:
        return "the traceback above" if os.environ.get("ISEARCH_DEBUG") else f"{path} (unwritable)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"isearch {__version__}")
        raise typer.Exit()


# ---------------------------------------------------------------------------------------------
# options shared by every command

DbOpt = Annotated[
    str | None,
    typer.Option("-d", "--db", metavar="DB_NAME", help='Database name [default: "default"].'),
]
BindOpt = Annotated[
    str | None,
    typer.Option(
        "-B",
        "--bind",
        metavar="BIND",
        help="Service address: a Unix socket path or host:port [default: ~/.isearch/isearch.sock].",
    ),
]
VersionOpt = Annotated[
    bool,
    typer.Option("-v", "--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
]


def _target(ctx: typer.Context, db: str | None, bind: str | None) -> tuple[str, str]:
    """The database and bind address: the command's own options, else the root's, else defaults."""
    root = ctx.find_root().obj or {}
    db_name = db or root.get("db") or settings.DEFAULT_DB
    address = bind or root.get("bind") or _config().service.bind
    from isearchd.service.control import resolve_bind

    return db_name, resolve_bind(address)


def _config() -> Any:
    """The effective configuration (user config file, environment); defaults for -B, -m, -L."""
    from isearchd.config.file import load_config

    return load_config()


def _client(ctx: typer.Context, db: str | None, bind: str | None) -> Any:
    from isearchd.client import Client

    db_name, address = _target(ctx, db, bind)
    return Client(db_name=db_name, bind=address)


CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    cls=ISearchGroup,
    name="isearch",
    help="ImgSearch: find images by image or by text. `isearch QUERY` is short for `isearch search QUERY`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)
service_app = typer.Typer(
    help="Start, stop and inspect the background service.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)
model_app = typer.Typer(
    help="List, download and import TinyCLIP model weights.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)
app.add_typer(service_app, name="service")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
register_service_commands(service_app)
register_watch_commands(app)


@app.callback()
def root(ctx: typer.Context, db: DbOpt = None, bind: BindOpt = None, version: VersionOpt = False) -> None:
    """ImgSearch: find images by image or by text.

    `isearch QUERY` is short for `isearch search QUERY`; search options may come first:
    `isearch -n 5 -m 80 ./query.jpg`.
    """
    ctx.obj = {"db": db, "bind": bind}


# ---------------------------------------------------------------------------------------------
# service


class Precision(StrEnum):
    fp32 = "fp32"
    int8 = "int8"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


@service_app.command("start")
def service_start(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--model",
            metavar="MODEL",
            help="A model key (see `isearch model list`) or the path of a custom checkpoint (.pt) "
            "[default: the config file's model.name, else ViT-45LY].",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "-L",
            "--log-level",
            case_sensitive=False,
            help="Service log level [default: info, or the config's].",
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "-p",
            "--precision",
            case_sensitive=False,
            help="fp32 (lossless) or int8 (faster indexing, half the memory, embeddings within cos 0.999; "
            "a database keeps the precision it was built with) [default: the config's, else fp32].",
        ),
    ] = None,
    bind: BindOpt = None,
    db: DbOpt = None,
    version: VersionOpt = False,
) -> None:
    """Start the service in the background; returns when it answers."""
    from isearchd.service import control

    _, address = _target(ctx, db, bind)
    config = _config()
    model_name = model or config.model.name
    options_given = model or log_level or precision or bind or ctx.find_root().params.get("bind")
    if options_given and control.managed_by_init():
        raise ServiceError(
            "ImgSearch is installed as a user service, which has its options fixed at install time; "
            "run `isearch service start` without -m/-L/-p/-B, or reinstall with "
            "`isearch service install -m ...`"
        )
    level = log_level.value if log_level is not None else config.service.log_level
    if not control.managed_by_init():
        # download and export here, with progress, rather than silently inside the daemon's start
        control.ensure_not_running(address)
        _prepare_model(
            model_name, precision.value if precision else config.model.precision, config.model.device
        )
    info = control.start(
        model_name, bind=address, log_level=level, precision=precision.value if precision else None
    )
    typer.echo(f"ImgSearch service started (PID {info.pid}, model {info.model}, listening on {info.bind})")


@service_app.command("stop")
def service_stop(
    ctx: typer.Context, bind: BindOpt = None, db: DbOpt = None, version: VersionOpt = False
) -> None:
    """Stop the service."""
    from isearchd.service import control

    _, address = _target(ctx, db, bind)
    pid = control.stop(bind=address)
    typer.echo(f"ImgSearch service stopped (PID {pid})" if pid else "ImgSearch service stopped")


@service_app.command("status")
def service_status(
    ctx: typer.Context, bind: BindOpt = None, db: DbOpt = None, version: VersionOpt = False
) -> None:
    """Show whether the service runs: PID, memory, model, databases, uptime, queue. Exit 3 when not."""
    from isearchd.service import control

    _, address = _target(ctx, db, bind)
    info = control.status(bind=address)
    if info is None:
        typer.echo(f"ImgSearch service is not running at {address} (start it with `isearch service start`)")
        raise typer.Exit(EXIT_NOT_RUNNING)
    typer.echo("ImgSearch service is running")
    typer.echo(f"* PID: {info.pid if info.pid is not None else 'unknown'}")
    mem = f"{info.rss_bytes / 1024 / 1024:.1f} MB" if info.rss_bytes is not None else "unknown"
    typer.echo(f"* MEM: {mem}")
    if not info.answering:
        typer.echo(f"* Bind: {info.bind} (not answering: still starting, or listening on another address)")
        return
    typer.echo(f"* Model: {info.model or 'unknown'}")
    typer.echo(f"* Databases: {', '.join(info.databases) if info.databases else 'none loaded'}")
    typer.echo(f"* Uptime: {_duration(info.uptime_s) if info.uptime_s is not None else 'unknown'}")
    typer.echo(f"* Queue: {info.queue if info.queue is not None else 0}")
    typer.echo(f"* Bind: {info.bind}")


def _duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


# ---------------------------------------------------------------------------------------------
# add


class LabelType(StrEnum):
    path = "path"
    name = "name"


class Progress:
    """A progress display: a redrawn bar with rate and ETA on a terminal, plain lines otherwise."""

    def __init__(self, what: str, unit: str, *, scale: float = 1.0, fmt: str = "{:.0f}") -> None:
        self.what = what
        self.unit = unit
        self.scale = scale
        self.fmt = fmt
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False
        self.last: tuple[float, float | None] = (0.0, None)

    def update(self, done: float, total: float | None) -> None:
        self.last = (done, total)
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.last_draw < (BAR_REFRESH_S if self.tty else LINE_REFRESH_S) and not finished:
            return
        self.last_draw = now
        self._draw(done, total, now)

    def _draw(self, done: float, total: float | None, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = done / self.scale / elapsed
        shown = self.fmt.format(done / self.scale)
        if total:
            frac = min(done / total, 1.0)
            eta = (total - done) / self.scale / rate if rate > 0 else None
            count = f"{shown}/{self.fmt.format(total / self.scale)} {self.unit}"
            eta_text = f"ETA {_clock(eta)}" if eta is not None else "ETA --:--"
        else:
            frac = None
            count = f"{shown} {self.unit}"
            eta_text = ""
        rate_text = f"{rate:.1f} {self.unit}/s"
        if self.tty:
            filled = int(BAR_WIDTH * frac) if frac is not None else 0
            bar = "#" * filled + "-" * (BAR_WIDTH - filled) if frac is not None else ""
            line = f"{self.what} [{bar}] {count}  {rate_text}  {eta_text}".rstrip()
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
            self.drawn = True
        else:
            typer.echo(f"{self.what}: {count} ({rate_text}{', ' + eta_text if eta_text else ''})", err=True)

    def close(self) -> None:
        if self.tty and self.drawn:
            done, total = self.last
            self._draw(done, total, time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _progress_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, float | None]:
    """Accept the progress callback as (done, total) or as the protocol's progress event dict."""
    if args and isinstance(args[0], dict):
        event = args[0]
        return float(event.get("done", 0)), _opt_float(event.get("total"))
    if args and hasattr(args[0], "done"):  # isearchd.protocol.Progress
        return float(args[0].done), _opt_float(getattr(args[0], "total", None))
    if len(args) >= 2:
        return float(args[0]), _opt_float(args[1])
    if args:
        return float(args[0]), None
    return float(kwargs.get("done", 0)), _opt_float(kwargs.get("total"))


def _opt_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@app.command("add")
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
    db_name, _ = _target(ctx, db, bind)
    missing = [p for p in paths if not Path(p).expanduser().exists()]
    if missing:
        raise NotFound(f"{', '.join(missing)}: no such file or folder; nothing was added")
    client = _client(ctx, db, bind)
    progress = Progress("Adding", "images")

    def on_progress(*args: Any, **kwargs: Any) -> None:
        progress.update(*_progress_args(args, kwargs))

    try:
        added = client.add_images(
            [str(Path(p).expanduser()) for p in paths], label_type=label.value, progress=on_progress
        )
    finally:
        progress.close()
    report = getattr(client, "last_add", None)
    skipped = int(getattr(report, "skipped", 0) or 0)
    failed: list[tuple[str, str]] = list(getattr(report, "failed", []) or [])
    added = int(getattr(report, "added", added))
    for path, reason in failed:
        typer.secho(f"failed: {shown(path)}: {printable(reason)}", err=True, fg=typer.colors.RED)
    typer.echo(
        f'Added {added} {_plural(added, "image")} to database "{db_name}"; '
        f"skipped {skipped} already present; {len(failed)} failed"
    )
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


# ---------------------------------------------------------------------------------------------
# search

JSON_HELP = (
    'Print JSON instead: {"query": str, "kind": "text"|"image", "db": str, "min_similarity": float, '
    '"results": [{"path": str, "label": str, "similarity": float}]} (similarity in percent, best first).'
)


@app.command(SEARCH_COMMAND)
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
    db_name, _ = _target(ctx, db, bind)
    kind = "image" if _is_image_query(text) else "text"
    client = _client(ctx, db, bind)
    info = _db_info(client)  # nothing is printed before the service answers and the database exists
    empty = info is None or not info.get("size")
    if empty and not as_json:
        typer.echo(_no_images_yet(db_name))
        return
    if not as_json:
        brief = text if len(text) <= QUERY_DISPLAY_CHARS else text[: QUERY_DISPLAY_CHARS - 3] + "..."
        typer.echo(f"Searching {shown(brief)}...")
    hits = [] if empty else _search_hits(client, text, num, min_similarity)
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
    from isearchd.client import is_image_query

    try:
        return is_image_query(text)
    except OSError:  # a 10,000-character text is not a valid path
        return False


def _db_info(client: Any) -> dict[str, Any] | None:
    """The client's database info; None when the data home has no database at all (fresh).

    Commands ask it before printing a preamble or a question: it proves that the service answers
    and that the database exists. A missing database while others exist stays an error: the
    daemon's message names the closest existing name.
    """
    try:
        return dict(client.get_db_info())
    except NotFound:
        if client.list_dbs():
            raise
        return None


def _no_images_yet(db_name: str) -> str:
    option = "" if db_name == settings.DEFAULT_DB else f" -d {shlex.quote(db_name)}"
    return (
        f'Database "{db_name}" has no images yet. Add some with `isearch add{option} PATH...` '
        f"or keep a folder in sync with `isearch watch{option} FOLDER`."
    )


def _search_hits(client: Any, text: str, num: int, similarity: float) -> list[dict[str, Any]]:
    """Results as dicts with path, label and similarity, from whichever search call the Client has."""
    detailed = getattr(client, "search_hits", None)
    if callable(detailed):
        rows = detailed(text, num=num, similarity=similarity)
    else:
        rows = client.search(text, num=num, similarity=similarity)
    hits: list[dict[str, Any]] = []
    for row in rows or []:
        if isinstance(row, dict):
            path, label, sim = row.get("path"), row.get("label", row.get("path")), row.get("similarity")
        elif hasattr(row, "similarity"):
            path, label, sim = row.path, getattr(row, "label", row.path), row.similarity
        else:
            path, sim = row[0], row[1]
            label = row[2] if len(row) > 2 else path
        hits.append({"path": str(path), "label": str(label), "similarity": round(float(sim or 0.0), 1)})
    return hits


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


# ---------------------------------------------------------------------------------------------
# db, cmp


@app.command("db")
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
    db_name, _ = _target(ctx, db, bind)
    client = _client(ctx, db, bind)
    if list_:
        names = client.list_dbs()
        if isinstance(names, dict):
            names = list(names)
        if not names:
            typer.echo("No databases yet (add images with `isearch add PATH...`).")
            return
        typer.echo("Available databases:")
        for name in names:
            typer.echo(f"* {name}")
    elif info:
        data = _db_info(client)
        if data is None:
            typer.echo(_no_images_yet(db_name))
            return
        typer.echo(f'Database "{data.get("name", db_name)}"')
        typer.echo(f"* Base: {data.get('base', '')}")
        typer.echo(f"* Size: {data.get('size', 0)}")
        typer.echo(f"* Capacity: {data.get('capacity', 0)}")
        if data.get("model"):
            typer.echo(f"* Model: {data['model']}")
    else:
        size = int(client.get_db_info().get("size", 0))  # it answers and the database exists: ask
        if not yes:
            _confirm_clear(db_name, size)
        client.clear_db()
        typer.echo(f'Database "{db_name}" has been cleared.')


def _confirm_clear(db_name: str, size: int) -> None:
    """Ask before clearing. An answer on a pipe counts (`echo y | isearch db --clear`), as in the
    original; no answer at all (end of input, /dev/null) refuses and points at -y."""
    question = (
        f'Clear database "{db_name}" ({size} {_plural(size, "image")})? '
        "Every image in it is removed; this cannot be undone."
    )
    refusal = ISearchError(
        f'refusing to clear database "{db_name}" without confirmation: no answer was given; '
        "pass -y to confirm"
    )
    if sys.stdin.isatty():
        try:
            agreed = typer.confirm(question)
        except typer.Abort:  # end of input (Ctrl-D) or Ctrl-C
            typer.echo()
            raise refusal from None
    else:
        typer.echo(f"{question} [y/N]: ", nl=False)
        answer = sys.stdin.readline()
        typer.echo(answer.strip())  # the terminal would have echoed it
        if not answer:
            raise refusal
        agreed = answer.strip().lower() in ("y", "yes")
    if not agreed:
        typer.echo("Nothing was cleared.")
        raise typer.Exit(EXIT_ERROR)


@app.command("cmp")
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
    client = _client(ctx, db, bind)
    similarity = client.compare_images(str(Path(img1).expanduser()), str(Path(img2).expanduser()))
    typer.echo(f"Similarity between images: {float(similarity):.1f}%")


# ---------------------------------------------------------------------------------------------
# model


@model_app.command("list")
def model_list(db: DbOpt = None, bind: BindOpt = None, version: VersionOpt = False) -> None:
    """List the model keys with their README figures and whether their weights are cached."""
    from isearchd.models import weights
    from isearchd.models.registry import MODELS

    header = (
        f"  {'KEY':<9} {'ARCHITECTURE':<36} {'DIM':>4} {'ACC@1':>6} {'MACS(G)':>7} {'PAIRS/S':>7}  WEIGHTS"
    )
    typer.echo(header)
    for key, spec in MODELS.items():
        mark = "*" if key == settings.DEFAULT_MODEL else " "
        if weights.is_cached(key):
            size = weights.cached_path(key).stat().st_size
            cached = f"cached ({size / 1024 / 1024:.1f} MB)"
        else:
            cached = "not cached"
        typer.echo(
            f"{mark} {key:<9} {spec.arch:<36} {spec.dim:>4} {spec.acc1:>6.1f} {spec.macs:>7.1f} "
            f"{spec.throughput:>7,}  {cached}"
        )
    typer.echo(f"* default model. Weights cache: {settings.weights_cache_dir()}")
    typer.echo("Get weights with `isearch model pull KEY`, or offline with `isearch model import KEY FILE`.")


def _known_key(key: str) -> str:
    from isearchd.models.registry import MODELS

    if key not in MODELS:
        from isearchd.errors import ModelError

        raise ModelError(f"unknown model {key!r}; use one of {', '.join(MODELS)}")
    return key


@model_app.command("pull")
def model_pull(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Model key (see `isearch model list`).")],
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Download a model's weights into the cache and prepare them for ONNX Runtime."""
    _known_key(key)
    config = _config()
    path = _download(key)
    typer.echo(f"Weights for {key} saved to {path} ({path.stat().st_size / 1024 / 1024:.1f} MB)")
    _prepare_model(key, config.model.precision, config.model.device)


@model_app.command("import")
def model_import(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Model key the file holds weights for.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A checkpoint file (.pt) of that model.")],
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Import weights for a model from a file (for machines without network access)."""
    from isearchd.models import importer

    _known_key(key)
    config = _config()
    if not file.expanduser().is_file():
        raise NotFound(f"{file}: no such file")
    path = importer.import_weights(key, file.expanduser())
    typer.echo(f"Imported {file} as the weights of {key}: {path}")
    _prepare_model(key, config.model.precision, config.model.device)


def _download(key: str, first_byte_s: float | None = None) -> Path:
    """`model pull`: the weights of ``key`` into the cache, with a progress display."""
    from isearchd.models import weights

    progress = Progress(f"Downloading {key}", "MB", scale=1024 * 1024, fmt="{:.1f}")
    try:
        return weights.pull(
            key, progress=lambda done, total: progress.update(done, total), first_byte_s=first_byte_s
        )
    finally:
        progress.close()


def _prepare_model(model: str, precision: str, device: str) -> None:
    """Make ``model`` ready for the daemon's start: weights in the cache, ONNX Runtime export built.

    Weights missing for a registry key are downloaded as `model pull` does (giving up soon when
    nothing arrives: `WeightsMissing` names the URL, the cache path and `model pull`/`model
    import`). The export is made for the precision the daemon will run (fp32 unless int8 is asked
    for; int8 is quantised from the fp32 export, so it makes both). It is only a head start: when
    it fails, the daemon tries again at its start and runs fp32 in torch if it must, so a failure
    here is a warning. CUDA/MPS devices run in torch and need no export.
    """
    from isearchd.errors import ModelError, WeightsMissing
    from isearchd.models import backend, weights
    from isearchd.models.registry import get_spec
    from isearchd.models.resolve import resolve

    try:
        resolved = resolve(model)
    except WeightsMissing:
        key = get_spec(model).key
        url = weights.download_url(key)
        typer.echo(f"The weights of {key} are not cached yet; downloading {url}", err=True)
        path = _download(key, first_byte_s=START_DOWNLOAD_FIRST_BYTE_S)
        typer.echo(f"Weights for {key} saved to {path}", err=True)
        resolved = resolve(model)
    if device != "cpu" or backend.export_cached(resolved, precision):
        return
    what = f"Preparing {resolved.key} for ONNX Runtime ({precision}, once per weights file)..."
    typer.echo(what, err=True, nl=False)
    started = time.monotonic()
    try:
        backend.ensure_export(resolved, precision)
    except ModelError as exc:
        typer.echo(err=True)
        typer.secho(
            f"Warning: {resolved.key} could not be prepared for ONNX Runtime ({exc.message}); "
            "the service tries again when it starts",
            err=True,
            fg=typer.colors.YELLOW,
        )
        return
    typer.echo(f" done ({time.monotonic() - started:.1f} s)", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    command.main(args=list(argv) if argv is not None else None, prog_name="isearch")


if __name__ == "__main__":
    main()
