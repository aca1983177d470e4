"""Find the image files named by a list of files and folders.

Folders are walked recursively. Hidden files and folders (name starting with ``.``) met while
walking are skipped; image and video files are recognised by extension, in any case
(``isearchd.files.formats.is_indexed_name``). Symlinks are followed, but every real directory is
entered at most once, so a link pointing back up the tree cannot loop. A path that cannot be read (missing,
permission denied, an explicitly named file that is not an image) is reported as a ``ScanError``
and the walk goes on.

Paths come back absolute (``os.path.abspath``, symlinks not resolved), in walk order (sorted names
within a folder), each file once.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from isearchd.files.formats import is_indexed_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanError:
    path: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    files: list[str] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)


def scan(paths: Iterable[str | os.PathLike[str]]) -> ScanResult:
    """Every image file under ``paths`` (files and folders), plus what could not be read."""
    result = ScanResult()
    seen_files: set[str] = set()
    for item in iter_scan(paths):
        if isinstance(item, ScanError):
            result.errors.append(item)
        elif item not in seen_files:
            seen_files.add(item)
            result.files.append(item)
    return result


def iter_scan(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str | ScanError]:
    """Like ``scan`` but lazy; a file reachable twice may be yielded twice."""
    visited_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        path = absolute(raw)
        try:
            mode = Path(path).stat().st_mode
        except FileNotFoundError:
            yield ScanError(path, "no such file or directory")
            continue
        except PermissionError:
            yield ScanError(path, "permission denied")
            continue
        except OSError as e:
            yield ScanError(path, f"cannot read ({e.strerror or e})")
            continue
        if stat.S_ISDIR(mode):
            yield from _walk(path, visited_dirs)
        elif not stat.S_ISREG(mode):
            yield ScanError(path, "not a regular file (a FIFO, socket or device)")
        elif is_indexed_name(path) or _is_hidden_image_name(path):
            yield path
        else:
            ext = Path(path).suffix or "no extension"
            yield ScanError(path, f"not a supported image file ({ext})")


def _is_hidden_image_name(path: str) -> bool:
    """An explicitly named hidden file (``.cover.jpg``) is indexed: the user asked for it."""
    base = Path(path).name
    return base.startswith(".") and len(base) > 1 and is_indexed_name(base[1:])


def _walk(top: str, visited: set[tuple[int, int]]) -> Iterator[str | ScanError]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = Path(folder).stat()
        except OSError as e:
            yield ScanError(folder, _reason(e))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            log.debug("skipping %s: directory already visited (symlink loop or duplicate)", folder)
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield ScanError(folder, _reason(e))
            continue
        subdirs: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = not is_dir and entry.is_file()
            except OSError as e:
                yield ScanError(entry.path, _reason(e))
                continue
            if is_dir:
                subdirs.append(entry.path)
            elif is_file and is_indexed_name(entry.name):
                yield entry.path
            elif not is_file and is_indexed_name(entry.name):
                # never opened: reading a FIFO would block the add
                yield ScanError(entry.path, _special_reason(entry))
        # depth-first, in name order
        stack.extend(reversed(subdirs))


def _special_reason(entry: os.DirEntry[str]) -> str:
    """Why an entry with an image's name that is neither a file nor a folder is not indexed."""
    if entry.is_symlink() and not Path(entry.path).exists():
        return "broken symbolic link"
    return "not a regular file (a FIFO, socket or device)"


def _reason(e: OSError) -> str:
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, FileNotFoundError):
        return "no such file or directory"
    return f"cannot read ({e.strerror or e})"


def label_for(path: str | Path, label_type: str) -> str:
    """The label a file is stored under: its absolute path, or its file name (``label_type='name'``)."""
    if label_type == "name":
        return Path(path).name
    return absolute(path)


def absolute(path: str | os.PathLike[str]) -> str:
    """``~`` expanded, made absolute, ``..`` collapsed; symlinks kept (unlike ``Path.resolve``)."""
    return os.path.normpath(Path(path).expanduser().absolute())
