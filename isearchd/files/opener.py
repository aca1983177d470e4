"""Opening files (and folders) on this machine with the platform's opener.

``$ISEARCH_OPENER`` (a command line, split like a shell's), else ``open`` on macOS,
``os.startfile`` on Windows, ``xdg-open`` elsewhere. Used by ``isearch search -o`` and by the web
page's "open folder" (for a browser on the daemon's own machine).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from isearchd.errors import NotFound


def open_paths(paths: list[str]) -> None:
    """Open files with the platform's opener ($ISEARCH_OPENER, else open / xdg-open)."""
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
    for path in paths:
        subprocess.Popen(
            [*opener, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
