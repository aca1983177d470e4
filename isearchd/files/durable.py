"""Writes that survive a crash or a power loss: fsync a file, fsync the folder of a rename.

A file replaced by ``os.replace`` is only durable once both its bytes and the directory entry
are on disk; a folder cannot be fsynced on every file system (nor on Windows), where the rename
itself is still atomic and the fsync is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["copy_whole", "fsync_dir", "fsync_file"]

COPY_CHUNK_BYTES = 1 << 20


def fsync_file(path: Path) -> None:
    """Flush the file at ``path`` to disk (``OSError`` when it cannot be opened or flushed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the file system allows it."""
    with contextlib.suppress(OSError):
        fsync_file(directory)


def copy_whole(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that ``target`` is never half a file: into a temporary file
    beside it, fsynced, renamed into place (``OSError`` when that fails; nothing is left behind)."""
    tmp = target.with_name(f"{target.name}.import-{os.getpid()}.tmp")
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK_BYTES)
            dst.flush()
            os.fsync(dst.fileno())
        tmp.replace(target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
