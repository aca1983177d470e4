"""The ``isearch`` command line: the root app, the default command, and errors as one red line.

``search`` is the default command: ``isearch QUERY`` is ``isearch search QUERY``, also with
search options before the query (``isearch -n 5 -m 80 ./query.jpg``). Every failure is one red
line on stderr and a non-zero exit status: 1 for errors, 2 for wrong usage, 3 from
``service status`` when no service runs.

The commands live by concern: ``search`` (search, cmp), ``library`` (add, db), ``model``,
``dups``, ``service``, ``watch``, ``config``; ``options`` holds the shared ``-d``/``-B``/``-v`` and
``output`` how failures and progress are shown. This module mounts them all, in the order
``isearch --help`` lists them.
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from isearchd.cli.config import config_app
from isearchd.cli.dups import dups
from isearchd.cli.library import add, db_command
from isearchd.cli.migrate import migrate
from isearchd.cli.model import model_app
from isearchd.cli.options import CONTEXT, BindOpt, DbOpt, VersionOpt
from isearchd.cli.output import EXIT_ERROR, EXIT_USAGE, fail
from isearchd.cli.people import people_app
from isearchd.cli.search import compare, search
from isearchd.cli.service import service_app
from isearchd.cli.ui import ui
from isearchd.cli.watch import register as register_watch_commands
from isearchd.cli.words import info, words
from isearchd.config.home import data_home
from isearchd.errors import ISearchError

# Options of the root command and of `search` that take a value: needed to find the first
# positional word when deciding whether to insert the default `search` command (`isearch --place
# service x` searches: `service` is the value of --place). tests/integration/test_cli_search.py
# checks that every value option of `search` is here.
SEARCH_VALUE_OPTIONS = frozenset(
    {"-n", "--num", "-m", "--min-similarity", "--after", "--before", "--in", "--place", "--type", "--sort",
     "--plus", "--minus", "--like", "--person", "--words"}
)  # fmt: skip
VALUE_OPTIONS = SEARCH_VALUE_OPTIONS | {"-d", "--db", "-B", "--bind"}
SEARCH_COMMAND = "search"
SEARCH_ONLY_OPTIONS = SEARCH_VALUE_OPTIONS | {"-o", "--open", "--json", "--details"}
CLI_LOG_NAME = "isearch-cli.log"


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


def run_guarded(call: Callable[[], object]) -> int:
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
# `isearch --help` lists the commands in the order they are added, then the groups.
register_watch_commands(app)
app.command("add")(add)
app.command(SEARCH_COMMAND)(search)
app.command("db")(db_command)
app.command("cmp")(compare)
app.command("info")(info)
app.command("words")(words)
app.command("dups")(dups)
app.command("ui")(ui)
app.command("migrate")(migrate)
app.add_typer(service_app, name="service")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
app.add_typer(people_app, name="people")


@app.callback()
def root(ctx: typer.Context, db: DbOpt = None, bind: BindOpt = None, version: VersionOpt = False) -> None:
    """ImgSearch: find images by image or by text.

    `isearch QUERY` is short for `isearch search QUERY`; search options may come first:
    `isearch -n 5 -m 80 ./query.jpg`.
    """
    ctx.obj = {"db": db, "bind": bind}


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    command.main(args=list(argv) if argv is not None else None, prog_name="isearch")


if __name__ == "__main__":
    main()
