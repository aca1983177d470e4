"""Turn one folder's file-system events into the operations that keep its database in sync.

Pure bookkeeping for the folder's own thread: no threads and no I/O of its own (the debouncer's
``stat`` and the walk of a folder that appears are passed in). An event becomes:

- a file written (created, modified, closed): it waits in the ``Debouncer`` until it settles, then
  is indexed;
- a file renamed or moved within the folder: ``mv`` (its row is relabelled, the vector kept); one
  still settling is simply pending under its new name;
- a temp or hidden name renamed to a wanted one, or a file moved in from outside: indexed once
  settled (the indexer reuses a stored vector when the content is known);
- a file deleted, moved out, or renamed to a name the folder does not want: ``rm``;
- a folder moved within the folder: ``mvdir``; deleted, moved out or hidden: ``rmdir``; created or
  moved in: walked once, its files indexed once settled;
- the watched folder itself deleted or moved: ``RootGone``.

A reconcile (``reconcile``) adds a backlog of files to index and the rows of files it did not
find. ``take_batch`` hands out the next job's changes (``Batch``): every pending operation in
event order, then the settled files topped up from the backlog, then, once the backlog is empty,
the vanished rows, which completes the reconcile.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from watchdog.events import FileSystemEvent

from isearchd.watch.debounce import Debouncer
from isearchd.watch.pathfilter import PathFilter

OpKind = Literal["mv", "rm", "rmdir", "mvdir"]


class Op(NamedTuple):
    """One catalog operation: ``mv`` and ``mvdir`` relabel rows from ``src`` to ``dst``; ``rm``
    and ``rmdir`` delete the rows of ``src`` (or below it) whose file is gone when applied."""

    kind: OpKind
    src: str
    dst: str = ""


@dataclass
class Batch:
    """Changes for one job, applied in this order: ``ops`` (moves and deletes, in event order),
    then ``index`` (settled files and a reconcile chunk), then ``vanished`` (rows of files the
    reconcile did not find)."""

    ops: list[Op] = field(default_factory=list)
    index: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops) + len(self.index) + len(self.vanished)


class RootGone(Exception):
    """The watched folder itself was deleted, moved or unmounted."""


# The files below a folder that appeared (created, or moved in from outside the watched folder).
WalkFn = Callable[[str], Iterable[str]]


class EventTranslator:
    """Events of one watched folder in, batches of operations out. Not thread-safe: one owner.

    ``pending`` may be read from other threads (a length, for ``watch --list``)."""

    def __init__(self, root: str, flt: PathFilter, debouncer: Debouncer, walk: WalkFn) -> None:
        self.root = root
        self.filter = flt
        self.debouncer = debouncer
        self._walk = walk
        self._ops: list[Op] = []
        self._backlog: deque[str] = deque()
        self._vanished: list[str] | None = None

    @property
    def pending(self) -> int:
        """Changes not yet handed out: files settling, operations, the reconcile backlog."""
        return len(self.debouncer) + len(self._backlog) + len(self._ops)

    def next_check_in(self) -> float | None:
        """Seconds until a settling file is due for a check (None: none is settling)."""
        return self.debouncer.next_check_in()

    def reconcile(self, to_index: Iterable[str], vanished: list[str]) -> None:
        """A reconcile found these files new or changed and these rows' files gone: they replace
        any earlier reconcile's; the batch that hands out ``vanished`` completes it."""
        self._backlog = deque(to_index)
        self._vanished = vanished

    def take_batch(self, chunk: int) -> tuple[Batch, bool]:
        """The next job's changes (at most ``chunk`` files to index, unless more settled at once)
        and whether the batch completes the reconcile."""
        batch = Batch(ops=self._ops)
        self._ops = []
        batch.index = self.debouncer.pop_ready()
        room = max(0, chunk - len(batch.index))
        while self._backlog and room:
            batch.index.append(self._backlog.popleft())
            room -= 1
        final = False
        if not self._backlog and self._vanished is not None:
            batch.vanished, self._vanished = self._vanished, None
            final = True
        return batch, final

    def feed(self, event: FileSystemEvent) -> None:
        """One observer event; raises ``RootGone`` when it is the watched folder's own end."""
        src = os.fsdecode(event.src_path)
        dst = os.fsdecode(event.dest_path) if event.dest_path else ""
        if event.is_directory:
            self._folder_event(event, src, dst)
        else:
            self._file_event(event, src, dst)

    def _folder_event(self, event: FileSystemEvent, src: str, dst: str) -> None:
        kind, flt = event.event_type, self.filter
        if kind == "deleted" or (kind == "moved" and not (dst and not flt.skip_dir(dst))):
            if src == self.root:
                raise RootGone(src)
            if flt.contains(src):
                self.debouncer.discard_prefix(src)
                self._ops.append(Op("rmdir", src))
        elif kind == "moved":
            if event.is_synthetic:
                return  # covered by the move of its parent
            if flt.contains(src) and not flt.skip_dir(src):
                self.debouncer.move_prefix(src, dst)
                self._ops.append(Op("mvdir", src, dst))
            else:
                self._touch_tree(dst)  # moved in from outside, or un-hidden
        elif kind == "created" and not event.is_synthetic and not flt.skip_dir(src):
            self._touch_tree(src)

    def _file_event(self, event: FileSystemEvent, src: str, dst: str) -> None:
        kind, flt = event.event_type, self.filter
        if kind in ("created", "modified", "closed"):
            if event.is_synthetic and kind == "created":
                return  # the folder it came with is walked instead
            if flt.wants_file(src):
                self.debouncer.touch(src)
        elif kind == "deleted":
            self.debouncer.discard(src)
            if flt.contains(src):
                self._ops.append(Op("rm", src))
        elif kind == "moved":
            if event.is_synthetic:
                return
            wanted = bool(dst) and flt.wants_file(dst)
            if src in self.debouncer:
                if wanted:
                    self.debouncer.move(src, dst)
                else:
                    self.debouncer.discard(src)
                return
            if wanted and flt.wants_file(src):
                self._ops.append(Op("mv", src, dst))
            elif wanted:
                self.debouncer.touch(dst)  # a temp or hidden name renamed to its final name
            elif flt.contains(src):
                self._ops.append(Op("rm", src))

    def _touch_tree(self, folder: str) -> None:
        for path in self._walk(folder):
            self.debouncer.touch(path)
