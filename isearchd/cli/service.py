"""``isearch service install|uninstall``: a thin typer adapter over :mod:`isearchd.service.install`.

The main CLI owns the ``service`` group (start/stop/status) and mounts these two commands on it
with ``register(service_app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from isearchd.errors import ISearchError
from isearchd.service.install import (
    DaemonOptions,
    InstallResult,
    init_system,
    install,
    render_launchd_plist,
    render_systemd_unit,
    uninstall,
)


def _show(result: InstallResult) -> None:
    for argv in result.commands:
        typer.echo("$ " + " ".join(argv))
    for line in result.hints:
        typer.echo(line)


def _fail(err: ISearchError) -> typer.Exit:
    typer.secho(f"Error: {err.message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def install_command(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model key or checkpoint path for the daemon.")
    ] = None,
    bind: Annotated[str | None, typer.Option("--bind", "-B", help="Socket path or HOST:PORT.")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", "-L", help="Daemon log level.")] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Data home for the daemon.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the unit/plist that would be installed and stop.")
    ] = False,
) -> None:
    """Install the daemon as a user service (systemd on Linux, launchd on macOS) and start it.

    Options left out come from the config file when the service starts (`isearch config show`).
    Installing again is safe: an unchanged service is left running, a changed one restarted.
    """
    options = DaemonOptions(bind=bind, model=model, log_level=log_level, home=home)
    try:
        if dry_run:
            init = init_system()
            text = render_systemd_unit(options) if init == "systemd" else render_launchd_plist(options)
            typer.echo(text, nl=False)
            return
        _hand_over_to_init()
        result = install(options)
    except ISearchError as err:
        raise _fail(err) from None
    if not result.changed:
        typer.echo("The service definition is unchanged.")
    _show(result)


def _hand_over_to_init() -> None:
    """Stop a daemon started by hand (`isearch service start`) before the init system starts one.

    Two daemons cannot share a data home (pid-file lock): left running, the hand-started one would
    make the unit's daemon fail and be restarted by the init system over and over.
    """
    from isearchd.service import control

    if control.managed_by_init():
        return
    pid = control.running_pid()
    if pid is not None:
        control.stop()
        typer.echo(f"Stopped the service started by hand (PID {pid}); the user service takes over.")


def uninstall_command() -> None:
    """Stop the user service, disable it and remove its unit/plist. Safe to run twice."""
    try:
        result = uninstall()
    except ISearchError as err:
        raise _fail(err) from None
    _show(result)


def register(service_app: typer.Typer) -> None:
    """Add ``install`` and ``uninstall`` to the CLI's ``service`` command group."""
    service_app.command("install")(install_command)
    service_app.command("uninstall")(uninstall_command)
