"""Apply one watched folder's batch of changes to its database (runs in the indexing worker).

In the batch's order (``isearchd.watch.events.Batch``):

1. operations, in event order: runs of file moves are one ``rename`` (vectors kept, nothing
   decoded; the new names are indexed too, a ``stat`` each, so a file changed on the way is
   re-embedded), runs of deletes one ``delete_labels``; a folder moved is one ``move_prefix``, a
   folder deleted one ``delete_prefix`` (or, when a folder of that name is back, the rows of its
   files that are gone);
2. the files to index, through the host's ``index_paths`` (those the folder still wants);
3. the reconcile's vanished rows.

Deletions are checked against the disk here, when they are applied, so a file deleted and
re-created meanwhile is not lost. The result (``Applied``) says what was done; it is filled as the
steps commit, so what committed before an error is still counted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING

from isearchd.store import Move
from isearchd.watch.events import Batch, Op
from isearchd.watch.options import MAX_ERRORS_SHOWN
from isearchd.watch.pathfilter import PathFilter

if TYPE_CHECKING:
    from isearchd.reports import AddReport
    from isearchd.store import ImageDatabase

log = logging.getLogger(__name__)

# The host's ``index_paths``: index files labelled by their path, stopping early on ``cancel``.
IndexPaths = Callable[["ImageDatabase", Sequence[str], threading.Event | None], "AddReport"]


@dataclass
class Applied:
    """What applying a batch did. ``tried``: files handed to the indexer; ``failed``: those it
    could not index, with the reason; ``gone``: names that no longer exist (deleted, or moved
    away from); ``gone_folders``: folders deleted or moved, every name below them gone."""

    moved: int = 0
    removed: int = 0
    indexed: int = 0
    tried: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    gone_folders: list[str] = field(default_factory=list)


def apply_batch(
    db: ImageDatabase,
    batch: Batch,
    flt: PathFilter,
    index_paths: IndexPaths,
    cancel: threading.Event | None = None,
    *,
    into: Applied | None = None,
) -> Applied:
    """Apply ``batch`` to ``db``; ``into`` (returned) collects the outcome as each step commits."""
    done = Applied() if into is None else into
    index: list[str] = []
    for kind, run in groupby(batch.ops, key=lambda op: op.kind):
        ops = list(run)
        if kind == "mv":
            done.moved += db.rename([Move(op.src, op.dst) for op in ops])
            done.gone.extend(op.src for op in ops)
            index.extend(op.dst for op in ops)  # a stat each: re-embeds only if the content changed
        elif kind == "rm":
            gone = [op.src for op in ops if not os.path.lexists(op.src)]
            done.gone.extend(gone)
            done.removed += db.delete_labels(gone)
        else:
            for op in ops:
                _apply_folder_op(db, op, done)
    index.extend(batch.index)
    paths = [p for p in dict.fromkeys(index) if flt.wants_file(p)]
    if paths:
        report = index_paths(db, paths, cancel)
        done.indexed += report.added
        done.tried.extend(paths)
        done.failed.extend(report.failed)
        for path, reason in report.failed[:MAX_ERRORS_SHOWN]:
            log.info("watch %s: not indexed: %r: %s", flt.root, path, reason)
    if batch.vanished:
        gone = [p for p in batch.vanished if not os.path.lexists(p)]
        done.gone.extend(gone)
        done.removed += db.delete_labels(gone)
    return done


def _apply_folder_op(db: ImageDatabase, op: Op, done: Applied) -> None:
    done.gone_folders.append(op.src)
    if op.kind == "mvdir":
        done.moved += db.move_prefix(op.src, op.dst)
    elif not os.path.lexists(op.src):
        done.removed += db.delete_prefix(op.src)
    else:  # a folder of that name is back: only the rows of its files that are gone
        gone = [r.label for r in db.records(op.src) if r.label == r.path and not os.path.lexists(r.path)]
        done.removed += db.delete_labels(gone)
