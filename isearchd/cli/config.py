"""``isearch config show|init``: a thin typer adapter over :mod:`isearchd.config.file`.

Mounted by the main CLI with ``app.add_typer(config_app, name="config")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from isearchd.config.file import default_config_text, describe, load_config, user_config_path
from isearchd.errors import ISearchError

config_app = typer.Typer(
    name="config",
    help="Show the effective configuration or write the commented default config file.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file to use instead of the user config file."),
]


def _fail(err: ISearchError) -> typer.Exit:
    typer.secho(f"Error: {err.message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@config_app.command("show")
def show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration and where each value came from."""
    try:
        cfg = load_config(config)
    except ISearchError as err:
        raise _fail(err) from None
    rows = describe(cfg)
    file = cfg.file if cfg.file else user_config_path()
    if as_json:
        payload = {
            "file": str(file),
            "file_exists": cfg.file is not None,
            "settings": [{"key": k, "value": v, "source": str(s)} for k, v, s in rows],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    state = "" if cfg.file else " (not present: built-in defaults; `isearch config init` writes it)"
    typer.echo(f"Config file: {file}{state}")
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(48, max(len(v) for _, v, _ in rows))
    for key, value, source in rows:
        typer.echo(f"  {key:<{width}}  {value:<{vwidth}}  [{source}]")


@config_app.command("init")
def init(
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the commented default config file for you to edit."""
    target = (config or user_config_path()).expanduser()
    if target.exists() and not force:
        typer.secho(
            f"Error: {target} already exists; edit it, or pass --force to replace it with the default",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(default_config_text(), encoding="utf-8")
        tmp.chmod(0o600)  # it may come to hold the TCP token
        tmp.replace(target)
    except OSError as exc:
        typer.secho(f"Error: cannot write {target}: {exc.strerror or exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Wrote {target}")
    typer.echo("Uncomment and edit the settings you want to change; `isearch config show` checks it.")
