"""Where the data home is: one resolution shared by the daemon, the CLI and the Python client.

``$ISEARCH_HOME``, else the ``home`` of the user config file, else ``~/.isearch``; the socket,
pid file and log live in it. (Here, not in ``settings``, because it reads the config file, and
the config file's defaults come from ``settings``.)
"""

from __future__ import annotations

import os
from pathlib import Path

from isearchd.config import settings
from isearchd.config.file import load_config


def data_home() -> Path:
    """The directory holding databases, socket, pid file and log.

    ``$ISEARCH_HOME``, else the ``home`` of the user config file, else ``~/.isearch``: the
    daemon, the CLI and the Python client all resolve it here, so they agree on where the
    socket and pid file are. A malformed config file is a ``ConfigError``.
    """
    env = os.environ.get("ISEARCH_HOME")
    if env:
        return Path(env).expanduser()
    return load_config().home


def default_bind() -> str:
    """The default bind address: the Unix socket in the data home."""
    return str(data_home() / settings.SOCKET_NAME)


def pid_path() -> Path:
    return data_home() / settings.PID_NAME


def log_path() -> Path:
    return data_home() / settings.LOG_NAME
