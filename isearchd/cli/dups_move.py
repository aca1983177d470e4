"""``isearch dups --move-to DIR`` and ``--undo MANIFEST``: set duplicates aside, and put them back.

Pure file operations on this machine. The daemon only says which images are duplicates, which
folders it watches and where its data home is; the watcher then sees the moves like any other
(an image moved out of a watched folder leaves the database; put back, it is found again).

The rules that make it safe:

1. DIR is refused inside a watched folder or the data home: moved files would be indexed and
   grouped again, or mixed with a database's own files.
2. The manifest (each move's source and destination) is written atomically, and its path
   printed, before the first move; an interrupted run can be undone from it.
3. Nothing is overwritten. A name already taken below DIR gets a free one (``photo (2).jpg``, and
   the output says so); a file is moved by linking it under its new name (which fails if that
   name exists) and then unlinking the old name; across file systems the copy is created
   exclusively and checked before the old name goes. ``--undo`` refuses a file whose old place
   is taken again.
4. Nothing is deleted: every file ends up at its destination or stays where it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from isearchd.cli.output import EXIT_ERROR, confirm, plural
from isearchd.errors import InvalidRequest, ISearchError, NotFound
from isearchd.files.names import json_line, printable, shown
from isearchd.messages import DupGroup

MANIFEST_FORMAT = 1
MANIFEST_PREFIX = "isearch-dups-"
# Errors of os.link that mean "this file system cannot link here": move by exclusive copy instead.
NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Move:
    source: str
    destination: str
    renamed: bool = False  # the natural name below DIR was taken: a free one was picked


# -- planning (no file is touched) ----------------------------------------------------------------


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it (both absolute, symbolic links resolved)."""
    return os.path.commonpath([path, folder]) == folder


def check_target(move_to: str, watched: list[str], home: str) -> str:
    """``move_to`` made absolute (links resolved); ``InvalidRequest`` when it is inside a watched
    folder or the data home."""
    target = os.path.realpath(Path(move_to).expanduser())
    for folder in watched:
        if inside(target, os.path.realpath(folder)):
            raise InvalidRequest(
                f"{shown(move_to)} is inside the watched folder {shown(folder)}: the moved images would "
                "be indexed and grouped again; choose a folder outside every watched folder"
            )
    if inside(target, os.path.realpath(home)):
        raise InvalidRequest(
            f"{shown(move_to)} is inside the data home {shown(home)}, where the databases live; "
            "choose another folder"
        )
    return target


def relative_place(path: str, watched: list[str]) -> str:
    """Where ``path`` goes below DIR: relative to the deepest watched folder holding it, else
    its absolute path's parts."""
    holders = [f for f in watched if inside(path, f) and path != f]
    if holders:
        return os.path.relpath(path, max(holders, key=len))
    return path.lstrip(os.sep)


def plan(paths: list[str], target: str, watched: list[str], taken: set[str]) -> list[Move]:
    """One move per path into ``target``; names already on disk or planned get a free one."""
    moves = []
    for path in paths:
        natural = Path(target, relative_place(path, watched))
        dest = str(natural)
        n = 1
        while dest in taken or os.path.lexists(dest):
            n += 1
            dest = str(natural.with_stem(f"{natural.stem} ({n})"))
        taken.add(dest)
        moves.append(Move(path, dest, renamed=dest != str(natural)))
    return moves


# -- the manifest ---------------------------------------------------------------------------------


