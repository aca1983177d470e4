"""The vector index on disk: ``vectors.hnsw`` and its sidecar ``vectors.json``.

The sidecar names the model and dim the index was built for and, for the index file and the one
before it (``current``, ``previous``), its size, the sha256 of its first ``HEADER_BYTES`` and the
last catalog change (``seq``) it contains. ``check_index_file`` trusts a file only when one of them
describes it exactly.

Saving is atomic: the index goes to a temporary file that is size-checked and fsynced; then the
sidecar (naming the new file as ``current`` and the file still on disk as ``previous``) replaces
the old sidecar, then the index file replaces the old one, then the directory is fsynced. A crash
between the two renames leaves the old file, which the sidecar still describes as ``previous``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib

from isearchd.errors import StoreError
from isearchd.files.durable import fsync_dir, fsync_file

__all__ = ["INDEX_NAME", "SIDECAR_FORMAT", "SIDECAR_NAME", "FileEntry", "check_index_file", "save_index_file"]

INDEX_NAME = "vectors.hnsw"
SIDECAR_NAME = "vectors.json"
SIDECAR_FORMAT = 1
HEADER_BYTES = 4096  # hashed into the sidecar: identifies the file cheaply (a full hash is ~0.5 s/GB)


@dataclass(frozen=True)
class FileEntry:
    """What the sidecar knows about one index file."""

    seq: int
    size: int
    head_sha256: str

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "bytes": self.size, "head_sha256": self.head_sha256}

    @classmethod
    def from_json(cls, data: Any) -> FileEntry | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["seq"]), int(data["bytes"]), str(data["head_sha256"]))
        except (KeyError, TypeError, ValueError):
            return None


def head_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(HEADER_BYTES)).hexdigest()


def check_index_file(path: Path, sidecar: Path, dim: int, model_key: str) -> FileEntry | str:
    """The sidecar entry describing the file at ``path``, or why the file cannot be trusted."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "its sidecar file is missing"
    except (OSError, ValueError) as exc:
        return f"its sidecar file is unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        return "its sidecar file has an unknown format"
    if meta.get("dim") != dim or meta.get("model") != model_key:
        built = f"{meta.get('model')} (dim {meta.get('dim')})"
        return f"it was built for {built}, not {model_key} (dim {dim})"
    try:
        size = path.stat().st_size
        head = head_sha256(path)
    except OSError as exc:
        return f"the file cannot be read ({exc})"
    for key in ("current", "previous"):
        entry = FileEntry.from_json(meta.get(key))
        if entry is not None and entry.size == size and entry.head_sha256 == head:
            return entry
    return "the file does not match its sidecar (truncated, overwritten or from an interrupted save)"


def save_index_file(
    index: hnswlib.Index, directory: Path, seq: int, header: Mapping[str, object], previous: FileEntry | None
) -> FileEntry:
    """Write ``index`` (holding the catalog's changes up to ``seq``) into ``directory`` atomically;
    ``header``: the sidecar's model, dim and count; ``previous``: the entry of the file on disk."""
    path, sidecar_path = directory / INDEX_NAME, directory / SIDECAR_NAME
    tmp = directory / (INDEX_NAME + ".tmp")
    side_tmp = directory / (SIDECAR_NAME + ".tmp")
    try:
        expected = int(index.index_file_size())
        index.save_index(str(tmp))
        size = tmp.stat().st_size
        if size != expected:
            # hnswlib writes through an unchecked ofstream: a full disk shows up as a short file.
            raise OSError(f"short write: {size} of {expected} bytes (is the disk full?)")
        fsync_file(tmp)
        entry = FileEntry(seq, size, head_sha256(tmp))
        sidecar = {
            "format": SIDECAR_FORMAT,
            **header,
            "current": entry.to_json(),
            "previous": None if previous is None else previous.to_json(),
        }
        with side_tmp.open("w", encoding="utf-8") as f:
            json.dump(sidecar, f)
            f.flush()
            os.fsync(f.fileno())
        side_tmp.replace(sidecar_path)
        tmp.replace(path)
        fsync_dir(directory)
    except (OSError, RuntimeError) as exc:
        for leftover in (tmp, side_tmp):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise StoreError(
            f"cannot save the vector index {path}: {exc}. The previous index file is intact and nothing "
            "in the catalog is lost; free some disk space, the next save will write it again"
        ) from exc
    return entry
