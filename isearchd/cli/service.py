"""``isearch service start|stop|status|install|uninstall``: a thin typer adapter over
:mod:`isearchd.service.control` and :mod:`isearchd.service.install`.

``service_app`` is the ``service`` group the root app mounts. ``register(service_app)`` adds
``install`` and ``uninstall`` to a group (tests mount them on an app of their own).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from isearchd.cli.model import prepare_model
from isearchd.cli.options import CONTEXT, BindOpt, DbOpt, VersionOpt, effective_config, target
from isearchd.cli.output import EXIT_NOT_RUNNING
from isearchd.errors import ISearchError, ServiceError
from isearchd.service.install import InstallResult, init_system, install, uninstall
from isearchd.service.unitfiles import DaemonOptions, render_launchd_plist, render_systemd_unit

if TYPE_CHECKING:
    from isearchd.messages import Status


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


class Precision(StrEnum):
    fp32 = "fp32"
    int8 = "int8"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


# `service start`'s options (left out: the config file's value, as `isearch config show` says)
StartModelOpt = Annotated[
    str | None,
    typer.Option(
        "-m",
        "--model",
        metavar="MODEL",
        help="A model key (see `isearch model list`) or the path of a custom checkpoint (.pt) "
        "[default: the config file's model.name, else ViT-45LY].",
    ),
]
LogLevelOpt = Annotated[
    LogLevel | None,
    typer.Option(
        "-L",
        "--log-level",
        case_sensitive=False,
        help="Service log level [default: info, or the config's].",
    ),
]
PrecisionOpt = Annotated[
    Precision | None,
    typer.Option(
        "-p",
        "--precision",
        case_sensitive=False,
        help="fp32 (lossless) or int8 (faster indexing, half the memory, embeddings within cos 0.999; "
        "a database keeps the precision it was built with) [default: the config's, else fp32].",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Where the databases live: qdrant://HOST:PORT, qdrants://HOST:PORT or qdrant:///ABS/PATH "
        "(Qdrant; API key from $ISEARCH_QDRANT_API_KEY) [default: the config's store.url, else "
        "the embedded store].",
    ),
]


def service_start(
    ctx: typer.Context,
    model: StartModelOpt = None,
    log_level: LogLevelOpt = None,
    precision: PrecisionOpt = None,
    store: StoreOpt = None,
    bind: BindOpt = None,
    db: DbOpt = None,
    version: VersionOpt = False,
) -> None:
    """Start the service in the background; returns when it answers."""
    from isearchd.service import control

    _, address = target(ctx, db, bind)
    config = effective_config()
    model_name = model or config.model.name
    options_given = model or log_level or precision or store or bind or ctx.find_root().params.get("bind")
    if options_given and control.managed_by_init():
        raise ServiceError(
            "ImgSearch is installed as a user service, which has its options fixed at install time; "
            "run `isearch service start` without -m/-L/-p/-B/--store, or reinstall with "
            "`isearch service install -m ...`"
        )
    level = log_level.value if log_level is not None else config.service.log_level
    if not control.managed_by_init():
        # download and export here, with progress, rather than silently inside the daemon's start
        control.ensure_not_running(address)
        prepare_model(
            model_name,
            precision.value if precision else config.model.precision,
            config.model.device,
            config.model.exporter,
        )
    info = control.start(
        model_name,
        bind=address,
        log_level=level,
        precision=precision.value if precision else None,
        store=store,
    )
    typer.echo(f"ImgSearch service started (PID {info.pid}, model {info.model}, listening on {info.bind})")


def service_stop(
    ctx: typer.Context, bind: BindOpt = None, db: DbOpt = None, version: VersionOpt = False
) -> None:
    """Stop the service."""
    from isearchd.service import control

    _, address = target(ctx, db, bind)
    pid = control.stop(bind=address)
    typer.echo(f"ImgSearch service stopped (PID {pid})" if pid else "ImgSearch service stopped")


def service_status(
    ctx: typer.Context, bind: BindOpt = None, db: DbOpt = None, version: VersionOpt = False
) -> None:
    """Show whether the service runs: PID, memory, model, databases, uptime, queue. Exit 3 when not."""
    from isearchd.service import control

    _, address = target(ctx, db, bind)
    info = control.status(bind=address)
    if info is None:
        typer.echo(f"ImgSearch service is not running at {address} (start it with `isearch service start`)")
        unit = control.installed_unit_state()
        if unit is not None:
            typer.echo(f"* Installed user service: {unit}")
        raise typer.Exit(EXIT_NOT_RUNNING)
    typer.echo("ImgSearch service is running")
    typer.echo(f"* PID: {info.pid if info.pid is not None else 'unknown'}")
    mem = f"{info.rss_bytes / 1024 / 1024:.1f} MB" if info.rss_bytes is not None else "unknown"
    typer.echo(f"* MEM: {mem}")
    if not info.answering:
        typer.echo(f"* Bind: {info.bind} (not answering: still starting, or listening on another address)")
        return
    assert info.status is not None  # it answered
    for line in status_lines(info.status, info.bind):
        typer.echo(line)


def status_lines(s: Status, bind: str) -> list[str]:
    """What ``service status`` says of a daemon that answered at ``bind``."""
    lines = [
        f"* Model: {s.model}",
        f"* Databases: {', '.join(s.databases) if s.databases else 'none loaded'}",
        f"* Uptime: {_duration(s.uptime_s)}",
        f"* Queue: {s.queue}",
    ]
    for what, doing, did, passes in (
        ("Photo metadata", "reading", "read for", s.metadata),
        ("Duplicate hashes", "hashing", "hashed", s.looks),
    ):
        for name, m in sorted(passes.items()):
            state = f"{doing}, {m.done} of {m.total}" if m.done < m.total else f"{did} {m.done} images"
            lines.append(f'* {what} of "{name}": {state} ({m.unreadable} unreadable)')
    for name, m in sorted(s.analyses.get("faces", {}).items()):
        read = f"faces read in {m.done:,} of {m.total:,} photos"
        lines.append(f'* People of "{name}": {read} ({m.unreadable} unreadable)')
    for name, m in sorted(s.analyses.get("words", {}).items()):
        read = f"words read in {m.done:,} of {m.total:,} photos"
        lines.append(f'* Words of "{name}": {read} ({m.unreadable} unreadable)')
    lines.append(f"* Bind: {bind}")
    lines.append(f"* Web page: {s.ui}" if s.ui else "* Web page: not served (start it with `isearch ui`)")
    return lines


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


service_app = typer.Typer(
    help="Start, stop and inspect the background service.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)
register(service_app)  # install and uninstall first: the order `isearch service --help` lists them in
service_app.command("start")(service_start)
service_app.command("stop")(service_stop)
service_app.command("status")(service_status)