def manifest_path(target: str) -> str:
    """A new manifest name in ``target``: ``isearch-dups-YYYYmmdd-HHMMSS.json`` (or ``-2``...)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(target, f"{MANIFEST_PREFIX}{stamp}.json")
    n = 1
    while os.path.lexists(path):
        n += 1
        path = Path(target, f"{MANIFEST_PREFIX}{stamp}-{n}.json")
    return str(path)


def write_manifest(path: str, db: str, moves: list[Move]) -> None:
    """Write the manifest atomically (a file beside it, synced, then renamed over it)."""
    doc = {
        "format": MANIFEST_FORMAT,
        "db": db,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "moves": [{"source": m.source, "destination": m.destination} for m in moves],
    }
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json_line(doc) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(final)


def read_manifest(path: str) -> list[Move]:
    try:
        with Path(path).open(encoding="utf-8") as f:
            doc = json.load(f)
        return [Move(str(m["source"]), str(m["destination"])) for m in doc["moves"]]
    except FileNotFoundError:
        raise NotFound(f"{shown(path)}: no such manifest") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidRequest(
            f"{shown(path)} is not a manifest written by `isearch dups --move-to` ({e})"
        ) from None


# -- moving without overwriting -------------------------------------------------------------------


def move_file(source: str, destination: str) -> None:
    """Move one file; ``FileExistsError`` (nothing changed) when ``destination`` exists."""
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in NO_LINK:
            raise
        _copy_exclusive(source, destination)
    Path(source).unlink()


def _copy_exclusive(source: str, destination: str) -> None:
    """Copy to a new file (never an existing one), synced and checked; a partial copy is removed."""
    with Path(source).open("rb") as src, Path(destination).open("xb") as dst:
        try:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
            shutil.copystat(source, destination)
            if os.fstat(src.fileno()).st_size != os.fstat(dst.fileno()).st_size:
                raise OSError(errno.EIO, "the copy's size differs from the original's", destination)
        except BaseException:
            Path(destination).unlink()  # our own partial copy; the original is untouched
            raise


# -- the command ----------------------------------------------------------------------------------


def move_duplicates(
    groups: list[DupGroup],
    move_to: str,
    *,
    db: str,
    watched: list[str],
    home: str,
    dry_run: bool,
    yes: bool,
) -> None:
    """Move every image but the kept one of each group below ``move_to`` (see the module docstring)."""
    target = check_target(move_to, watched, home)
    paths: list[str] = []
    gone: list[str] = []
    for group in groups:
        for img in group.images[1:]:
            (paths if os.path.lexists(img.path) else gone).append(img.path)
    for path in gone:
        typer.echo(f"not on disk, left out: {shown(path)}")
    manifest = manifest_path(target)
    moves = plan(paths, target, watched, {manifest})
    if not moves:
        typer.echo("Nothing to move.")
        return
    for m in moves:
        note = "   (name taken below the folder: renamed)" if m.renamed else ""
        typer.echo(f"{'would move' if dry_run else 'move'} {shown(m.source)} -> {shown(m.destination)}{note}")
    count = f"{len(moves)} {plural(len(moves), 'image')}"
    if dry_run:
        typer.echo(f"Dry run: {count} would be moved to {shown(target)}; nothing was moved.")
        return
    if not yes:
        question = (
            f"Move {count} to {shown(target)}? Nothing is deleted; `isearch dups --undo` puts them back."
        )
        refusal = ISearchError("refusing to move images without confirmation: no answer was given; pass -y")
        if not confirm(question, refusal):
            typer.echo("Nothing was moved.")
            raise typer.Exit(EXIT_ERROR)
    Path(target).mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, db, moves)
    typer.echo(f"Manifest: {shown(manifest)}")
    done, failed = [], []
    for m in moves:
        try:
            move_file(m.source, m.destination)
            done.append(m)
        except OSError as e:
            failed.append(m)
            why = "the destination appeared meanwhile" if isinstance(e, FileExistsError) else e.strerror
            _warn(f"not moved: {shown(m.source)}: {printable(str(why))}")
    write_manifest(manifest, db, done)  # what was done: --undo then has nothing to skip
    typer.echo(
        f"Moved {len(done)} {plural(len(done), 'image')} to {shown(target)}; {len(failed)} not moved. "
        f"Undo with: isearch dups --undo {shown(manifest)}"
    )
    if failed:
        raise typer.Exit(EXIT_ERROR)


def undo(manifest: str) -> None:
    """Put back every file a manifest moved; never over a file that now exists at its old place."""
    moves = read_manifest(str(Path(manifest).expanduser().absolute()))
    back, in_place, refused = 0, 0, 0
    for m in reversed(moves):
        if os.path.lexists(m.source):
            if not os.path.lexists(m.destination):
                in_place += 1  # already back (an earlier --undo)
                continue
            _warn(
                f"not put back: {shown(m.source)} exists again; the moved file stays at "
                f"{shown(m.destination)}"
            )
            refused += 1
            continue
        if not os.path.lexists(m.destination):
            _warn(f"not put back: {shown(m.destination)} is gone")
            refused += 1
            continue
        try:
            move_file(m.destination, m.source)
        except OSError as e:
            _warn(f"not put back: {shown(m.source)}: {printable(str(e.strerror))}")
            refused += 1
            continue
        back += 1
    already = f"{in_place} already in place; " if in_place else ""
    typer.echo(f"Put back {back} {plural(back, 'image')}; {already}{refused} could not be.")
    if refused:
        raise typer.Exit(EXIT_ERROR)


def _warn(line: str) -> None:
    typer.secho(line, err=True, fg=typer.colors.RED)
