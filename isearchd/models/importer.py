"""Offline machines: verify a checkpoint file as a model's weights, then copy it into the cache.

Above the loader (it loads the file to check its architecture), beside ``weights``, which only
downloads and therefore must not import the loader.
"""

from __future__ import annotations

import logging
from pathlib import Path

from isearchd.errors import ISearchError, ModelError, NotFound
from isearchd.models.backend import load_model
from isearchd.models.registry import get_spec
from isearchd.models.weights import cache_file, place_in_cache

log = logging.getLogger(__name__)


def import_weights(key: str, file: str | Path) -> Path:
    """Verify that ``file`` holds weights for ``key`` and copy it into the cache atomically.

    The file is loaded as that architecture first; a checkpoint of another model, a truncated or
    non-checkpoint file raises ``ModelError`` naming the file and the reason. Returns the cache path.
    """
    key = get_spec(key).key
    source = Path(file).expanduser()
    target = cache_file(key)
    if not source.is_file():
        raise NotFound(f"{source}: no such file")
    try:
        load_model(key, weights=source)
    except ISearchError as e:
        reason = e.message.removeprefix(f"{source}: ")  # the loader names the file itself
        raise ModelError(f"cannot import {source} as {key}: {reason}") from None
    except Exception as e:  # torch/pickle errors of a file that is no checkpoint at all
        reason = f"not a PyTorch checkpoint ({type(e).__name__}: {e})"
        raise ModelError(f"cannot import {source} as {key}: {reason}") from None
    place_in_cache(source, target)
    log.info("imported %s as %s into %s", source, key, target)
    return target
