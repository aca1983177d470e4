"""Offline machines: verify a checkpoint file as a model's weights, then copy it into the cache.

The check is the file's ONNX export (``backend.ensure_export`` in a child process, torch-free with
the default builder): the checkpoint is read through the allow-list reader, every tensor must fit
the architecture, and both graphs must run. The export is keyed by the file's sha256, so the copy
in the cache finds it made and the daemon starts at once. Beside ``weights``, which only
downloads and therefore must not import the exporters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from isearchd.errors import ISearchError, ModelError, NotFound
from isearchd.models.backend import ensure_export, export_cached, needs_torch, torch_installed
from isearchd.models.registry import get_spec
from isearchd.models.resolve import resolve
from isearchd.models.torchzip import check_header
from isearchd.models.weights import cache_file, place_in_cache

log = logging.getLogger(__name__)


def import_weights(
    key: str, file: str | Path, exporter: str = "builder", *, exporting: Callable[[], None] | None = None
) -> Path:
    """Verify that ``file`` holds weights for ``key`` and copy it into the cache atomically.

    The file is exported as that architecture first (fp32, by ``exporter``; an export already made
    for the same bytes is reused); a checkpoint of another model, a truncated or non-checkpoint
    file raises ``ModelError`` naming the file and the reason. ``exporting`` is called when the
    quick checks have passed and an export (seconds) begins. Returns the cache path.
    """
    key = get_spec(key).key
    source = Path(file).expanduser()
    target = cache_file(key)
    if not source.is_file():
        raise NotFound(f"{source}: no such file")
    try:
        check_header(source)
        if exporter == "torch" and not torch_installed():
            raise needs_torch("the torch exporter")
        resolved = resolve(key, weights=source)
        if exporting is not None and not export_cached(resolved, "fp32"):
            exporting()
        ensure_export(resolved, "fp32", exporter)
    except ISearchError as e:
        reason = e.message.removeprefix("ONNX export failed: ").removeprefix(f"{source}: ")
        raise ModelError(f"cannot import {source} as {key}: {reason}") from None
    place_in_cache(source, target)
    log.info("imported %s as %s into %s", source, key, target)
    return target
