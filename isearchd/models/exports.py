"""The ONNX export cache: where a model's exported towers live, and which weights they belong to.

Layout, inside the weights cache (``settings.weights_cache_dir()``)::

    onnx/<model>-<weights id>/image-<precision>-v<EXPORT_VERSION>.onnx      (int8: ...-q<INT8_RECIPE>)
    onnx/<model>-<weights id>/text-<precision>-v<EXPORT_VERSION>.onnx
    onnx/<model>-<weights id>/token-embedding-v<EXPORT_VERSION>.npy
    onnx/stamps/<hash of the weights path>.json     size, mtime and sha256 of a weights file

The text graph starts after the token lookup: the (49408, width) token table (a third of the
text tower's bytes, of which a query touches a few rows) is a memory-mapped ``.npy`` file, so it
costs the daemon almost no resident memory.

``<weights id>`` is the first 16 hex digits of the weights file's sha256, so a different file
(new download, custom checkpoint edited in place) never meets a stale export; the stamp lets a
daemon start without hashing hundreds of megabytes again while the file is unchanged.
``EXPORT_VERSION`` changes whenever the graphs we write change meaning, ``INT8_RECIPE`` when only
the quantisation does (so a new recipe does not make the fp32 export again). Everything is written to
a temporary name and renamed, so readers only ever see complete files.

No torch here: the daemon reads this cache without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isearchd.config import settings

__all__ = [
    "EXPORT_VERSION",
    "INT8_RECIPE",
    "PRECISIONS",
    "ExportPaths",
    "atomic_write",
    "export_paths",
    "file_sha256",
    "weights_id",
]

log = logging.getLogger(__name__)

# Bump when the exported graphs change (inputs, outputs, metadata). 1: torch's exports; 2: the
# graphs say which exporter made them (``isearch.exporter``: the torch-free builder by default, or
# torch), so an export of version 1 is made again by the configured exporter, never reused.
EXPORT_VERSION = 2
# Bump when the int8 quantisation recipe changes (``export_steps.QUANTIZATION``). 1: per tensor,
# full range (saturated on AVX2 CPUs); 2: per channel, reduced range (exact on every CPU).
INT8_RECIPE = 2
PRECISIONS = ("fp32", "int8")
_HASH_CHUNK = 1 << 20
_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        while chunk := fp.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _onnx_root() -> Path:
    return settings.weights_cache_dir() / "onnx"


def weights_id(path: Path) -> str:
    """First 16 hex digits of the file's sha256, remembered per (path, size, mtime)."""
    resolved = path.expanduser().resolve()
    st = resolved.stat()
    stamp = _onnx_root() / "stamps" / f"{hashlib.sha256(str(resolved).encode()).hexdigest()[:24]}.json"
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
        current = {"path": str(resolved), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if all(data[k] == v for k, v in current.items()):
            return str(data["id"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    wid = file_sha256(resolved)[:16]
    record = {"path": str(resolved), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "id": wid}
    try:
        atomic_write(stamp, lambda tmp: tmp.write_text(json.dumps(record), encoding="utf-8"))
    except OSError as exc:  # a read-only cache only costs the hashing next time
        log.debug("cannot remember the hash of %s: %s", resolved, exc)
    return wid


@dataclass(frozen=True)
class ExportPaths:
    """The files of one model, weights file and precision: two graphs and the token table."""

    directory: Path
    image: Path
    text: Path
    token_table: Path

    def exist(self) -> bool:
        return self.image.is_file() and self.text.is_file() and self.token_table.is_file()


def export_paths(key: str, wid: str, precision: str) -> ExportPaths:
    """Where the export of model ``key`` (base key, no precision suffix) with weights ``wid`` goes."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    slug = _SLUG_RE.sub("-", key.replace("custom:", "custom-")).strip("-")
    directory = _onnx_root() / f"{slug}-{wid}"
    suffix = f"{precision}-v{EXPORT_VERSION}" + (f"-q{INT8_RECIPE}" if precision == "int8" else "") + ".onnx"
    return ExportPaths(
        directory,
        image=directory / f"image-{suffix}",
        text=directory / f"text-{suffix}",
        token_table=directory / f"token-embedding-v{EXPORT_VERSION}.npy",
    )


def atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Create ``target`` by ``write(temporary path)``, fsync and rename; no partial file is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as fp:
            os.fsync(fp.fileno())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
