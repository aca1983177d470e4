"""Opening files (and folders) on this machine with the platform's opener.

``$ISEARCH_OPENER`` (a command line, split like a shell's), else ``open`` on macOS,
``os.startfile`` on Windows, ``xdg-open`` elsewhere. Used by ``isearch search -o`` and by the web
page's "open folder" (for a browser on the daemon's own machine).

A video result opens at its moment where the opener is a player that takes a start time (mpv:
``--start=SECONDS``, VLC: ``--start-time=SECONDS``; set ``ISEARCH_OPENER=mpv``); any other
opener gets the file alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from isearchd.errors import NotFound

# players that start a file at a time: the option, "{}" the seconds
START_OPTIONS = {"mpv": "--start={}", "vlc": "--start-time={}", "cvlc": "--start-time={}"}


def start_option(opener: Sequence[str], at: float | None) -> list[str]:
    """The opener's option that starts a video at ``at`` seconds ([] when it has none)."""
    if at is None or not opener:
        return []
    option = START_OPTIONS.get(Path(opener[0]).name.lower().removesuffix(".exe"))
    return [option.format(f"{at:g}")] if option else []


def open_paths(paths: list[str], starts: Sequence[float | None] = ()) -> None:
    """Open files with the platform's opener ($ISEARCH_OPENER, else open / xdg-open); ``starts``:
    each video's moment, for an opener that can start there."""
    custom = os.environ.get("ISEARCH_OPENER")
    if custom:
        opener = shlex.split(custom)
    elif sys.platform == "win32":
        for path in paths:
            os.startfile(path)  # type: ignore[attr-defined]  # noqa: S606 - Windows only
        return
    elif sys.platform == "darwin":
        opener = ["open"]
    else:
        opener = ["xdg-open"]
    if not opener or shutil.which(opener[0]) is None:
        raise NotFound(
            f"cannot open the results: {opener[0] if opener else 'opener'} not found; "
            "set ISEARCH_OPENER to a program that opens a file"
        )
    for i, path in enumerate(paths):
        subprocess.Popen(
            [*opener, *start_option(opener, starts[i] if i < len(starts) else None), path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
