"""Compare a watched folder on disk with what its database holds.

``walk_folder`` lists the indexable files below a folder with their (size, mtime_ns), using only
``scandir`` and ``stat``: no file is opened. ``diff`` compares that with the catalog's rows for the
folder: files new or changed (size or mtime differ) must go through the indexer (which hashes
them, so a renamed or moved file reuses its stored vector instead of being decoded again);
rows whose file is gone are removed. Unchanged files cost one ``stat`` each, so reconciling
10,000 unchanged files decodes nothing and takes well under a second.

Folder symlinks are not followed (no loops, and every file has one label); file symlinks are.
A folder that cannot be read is reported and the rows below it are kept: what cannot be seen is
not assumed deleted.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from isearchd.watch.pathfilter import PathFilter

log = logging.getLogger(__name__)

# Check for a stop request every this many directory entries (a walk of a huge tree stops quickly).
STOP_CHECK_ENTRIES = 512


class WalkStopped(Exception):
    """The walk was interrupted by its stop event."""


@dataclass
class WalkResult:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason)
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): cannot be stat'ed
    folders: int = 0


@dataclass(frozen=True)
class Diff:
    to_index: list[str]  # new or changed files, in path order
    vanished: list[str]  # labels whose file is gone
    unchanged: int


def walk_folder(root: str, flt: PathFilter, stop: threading.Event | None = None) -> WalkResult:
    """Every file below ``root`` that ``flt`` wants, with its size and mtime."""
    result = WalkResult()
    stack = [root]
    seen = 0
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
            result.unreadable.append((folder, reason))
            continue
        result.folders += 1
        for entry in entries:
            seen += 1
            if stop is not None and seen % STOP_CHECK_ENTRIES == 0 and stop.is_set():
                raise WalkStopped(root)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not flt.skip_dir(entry.path):
                        stack.append(entry.path)
                    continue
            except OSError:
                continue
            if not flt.wants_file(entry.path):
                continue
            try:
                st = entry.stat()  # follows a file symlink
            except FileNotFoundError:
                if entry.is_symlink():
                    result.bad_files.append((entry.path, "broken symbolic link"))
                continue  # else it vanished meanwhile
            except OSError as e:
                reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
                result.bad_files.append((entry.path, f"cannot read ({reason})"))
                continue
            if stat.S_ISREG(st.st_mode):
                result.files[entry.path] = (st.st_size, st.st_mtime_ns)
            else:
                result.bad_files.append((entry.path, "not a regular file"))
    return result


def diff(walked: WalkResult, records: Iterable[tuple[str, str, int, int]]) -> Diff:
    """``records``: (label, path, size, mtime_ns) of the catalog rows below the folder.

    Only rows labelled by their path are the watch's (rows added with name labels are left
    alone). A row is vanished when its file is not on disk any more (checked with ``lexists``, so a
    row for a file the walk skips, e.g. one added explicitly despite an exclude, is kept), and it
    is not below a folder that could not be read.
    """
    stored: dict[str, tuple[int, int]] = {}
    for label, path, size, mtime_ns in records:
        if label == path:
            stored[label] = (size, mtime_ns)
    blocked = tuple(f.rstrip("/") + "/" for f, _ in walked.unreadable)
    to_index = sorted(p for p, sig in walked.files.items() if stored.get(p) != sig)
    unchanged = len(walked.files) - len(to_index)
    vanished = sorted(
        label
        for label in stored
        if label not in walked.files and not label.startswith(blocked) and not os.path.lexists(label)
    )
    return Diff(to_index=to_index, vanished=vanished, unchanged=unchanged)
