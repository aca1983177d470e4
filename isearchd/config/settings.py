"""Where ImgSearch keeps its files, and the defaults every component shares.

Nothing here touches the disk at import time: the functions compute paths, callers create them.

- data home: ``$ISEARCH_HOME``, else the config file's ``home``, else ``~/.isearch`` (the
  original's documented ``Base``): resolved by ``isearchd.config.home``, which reads the file.
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
# The language words in pictures are read in by default: the recognition model rapidocr packages.
DEFAULT_WORDS_LANGUAGE = "chinese"
SOCKET_NAME = "isearch.sock"
PID_NAME = "isearchd.pid"
LOG_NAME = "isearchd.log"


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
