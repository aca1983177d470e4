"""The user-service files: a systemd user unit (Linux) and a launchd agent plist (macOS).

The unit and plist are rendered from templates kept in ``contrib/`` (canonical, readable in the
repository) and shipped as identical copies in ``isearchd/defaults/`` (package data, so an
installed wheel finds them; a test keeps the copies byte-identical). Rendering fills in the
interpreter running this code (``sys.executable -m isearchd``), the daemon options given to
``install`` (:class:`DaemonOptions`), and the ``ISEARCH_HOME``/``ISEARCH_CONFIG``/``ISEARCH_CACHE``
variables set at install time (the service manager's environment does not have them).

Pure text: nothing here writes a file or runs a tool (``isearchd.service.install`` does).
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from isearchd.config import settings
from isearchd.errors import ServiceError

UNIT_NAME = "isearchd.service"
LAUNCHD_LABEL = "com.imgsearch.isearchd"
PLIST_NAME = f"{LAUNCHD_LABEL}.plist"
# Environment variables copied into the service definition when set at install time: the
# service manager does not inherit the installing shell's environment. ISEARCH_TOKEN is left
# out on purpose (a secret does not belong in a world-readable unit; put it in the config file).
PASSED_ENV = ("ISEARCH_HOME", "ISEARCH_CONFIG", "ISEARCH_CACHE")
READY_TIMEOUT_S = 170  # below the unit's TimeoutStartSec=180
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


def launchd_log_path(user_home: Path | None = None) -> Path:
    return (user_home or Path.home()) / "Library" / "Logs" / "isearchd.log"


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


def validate_plist(text: str) -> dict[str, object]:
    """Parse a rendered plist (raises ServiceError if it is not a valid property list)."""
    try:
        data = plistlib.loads(text.encode("utf-8"))
    except Exception as exc:  # plistlib raises several types (ExpatError, ValueError, ...)
        raise ServiceError(f"invalid launchd plist: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError("invalid launchd plist: the top level is not a dictionary")
    return data
