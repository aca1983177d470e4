"""How the watcher watches: its tuning (``WatchOptions``) and what decides inotify or polling.

A folder is polled instead of watched with inotify when polling is forced, when its mount is a
network file system (``filesystem_type`` in ``NETWORK_FS``: inotify never hears of changes made on
another machine), when inotify is out of watches or instances (``INOTIFY_EXHAUSTED``), or when
the folder has more subfolders than ``inotify_watch_limit`` allows.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from isearchd.errors import InvalidRequest
from isearchd.watch.debounce import SETTLE_S

# How often a folder's thread drains events and hands settled files on. Bounds the latency it
# adds to a change (the settle interval dominates) and costs nothing when idle.
TICK_S = 0.2
# Polling observer interval: each poll stats every file below the folder (~10 ms per 1,000 files).
POLL_INTERVAL_S = 2.0
# Files per reconcile job. Small enough that an add or a live event waits at most one chunk
# (~10 s with ViT-45LY on 2 cores when everything must be embedded), large enough to batch well.
RECONCILE_CHUNK = 256
# A folder that is missing or unreadable is looked at again this often.
RETRY_S = 5.0
# inotify errors that mean "no more watches/instances": fall back to polling for that folder.
INOTIFY_EXHAUSTED = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
# File systems whose changes made elsewhere inotify never reports: polled.
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "fuse.sshfs",
        "sshfs",
        "fuse.rclone",
        "davfs",
        "fuse.davfs2",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "virtiofs",
    }
)
# Unreadable folders and failed files shown by `watch --list` and logged per scan or batch.
MAX_ERRORS_SHOWN = 5
# Files that failed to index, remembered per folder for `watch --errors` (path and reason, ~200
# bytes each); beyond this many only the count grows.
MAX_FAILURES_KEPT = 10_000


@dataclass(frozen=True)
class WatchOptions:
    """Tuning of the watcher. ``from_env`` reads ISEARCH_WATCH_POLLING (1: poll every folder),
    ISEARCH_WATCH_SETTLE_S and ISEARCH_WATCH_POLL_S (seconds)."""

    settle_s: float = SETTLE_S
    poll_interval_s: float = POLL_INTERVAL_S
    force_polling: bool = False
    tick_s: float = TICK_S
    reconcile_chunk: int = RECONCILE_CHUNK
    retry_s: float = RETRY_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WatchOptions:
        env = os.environ if environ is None else environ

        def number(var: str, default: float) -> float:
            raw = env.get(var, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise InvalidRequest(f"{var} must be a number of seconds, not {raw!r}") from None
            if not 0 < value <= 3600:
                raise InvalidRequest(f"{var} must be between 0 and 3600 seconds, not {raw!r}")
            return value

        polling = env.get("ISEARCH_WATCH_POLLING", "").strip().lower() in ("1", "true", "yes", "on")
        return cls(
            settle_s=number("ISEARCH_WATCH_SETTLE_S", SETTLE_S),
            poll_interval_s=number("ISEARCH_WATCH_POLL_S", POLL_INTERVAL_S),
            force_polling=polling,
        )


def filesystem_type(path: str) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        parts = left.split()
        if not sep or len(parts) < 5 or not right:
            continue
        mount = parts[4].replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, right.split()[0]
    return best_type


def inotify_watch_limit() -> int | None:
    """``fs.inotify.max_user_watches`` (one watch per folder), None where there is no such limit."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None
