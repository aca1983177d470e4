"""Where ImgSearch keeps its files, and the defaults every component shares.

Nothing here touches the disk at import time: the functions compute paths, callers create them.

- data home: ``$ISEARCH_HOME``, else the config file's ``home``, else ``~/.isearch`` (the
  original's documented ``Base``).
  One directory per database below it, plus the daemon's socket, pid file and log.
- weights cache: ``$ISEARCH_CACHE``, else the platformdirs user cache dir ``isearch/weights``.
- user config: ``$ISEARCH_CONFIG``, else ``<platformdirs user config dir>/isearch.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "isearch"
DEFAULT_DB = "default"
DEFAULT_MODEL = "ViT-45LY"
SOCKET_NAME = "isearch.sock"
PID_NAME = "isearchd.pid"
LOG_NAME = "isearchd.log"


def data_home() -> Path:
    """The directory holding databases, socket, pid file and log.

    ``$ISEARCH_HOME``, else the ``home`` of the user config file, else ``~/.isearch``: the
    daemon, the CLI and the Python client all resolve it here, so they agree on where the
    socket and pid file are. A malformed config file is a ``ConfigError``.
    """
    env = os.environ.get("ISEARCH_HOME")
    if env:
        return Path(env).expanduser()
    from isearchd.config import load_config  # config imports this module

    return load_config().home


def default_bind() -> str:
    """The default bind address: the Unix socket in the data home."""
    return str(data_home() / SOCKET_NAME)


def pid_path() -> Path:
    return data_home() / PID_NAME


def log_path() -> Path:
    return data_home() / LOG_NAME


def weights_cache_dir() -> Path:
    """Where downloaded and imported model weights are kept."""
    env = os.environ.get("ISEARCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "weights"


def user_config_path() -> Path:
    env = os.environ.get("ISEARCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "isearch.toml"
