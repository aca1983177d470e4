"""Writes that survive a crash or a power loss: fsync a file, fsync the folder of a rename.

A file replaced by ``os.replace`` is only durable once both its bytes and the directory entry
are on disk; a folder cannot be fsynced on every file system (nor on Windows), where the rename
itself is still atomic and the fsync is skipped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_dir", "fsync_file"]


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
