"""Install the daemon as a user service: a systemd user unit (Linux) or a launchd agent (macOS).

The unit and plist files are rendered by ``isearchd.service.unitfiles``; this module puts them in
place and drives the init system.

Everything here is idempotent: installing an unchanged unit again only makes sure it is enabled
and running; installing a changed one rewrites it and restarts the service; uninstalling a
missing one does nothing. The init system is driven through ``systemctl --user`` /
``launchctl`` found on ``PATH``, so tests run against fakes. Nothing here prints: results come
back as :class:`InstallResult` for the CLI to show.

For the CLI's ``service start|stop|status``: when :func:`managed_by_init` is true, use
:func:`start_unit`, :func:`stop_unit` and :func:`unit_status` instead of forking the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from isearchd.errors import ServiceError
from isearchd.service.unitfiles import (
    LAUNCHD_LABEL,
    PLIST_NAME,
    UNIT_NAME,
    DaemonOptions,
    launchd_log_path,
    render_launchd_plist,
    render_systemd_unit,
    validate_plist,
)

InitSystem = Literal["systemd", "launchd"]

# How long one `systemctl --user` / `launchctl` command may take.
COMMAND_TIMEOUT_S = 120.0
# ``install``'s default: every daemon option left to the config file.
_NO_OPTIONS = DaemonOptions()


@dataclass(frozen=True)
class InstallResult:
    init: InitSystem
    path: Path  # the unit or plist file
    changed: bool  # whether the file was written (or removed, for uninstall)
    commands: tuple[tuple[str, ...], ...] = ()  # what was run, in order
    hints: tuple[str, ...] = ()  # how to check on it, for the CLI to print


@dataclass(frozen=True)
class UnitStatus:
    active: bool
    pid: int | None
    state: str  # systemd ActiveState/SubState, or launchd's "state"
    details: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


# -- platform and paths -----------------------------------------------------------------------


def init_system(platform: str | None = None) -> InitSystem:
    """The user-service manager for ``platform`` (default ``sys.platform``)."""
    plat = platform or sys.platform
    if plat.startswith("linux"):
        return "systemd"
    if plat == "darwin":
        return "launchd"
    raise ServiceError(f"user services are supported on Linux (systemd) and macOS (launchd), not {plat}")


def unit_path(
    init: InitSystem, user_home: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where the unit (systemd) or agent plist (launchd) is installed."""
    env = os.environ if environ is None else environ
    home = user_home or Path.home()
    if init == "systemd":
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and user_home is None else home / ".config"
        return base / "systemd" / "user" / UNIT_NAME
    return home / "Library" / "LaunchAgents" / PLIST_NAME


