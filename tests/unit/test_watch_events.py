"""The event translator on its own: synthetic watchdog events in, batches of operations out.

No observer, no thread, no daemon: a fake clock and ``stat`` drive the debouncer, and a fake walk
stands for the folders that appear.
"""

from __future__ import annotations

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from isearchd.watch.debounce import Debouncer
from isearchd.watch.events import Batch, EventTranslator, Op, RootGone
from isearchd.watch.pathfilter import PathFilter

ROOT = "/w"
SETTLE = 1.0


class Disk:
    """What the translator may learn of the disk: file signatures, the time, and folder walks."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sigs: dict[str, tuple[int, int]] = {}
        self.trees: dict[str, list[str]] = {}
        self.walked: list[str] = []

    def stat(self, path: str) -> tuple[int, int] | None:
        return self.sigs.get(path)

    def clock(self) -> float:
        return self.now

    def walk(self, folder: str) -> list[str]:
        self.walked.append(folder)
        return self.trees.get(folder, [])

    def write(self, *paths: str) -> None:
        for p in paths:
            self.sigs[p] = (1, 1)


@pytest.fixture
def disk() -> Disk:
    return Disk()


def translator(disk: Disk, exclude: tuple[str, ...] = ()) -> EventTranslator:
    debouncer = Debouncer(SETTLE, stat=disk.stat, clock=disk.clock)
    return EventTranslator(ROOT, PathFilter(ROOT, exclude), debouncer, disk.walk)


def settled(t: EventTranslator, disk: Disk) -> Batch:
    """The next batch once everything pending has settled."""
    disk.now += SETTLE
    batch, _ = t.take_batch(256)
    return batch


# -- files ----------------------------------------------------------------------------------------


def test_a_written_file_is_indexed_once_after_it_settles(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/a.jpg")
    for event in (FileCreatedEvent("/w/a.jpg"), FileModifiedEvent("/w/a.jpg"), FileClosedEvent("/w/a.jpg")):
        t.feed(event)
    assert t.pending == 1 and t.next_check_in() == SETTLE
    batch, final = t.take_batch(256)
    assert len(batch) == 0 and not final  # not settled yet
    assert settled(t, disk) == Batch(index=["/w/a.jpg"])
    assert t.pending == 0 and len(settled(t, disk)) == 0


def test_unwanted_files_are_ignored(disk: Disk) -> None:
    t = translator(disk, exclude=("**/raw/**",))
    for path in ("/w/notes.txt", "/w/.hidden.jpg", "/w/a.jpg.part", "/w/raw/a.jpg", "/w/.thumbs/a.jpg"):
        disk.write(path)
        t.feed(FileCreatedEvent(path))
    assert t.pending == 0


def test_bytes_paths_are_decoded(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/café.jpg")
    t.feed(FileCreatedEvent("/w/café.jpg".encode()))
    assert settled(t, disk).index == ["/w/café.jpg"]


def test_a_rename_inside_the_folder_relabels_the_row(disk: Disk) -> None:
    t = translator(disk)
    t.feed(FileMovedEvent("/w/a.jpg", "/w/sub/b.jpg"))
    assert t.pending == 1
    assert settled(t, disk) == Batch(ops=[Op("mv", "/w/a.jpg", "/w/sub/b.jpg")])


def test_a_file_renamed_while_settling_is_indexed_under_its_new_name(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/a.jpg", "/w/b.jpg")
    t.feed(FileCreatedEvent("/w/a.jpg"))
    t.feed(FileMovedEvent("/w/a.jpg", "/w/b.jpg"))
    assert settled(t, disk) == Batch(index=["/w/b.jpg"])  # no row to move: it was never indexed
    # renamed to a name the folder does not want while settling: dropped, nothing to delete
    disk.write("/w/c.jpg")
    t.feed(FileCreatedEvent("/w/c.jpg"))
    t.feed(FileMovedEvent("/w/c.jpg", "/w/c.txt"))
    assert t.pending == 0


def test_a_temp_name_renamed_to_its_final_name_is_indexed(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/photo.jpg", "/w/photo2.jpg")
    t.feed(FileCreatedEvent("/w/photo.jpg.part"))  # ignored: a partial download
    t.feed(FileModifiedEvent("/w/photo.jpg.part"))
    t.feed(FileMovedEvent("/w/photo.jpg.part", "/w/photo.jpg"))
    t.feed(FileMovedEvent("/w/.photo2.jpg.Xa81b", "/w/photo2.jpg"))  # rsync's hidden temp name
    assert settled(t, disk) == Batch(index=["/w/photo.jpg", "/w/photo2.jpg"])


def test_moves_into_and_out_of_the_folder(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/in.jpg")
    t.feed(FileMovedEvent("/elsewhere/in.jpg", "/w/in.jpg"))  # in: indexed (its vector reused)
    t.feed(FileMovedEvent("/w/out.jpg", "/elsewhere/out.jpg"))  # out: its row goes
    t.feed(FileMovedEvent("/w/hide.jpg", "/w/.hide.jpg"))  # hidden: as good as gone
    t.feed(FileMovedEvent("/w/x.jpg", "/w/x.jpg.bak"))  # no longer an image name
    assert settled(t, disk) == Batch(
        ops=[Op("rm", "/w/out.jpg"), Op("rm", "/w/hide.jpg"), Op("rm", "/w/x.jpg")],
        index=["/w/in.jpg"],
    )


def test_deletes(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/new.jpg")
    t.feed(FileCreatedEvent("/w/new.jpg"))
    t.feed(FileDeletedEvent("/w/new.jpg"))  # gone before it settled: dropped, and its row (if any) goes
    t.feed(FileDeletedEvent("/w/old.jpg"))
    t.feed(FileDeletedEvent("/w/notes.txt"))  # any row below the folder: the apply step checks labels
    assert t.pending == 3
    assert settled(t, disk) == Batch(
        ops=[Op("rm", "/w/new.jpg"), Op("rm", "/w/old.jpg"), Op("rm", "/w/notes.txt")]
    )


def test_synthetic_file_events_are_left_to_their_folder(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/d/a.jpg")
    t.feed(FileCreatedEvent("/w/d/a.jpg", is_synthetic=True))
    t.feed(FileMovedEvent("/w/d/a.jpg", "/w/e/a.jpg", is_synthetic=True))
    assert t.pending == 0


# -- folders --------------------------------------------------------------------------------------


def test_a_folder_moved_inside_is_one_operation_and_its_settling_files_follow(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/d/new.jpg", "/w/e/new.jpg")
    t.feed(FileCreatedEvent("/w/d/new.jpg"))
    t.feed(DirMovedEvent("/w/d", "/w/e"))
    t.feed(DirMovedEvent("/w/d/sub", "/w/e/sub", is_synthetic=True))  # covered by its parent's move
    t.feed(FileMovedEvent("/w/d/old.jpg", "/w/e/old.jpg", is_synthetic=True))
    assert settled(t, disk) == Batch(ops=[Op("mvdir", "/w/d", "/w/e")], index=["/w/e/new.jpg"])
    assert disk.walked == []


def test_a_folder_deleted_moved_out_or_hidden_is_removed(disk: Disk) -> None:
    t = translator(disk)
    disk.write("/w/d/a.jpg")
    t.feed(FileCreatedEvent("/w/d/a.jpg"))
    t.feed(DirDeletedEvent("/w/d"))
    t.feed(DirMovedEvent("/w/e", "/elsewhere/e"))
    t.feed(DirMovedEvent("/w/f", "/w/.trash"))
    assert t.pending == 3  # a.jpg was dropped with its folder
    assert settled(t, disk) == Batch(ops=[Op("rmdir", "/w/d"), Op("rmdir", "/w/e"), Op("rmdir", "/w/f")])


def test_a_folder_moved_to_an_excluded_name_is_removed(disk: Disk) -> None:
    t = translator(disk, exclude=("raw",))
    t.feed(DirMovedEvent("/w/g", "/w/raw"))
    assert settled(t, disk) == Batch(ops=[Op("rmdir", "/w/g")])


def test_a_folder_created_or_moved_in_is_walked_once(disk: Disk) -> None:
    t = translator(disk)
    disk.trees = {"/w/new": ["/w/new/a.jpg", "/w/new/s/b.jpg"], "/w/in": ["/w/in/c.jpg"]}
    disk.write("/w/new/a.jpg", "/w/new/s/b.jpg", "/w/in/c.jpg")
    t.feed(DirCreatedEvent("/w/new"))
    t.feed(DirCreatedEvent("/w/new/s", is_synthetic=True))  # inside the walked folder
    t.feed(DirMovedEvent("/elsewhere/in", "/w/in"))
    t.feed(DirCreatedEvent("/w/.cache"))  # hidden: not walked
    assert disk.walked == ["/w/new", "/w/in"]
    assert settled(t, disk) == Batch(index=["/w/in/c.jpg", "/w/new/a.jpg", "/w/new/s/b.jpg"])


def test_an_unhidden_folder_is_walked(disk: Disk) -> None:
    t = translator(disk)
    disk.trees = {"/w/shown": ["/w/shown/a.jpg"]}
    disk.write("/w/shown/a.jpg")
    t.feed(DirMovedEvent("/w/.hidden", "/w/shown"))
    assert disk.walked == ["/w/shown"]
    assert settled(t, disk) == Batch(index=["/w/shown/a.jpg"])


@pytest.mark.parametrize(
    "event", [DirDeletedEvent(ROOT), DirMovedEvent(ROOT, "/elsewhere/w")], ids=["deleted", "moved"]
)
def test_the_folder_itself_going_away_raises_root_gone(disk: Disk, event: FileSystemEvent) -> None:
    t = translator(disk)
    with pytest.raises(RootGone):
        t.feed(event)


# -- batches --------------------------------------------------------------------------------------


def test_batch_order_ops_then_settled_files_then_backlog_then_vanished(disk: Disk) -> None:
    t = translator(disk)
    t.reconcile(["/w/b1.jpg", "/w/b2.jpg", "/w/b3.jpg", "/w/b4.jpg"], ["/w/gone.jpg"])
    disk.write("/w/live.jpg")
    t.feed(FileCreatedEvent("/w/live.jpg"))
    t.feed(FileMovedEvent("/w/x.jpg", "/w/y.jpg"))
    t.feed(FileDeletedEvent("/w/z.jpg"))
    t.feed(DirMovedEvent("/w/d", "/w/e"))
    assert t.pending == 4 + 1 + 3
    disk.now += SETTLE
    first, final = t.take_batch(2)
    assert first == Batch(
        ops=[Op("mv", "/w/x.jpg", "/w/y.jpg"), Op("rm", "/w/z.jpg"), Op("mvdir", "/w/d", "/w/e")],
        index=["/w/live.jpg", "/w/b1.jpg"],  # settled files first, topped up to the chunk
    )
    assert not final
    second, final = t.take_batch(2)
    assert second == Batch(index=["/w/b2.jpg", "/w/b3.jpg"]) and not final
    third, final = t.take_batch(2)
    assert third == Batch(index=["/w/b4.jpg"], vanished=["/w/gone.jpg"]) and final
    fourth, final = t.take_batch(2)
    assert len(fourth) == 0 and not final and t.pending == 0


def test_settled_files_are_not_held_back_by_the_chunk(disk: Disk) -> None:
    t = translator(disk)
    t.reconcile(["/w/backlog.jpg"], [])
    for name in ("a", "b", "c"):
        disk.write(f"/w/{name}.jpg")
        t.feed(FileCreatedEvent(f"/w/{name}.jpg"))
    disk.now += SETTLE
    batch, final = t.take_batch(2)
    assert batch.index == ["/w/a.jpg", "/w/b.jpg", "/w/c.jpg"] and not final
    batch, final = t.take_batch(2)
    assert batch == Batch(index=["/w/backlog.jpg"]) and final


def test_a_reconcile_with_nothing_to_do_completes_with_an_empty_batch(disk: Disk) -> None:
    t = translator(disk)
    t.reconcile([], [])
    batch, final = t.take_batch(256)
    assert len(batch) == 0 and final
    assert t.take_batch(256) == (Batch(), False)


def test_a_new_reconcile_replaces_the_old_backlog(disk: Disk) -> None:
    t = translator(disk)
    t.reconcile(["/w/a.jpg", "/w/b.jpg"], ["/w/old-gone.jpg"])
    t.take_batch(1)
    t.reconcile(["/w/c.jpg"], ["/w/gone.jpg"])
    assert t.take_batch(256) == (Batch(index=["/w/c.jpg"], vanished=["/w/gone.jpg"]), True)
