"""Install the daemon as a user service: a systemd user unit (Linux) or a launchd agent (macOS).

The unit and plist are rendered from templates kept in ``contrib/`` (canonical, readable in the
repository) and shipped as identical copies in ``isearchd/defaults/`` (package data, so an
installed wheel finds them; a test keeps the copies byte-identical). Rendering fills in the
interpreter running this code (``sys.executable -m isearchd``), the daemon options given to
``install``, and the ``ISEARCH_HOME``/``ISEARCH_CONFIG``/``ISEARCH_CACHE`` variables set at
install time (the service manager's environment does not have them).

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
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape as xml_escape

from isearchd.config import settings
from isearchd.errors import ServiceError

InitSystem = Literal["systemd", "launchd"]

UNIT_NAME = "isearchd.service"
LAUNCHD_LABEL = "com.imgsearch.isearchd"
PLIST_NAME = f"{LAUNCHD_LABEL}.plist"
# Environment variables copied into the service definition when set at install time: the
# service manager does not inherit the installing shell's environment. ISEARCH_TOKEN is left
# out on purpose (a secret does not belong in a world-readable unit; put it in the config file).
PASSED_ENV = ("ISEARCH_HOME", "ISEARCH_CONFIG", "ISEARCH_CACHE")
READY_TIMEOUT_S = 170  # below the unit's TimeoutStartSec=180
COMMAND_TIMEOUT_S = 120.0
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class DaemonOptions:
    """Daemon command-line options baked into the service; None leaves it to the config file."""

    bind: str | None = None
    model: str | None = None
    log_level: str | None = None
    home: Path | None = None

    def argv(self) -> list[str]:
        args: list[str] = []
        if self.bind:
            args += ["--bind", self.bind]
        if self.model:
            args += ["--model", self.model]
        if self.log_level:
            args += ["--log-level", self.log_level]
        if self.home:
            args += ["--home", str(self.home)]
        return args


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


def launchd_log_path(user_home: Path | None = None) -> Path:
    return (user_home or Path.home()) / "Library" / "Logs" / "isearchd.log"


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


# -- rendering --------------------------------------------------------------------------------


def template_text(name: str) -> str:
    """A shipped template: ``isearchd.service`` or ``com.imgsearch.isearchd.plist``."""
    return resources.files("isearchd").joinpath("defaults", name).read_text(encoding="utf-8")


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{{name}}`` for each name in ``values`` (each must occur in the template)."""
    for key in values:
        if "{{" + key + "}}" not in template:
            raise ServiceError(f"template has no placeholder {{{{{key}}}}}; reinstall isearchd")
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _passed_env(environ: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for var in PASSED_ENV:
        value = environ.get(var)
        if value:
            out[var] = str(Path(value).expanduser().absolute())
    return out


def systemd_quote(arg: str) -> str:
    """Quote one argument for an ``Exec*=`` line (systemd.service(5) "Command lines")."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not re.search(r"[\s\"'\\;]", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_env(name: str, value: str) -> str:
    """One ``Environment=`` assignment (specifiers expand there, variables do not)."""
    text = f"{name}={value}".replace("%", "%%")
    if not re.search(r"[\s\"'\\]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd_unit(
    options: DaemonOptions = DaemonOptions(),
    *,
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The unit file text for ``options``, run by ``python`` (default ``sys.executable``)."""
    env = os.environ if environ is None else environ
    py = str(Path(python or sys.executable).absolute())
    exec_start = [py, "-m", "isearchd", *options.argv()]
    ready = [py, "-m", "isearchd.service.readiness", "--timeout", str(READY_TIMEOUT_S)]
    bind = options.bind or (str(options.home / settings.SOCKET_NAME) if options.home else None)
    if bind:
        ready += ["--bind", bind]
    ready_line = " ".join(systemd_quote(a) for a in ready) + " --pid $MAINPID"
    env_lines = ["Environment=" + _systemd_env(k, v) for k, v in sorted(_passed_env(env).items())]
    return _fill(
        template_text(UNIT_NAME),
        {
            "exec_start": " ".join(systemd_quote(a) for a in exec_start),
            "exec_ready": ready_line,
            "environment": "\n".join(env_lines),
        },
    )


def render_launchd_plist(
    options: DaemonOptions = DaemonOptions(),
    *,
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
    user_home: Path | None = None,
) -> str:
    """The agent plist text for ``options``, run by ``python`` (default ``sys.executable``)."""
    env = os.environ if environ is None else environ
    py = str(Path(python or sys.executable).absolute())
    args = [py, "-m", "isearchd", *options.argv()]
    indent = " " * 8
    return _fill(
        template_text(PLIST_NAME),
        {
            "program_arguments": "\n".join(f"{indent}<string>{xml_escape(a)}</string>" for a in args),
            "environment": "\n".join(
                f"{indent}<key>{xml_escape(k)}</key>\n{indent}<string>{xml_escape(v)}</string>"
                for k, v in sorted(_passed_env(env).items())
            ),
            "log_file": xml_escape(str(launchd_log_path(user_home))),
        },
    )


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
    options: DaemonOptions = DaemonOptions(),
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


def validate_plist(text: str) -> dict[str, object]:
    """Parse a rendered plist (raises ServiceError if it is not a valid property list)."""
    try:
        data = plistlib.loads(text.encode("utf-8"))
    except Exception as exc:  # plistlib raises several types (ExpatError, ValueError, ...)
        raise ServiceError(f"invalid launchd plist: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError("invalid launchd plist: the top level is not a dictionary")
    return data