def unit_installed(
    platform: str | None = None, user_home: Path | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """True when ``isearch service install`` has put a unit/plist in place."""
    try:
        init = init_system(platform)
    except ServiceError:
        return False
    return unit_path(init, user_home, environ).is_file()


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when a systemd user manager is reachable (``systemctl --user`` would work).

    ``systemctl --user`` talks to the manager through ``$XDG_RUNTIME_DIR/systemd/private``.
    """
    env = os.environ if environ is None else environ
    if _which("systemctl", env) is None:
        return False
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return (Path(runtime) / "systemd" / "private").exists()


def managed_by_init(
    platform: str | None = None, user_home: Path | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """True when ``service start|stop|status`` should drive the installed unit instead of forking."""
    if not unit_installed(platform, user_home, environ):
        return False
    env = os.environ if environ is None else environ
    if init_system(platform) == "systemd":
        return under_systemd(env)
    return _which("launchctl", env) is not None


# -- running the init system's tools -----------------------------------------------------------


def _which(tool: str, environ: Mapping[str, str]) -> str | None:
    return shutil.which(tool, path=environ.get("PATH", os.defpath))


def _run(
    argv: Sequence[str], environ: Mapping[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    exe = _which(argv[0], environ)
    if exe is None:
        raise ServiceError(f"`{argv[0]}` was not found on PATH; is this a {_tool_system(argv[0])} session?")
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            env=dict(environ),
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{' '.join(argv)}` did not finish within {COMMAND_TIMEOUT_S:g} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ServiceError(
            f"`{' '.join(argv)}` failed (exit {proc.returncode})" + (f": {detail[-1]}" if detail else "")
        )
    return proc


def _tool_system(tool: str) -> str:
    return "systemd" if tool == "systemctl" else "launchd"


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def _gui_domain() -> str:
    return f"gui/{os.getuid()}"


# -- install / uninstall ------------------------------------------------------------------------


def install(
    options: DaemonOptions = _NO_OPTIONS,
    *,
    platform: str | None = None,
    user_home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    python: str | None = None,
) -> InstallResult:
    """Write the unit/plist, enable it and start the daemon. Idempotent."""
    env = os.environ if environ is None else environ
    init = init_system(platform)
    path = unit_path(init, user_home, env)
    commands: list[tuple[str, ...]] = []
    hints: tuple[str, ...]

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        commands.append(argv)
        return _run(argv, env, check=check)

    if init == "systemd":
        text = render_systemd_unit(options, python=python, environ=env)
        changed = _write_if_changed(path, text)
        run("systemctl", "--user", "daemon-reload")
        run("systemctl", "--user", "enable", UNIT_NAME)
        # A changed unit must be restarted to take effect; an unchanged one just started.
        run("systemctl", "--user", "restart" if changed else "start", UNIT_NAME)
        hints = (
            f"Installed {path}; the daemon starts at login.",
            "Check it:   systemctl --user status isearchd",
            "Its log:    journalctl --user -u isearchd -f",
            "To keep it running after you log out: loginctl enable-linger $USER",
        )
    else:
        text = render_launchd_plist(options, python=python, environ=env, user_home=user_home)
        validate_plist(text)  # a broken plist would leave launchd silently without the service
        changed = _write_if_changed(path, text)
        launchd_log_path(user_home).parent.mkdir(parents=True, exist_ok=True)
        target = f"{_gui_domain()}/{LAUNCHD_LABEL}"
        loaded = run("launchctl", "print", target, check=False).returncode == 0
        if loaded and changed:
            run("launchctl", "bootout", target, check=False)
            loaded = False
        run("launchctl", "enable", target)  # bootstrap refuses a disabled service
        if not loaded:
            run("launchctl", "bootstrap", _gui_domain(), str(path))
        hints = (
            f"Installed {path}; the daemon starts at login.",
            f"Check it:   launchctl print {target}",
            f"Its log:    tail -f {launchd_log_path(user_home)}",
        )
    return InstallResult(init, path, changed, tuple(commands), hints)


def uninstall(
    *,
    platform: str | None = None,
    user_home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> InstallResult:
    """Stop and disable the service and remove its file. Does nothing when it is not installed."""
    env = os.environ if environ is None else environ
    init = init_system(platform)
    path = unit_path(init, user_home, env)
    commands: list[tuple[str, ...]] = []
    if not path.exists():
        return InstallResult(init, path, False, (), (f"Nothing to do: {path} is not installed.",))

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        commands.append(argv)
        return _run(argv, env, check=check)

    if init == "systemd":
        run("systemctl", "--user", "disable", "--now", UNIT_NAME)
        _remove(path)
        run("systemctl", "--user", "daemon-reload")
        run("systemctl", "--user", "reset-failed", UNIT_NAME, check=False)
    else:
        # bootout fails when the agent is not loaded: that is the state we want anyway.
        run("launchctl", "bootout", f"{_gui_domain()}/{LAUNCHD_LABEL}", check=False)
        _remove(path)
    return InstallResult(init, path, True, tuple(commands), (f"Removed {path}; the service is stopped.",))


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot remove {path}: {exc.strerror or exc}") from None


# -- start / stop / status through the init system ----------------------------------------------


def start_unit(*, platform: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Start the installed service (returns once systemd reports it ready)."""
    env = os.environ if environ is None else environ
    if init_system(platform) == "systemd":
        _run(("systemctl", "--user", "start", UNIT_NAME), env)
    else:
        _run(("launchctl", "kickstart", f"{_gui_domain()}/{LAUNCHD_LABEL}"), env)


def stop_unit(*, platform: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Stop the installed service; it stays stopped until started or the next login."""
    env = os.environ if environ is None else environ
    if init_system(platform) == "systemd":
        _run(("systemctl", "--user", "stop", UNIT_NAME), env)
    else:
        # SIGTERM makes the daemon exit 0, and KeepAlive{SuccessfulExit=false} leaves it stopped.
        _run(("launchctl", "kill", "SIGTERM", f"{_gui_domain()}/{LAUNCHD_LABEL}"), env, check=False)


def unit_status(*, platform: str | None = None, environ: Mapping[str, str] | None = None) -> UnitStatus:
    """Whether the installed service runs, and its main pid."""
    env = os.environ if environ is None else environ
    if init_system(platform) == "systemd":
        proc = _run(
            ("systemctl", "--user", "show", UNIT_NAME, "--property=ActiveState,SubState,MainPID"), env
        )
        props = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        pid = int(props.get("MainPID", "0") or 0)
        state = props.get("ActiveState", "unknown")
        return UnitStatus(
            active=state == "active",
            pid=pid or None,
            state=f"{state} ({props.get('SubState', '?')})",
            details=props,
        )
    proc = _run(("launchctl", "print", f"{_gui_domain()}/{LAUNCHD_LABEL}"), env, check=False)
    if proc.returncode != 0:
        return UnitStatus(active=False, pid=None, state="not loaded")
    info: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep and key not in info:
            info[key] = value.strip()
    pid_text = info.get("pid", "")
    state = info.get("state", "unknown")
    return UnitStatus(
        active=state == "running",
        pid=int(pid_text) if pid_text.isdigit() else None,
        state=state,
        details=info,
    )
