"""Which paths below a watched folder are indexed: image files that are not temporary or hidden.

A watched folder sees everything a user, a camera import, rsync or a browser writes. Indexed are
files with an image or video extension (``isearchd.files.formats.is_indexed_name``) whose path
below the folder has no part that is

- hidden: a name starting with ``.`` (``.thumbnails/``, rsync's ``.photo.jpg.XXXXXX`` temp files);
- a partial download or temp file: ``*.part``, ``*.crdownload``, ``*.tmp``, ``*.partial``,
  ``*.download``, ``*~``, Office lock files ``~$*``;
- matched by one of the folder's ``exclude`` globs.

Exclude globs are relative to the watched folder, ``/``-separated: ``*`` and ``?`` stay within
one path part, ``**`` spans parts (``**/raw/**``, ``**/*.tmp``). A pattern without ``/`` matches a
file or folder name at any depth (``*.psd``, ``cache``), like ``.gitignore``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache

from isearchd.files.formats import is_indexed_name

TEMP_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download", "~")
TEMP_PREFIXES = ("~$", ".")


def is_temp_name(name: str) -> bool:
    """A name that a writer uses while a file is incomplete, or a hidden one."""
    lower = name.lower()
    return lower.startswith(TEMP_PREFIXES) or lower.endswith(TEMP_SUFFIXES)


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex for one exclude glob (see the module docstring)."""
    pat = pattern.strip().replace(os.sep, "/")
    anchored = "/" in pat.rstrip("/")
    pat = pat.lstrip("/") if anchored else pat
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    body = "".join(out)
    if pat.endswith("/"):
        body = body.rstrip("/") + "(?:/.*)?"
    return re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z", re.DOTALL)


class PathFilter:
    """Decides, for paths below ``root``, what a watch indexes."""

    def __init__(self, root: str, exclude: Iterable[str] = ()) -> None:
        self.root = root.rstrip("/") or "/"
        self.exclude = tuple(p for p in exclude if p.strip())
        self._regexes = tuple(glob_to_regex(p) for p in self.exclude)

    def relative(self, path: str) -> str | None:
        """``path`` relative to the root (``/``-separated), or None when it is not below it."""
        if path == self.root:
            return ""
        prefix = self.root if self.root.endswith("/") else self.root + "/"
        if not path.startswith(prefix):
            return None
        return path[len(prefix) :]

    def contains(self, path: str) -> bool:
        return self.relative(path) is not None

    def _excluded(self, rel: str, is_dir: bool) -> bool:
        candidates = (rel, rel + "/") if is_dir else (rel,)
        return any(rx.match(c) for rx in self._regexes for c in candidates)

    def skip_dir(self, path: str) -> bool:
        """Whether a folder (and everything below it) is left out."""
        rel = self.relative(path)
        if rel is None:
            return True
        if rel == "":
            return False
        if any(part.startswith(".") for part in rel.split("/")):
            return True
        return self._excluded(rel, is_dir=True)

    def wants_file(self, path: str) -> bool:
        """Whether a file is indexed (an image or a video; not temporary, hidden or excluded; below
        the root)."""
        rel = self.relative(path)
        if not rel:
            return False
        parts = rel.split("/")
        name = parts[-1]
        if not is_indexed_name(name) or is_temp_name(name):
            return False
        if any(part.startswith(".") for part in parts[:-1]):
            return False
        if not self._regexes:
            return True
        for i in range(1, len(parts)):
            if self._excluded("/".join(parts[:i]), is_dir=True):
                return False
        return not self._excluded(rel, is_dir=False)
