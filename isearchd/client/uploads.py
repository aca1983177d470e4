"""What a client sends when the daemon cannot read its files (TCP): the files' bytes.

``add_by_bytes`` scans the paths here, asks the daemon which files it already holds unchanged
(``unchanged``: labels, sizes and times only) and sends the others in ``add`` requests of at most
``ADD_CHUNK_FILES`` files and ``ADD_CHUNK_BYTES`` bytes, adding up the reports and the progress.
``image_ref`` is an image file as a request names it: by path to a local daemon, by bytes to a
remote one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isearchd.errors import InvalidRequest, NotFound
from isearchd.files.scan import absolute, label_for, scan
from isearchd.messages import (
    AddReport,
    AddRequest,
    FileItem,
    FileStat,
    ImageRef,
    Progress,
    Request,
    UnchangedRequest,
)
from isearchd.protocol import ADD_CHUNK_BYTES, ADD_CHUNK_FILES, MAX_LINE_BYTES

# The largest single file a TCP client sends: base64 adds a third, and the line must stay under
# MAX_LINE_BYTES with room for the JSON around it.
MAX_SEND_FILE_BYTES = (MAX_LINE_BYTES // 4) * 3 - 64 * 1024
# Files per "unchanged" request (about 150 bytes of JSON each) before a TCP add uploads anything.
UNCHANGED_CHUNK_FILES = 2000

Call = Callable[..., Any]  # Channel.call: (request, progress=None) -> the op's reply
ProgressFn = Callable[[Progress], None]


def image_ref(path: str | os.PathLike[str], *, remote: bool) -> ImageRef:
    """An image file as a request names it: its absolute path, or (``remote``) its bytes."""
    full = Path(absolute(path))
    if not full.is_file():
        raise NotFound(f"{os.fspath(path)}: no such file")
    if not remote:
        return ImageRef(path=str(full))
    try:
        with full.open("rb") as fh:
            data = fh.read(MAX_SEND_FILE_BYTES + 1)
    except OSError as e:
        raise NotFound(f"{os.fspath(path)}: cannot read file ({e.strerror or e})") from None
    if len(data) > MAX_SEND_FILE_BYTES:
        raise InvalidRequest(f"{os.fspath(path)}: too large to send over TCP")
    return ImageRef(data=data, name=full.name)


class _Upload:
    """One add by bytes: the report so far, and the chunk being filled."""

    def __init__(self, call: Call, db: str, total: int, progress: ProgressFn | None) -> None:
        self.call = call
        self.db = db
        self.total = total
        self.progress = progress
        self.report = AddReport()
        self.chunk: list[FileItem] = []
        self.chunk_bytes = 0

    def fail(self, path: str, reason: str) -> None:
        self.report = self.report.merged(AddReport(failed=[(path, reason)]))

    def put(self, item: FileItem) -> None:
        if self.chunk and self.chunk_bytes + len(item.data) > ADD_CHUNK_BYTES:
            self.send()
        self.chunk.append(item)
        self.chunk_bytes += len(item.data)
        if len(self.chunk) >= ADD_CHUNK_FILES:
            self.send()

    def send(self) -> None:
        if not self.chunk:
            return
        base = self.report

        def shifted(p: Progress) -> None:
            if self.progress is not None:
                self.progress(
                    Progress(
                        done=base.total + p.done,
                        total=self.total,
                        added=base.added + p.added,
                        skipped=base.skipped + p.skipped,
                        failed=len(base.failed) + p.failed,
                    )
                )

        result: AddReport = self.call(AddRequest(db=self.db, files=self.chunk), shifted)
        self.report = self.report.merged(result)
        self.chunk, self.chunk_bytes = [], 0


def add_by_bytes(
    call: Call, db: str, paths: list[str], label_type: str, progress: ProgressFn | None
) -> AddReport:
    """Add ``paths`` (files and folders, recursively) to a daemon that cannot read them."""
    found = scan(paths)
    upload = _Upload(call, db, len(found.files) + len(found.errors), progress)
    for error in found.errors:
        upload.fail(error.path, error.reason)
    unchanged = _unchanged(call, db, found.files, label_type)
    if unchanged:
        upload.report = upload.report.merged(AddReport(skipped=len(unchanged)))
    for path in found.files:
        if path not in unchanged:
            item = _file_item(path, label_type, upload)
            if item is not None:
                upload.put(item)
    upload.send()
    report = upload.report
    if progress is not None and report.total:
        progress(Progress(report.total, upload.total, report.added, report.skipped, len(report.failed)))
    return report


def _file_item(path: str, label_type: str, upload: _Upload) -> FileItem | None:
    try:
        with Path(path).open("rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > MAX_SEND_FILE_BYTES:
                upload.fail(path, f"too large to send over TCP ({st.st_size} bytes)")
                return None
            data = fh.read()
    except OSError as e:
        upload.fail(path, f"cannot read file ({e.strerror or e})")
        return None
    label = label_for(path, label_type)
    return FileItem(label=label, path=path, data=data, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _unchanged(call: Call, db: str, paths: list[str], label_type: str) -> set[str]:
    """The files the daemon already holds with this size and mtime: not worth uploading."""
    stats: dict[str, FileStat] = {}
    for path in paths:
        try:
            st = Path(path).stat()
        except OSError:
            continue  # reported when the upload tries to read it
        stats[path] = FileStat(label=label_for(path, label_type), size=st.st_size, mtime_ns=st.st_mtime_ns)
    unchanged: set[str] = set()
    items = list(stats.items())
    for start in range(0, len(items), UNCHANGED_CHUNK_FILES):
        chunk = items[start : start + UNCHANGED_CHUNK_FILES]
        request: Request = UnchangedRequest(db=db, files=[s for _, s in chunk])
        known = set(call(request))
        unchanged.update(path for path, s in chunk if s.label in known)
    return unchanged
