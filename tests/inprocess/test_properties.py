"""Property-based tests (hypothesis) of what users control: file names and file contents.

Folders of random names (any bytes a file system allows, unicode, newlines) and random contents
(valid images in several formats, truncated ones, random bytes, empty files, folders named like
images, FIFOs, dangling links) go through the engine and the protocol (in-process), by ``add`` and
by ``watch``:

- every decodable image is indexed, and found by its own image at 100 % (ties between files of
  identical content are fine);
- every other file is named once, with a reason;
- the daemon stays healthy.

The examples are bounded and derandomized so CI runs the same short set every time.
"""

from __future__ import annotations

import io
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness import InProcessDaemon
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from shapes import COLOURS, SHAPES, render

from isearchd.client import Client
from isearchd.errors import BadImage
from isearchd.files.images import load_image

CI_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".JPG": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF",
           ".bmp": "BMP", ".tiff": "TIFF", ".heic": "HEIF", ".AVIF": "AVIF"}  # fmt: skip
KINDS = ("image", "image", "image", "truncated", "garbage", "empty", "dir", "fifo", "dangling")
_dbs = itertools.count()


@dataclass(frozen=True)
class Entry:
    name: bytes
    kind: str
    seed: int


def _stem() -> st.SearchStrategy[bytes]:
    # any bytes but NUL and '/'; not hidden (hidden files are skipped on purpose); not a lock file
    return (
        st.binary(min_size=1, max_size=60)
        .map(lambda b: b.replace(b"\x00", b"_").replace(b"/", b"_"))
        .filter(lambda b: not b.startswith(b".") and not b.startswith(b"~$"))
    )


ENTRIES = st.lists(
    st.builds(
        lambda stem, ext, kind, seed: Entry(stem + ext.encode(), kind, seed),
        _stem(),
        st.sampled_from(sorted(FORMATS)),
        st.sampled_from(KINDS),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=7,
    unique_by=lambda e: e.name.lower(),
)


def image_bytes(entry: Entry) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()  # to write HEIC here (the daemon registers its own)
    colour = list(COLOURS)[entry.seed % len(COLOURS)]
    shape = SHAPES[entry.seed % len(SHAPES)]
    img = render(colour, shape, seed=entry.seed)
    fmt = FORMATS[os.fsdecode(entry.name)[os.fsdecode(entry.name).rindex(".") :]]
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def build(folder: Path, entries: list[Entry]) -> tuple[set[str], set[str]]:
    """Write ``entries`` below ``folder``; returns (decodable image paths, paths that must fail)."""
    base = os.fsencode(folder)
    os.makedirs(base)
    good: set[str] = set()
    bad: set[str] = set()
    for e in entries:
        path = base + b"/" + e.name
        if e.kind == "dir":
            os.mkdir(path)  # walked into, neither indexed nor failed
            continue
        if e.kind == "fifo":
            os.mkfifo(path)
        elif e.kind == "dangling":
            os.symlink(base + b"/nowhere-" + str(e.seed).encode(), path)
        else:
            data = image_bytes(e)
            if e.kind == "truncated":
                data = data[: max(1, len(data) // 3)]
            elif e.kind == "garbage":
                data = os.urandom(200 + e.seed % 2000)
            elif e.kind == "empty":
                data = b""
            with open(path, "wb") as fh:
                fh.write(data)
        (good if e.kind != "fifo" and e.kind != "dangling" and decodable(path) else bad).add(
            os.fsdecode(path)
        )
    return good, bad


def decodable(path: bytes) -> bool:
    """The oracle: does the decoder itself accept these bytes? (a truncated GIF may still decode)"""
    with open(path, "rb") as fh:
        data = fh.read()
    if not data:
        return False
    try:
        load_image(data)
    except BadImage:
        return False
    return True


def assert_found_by_own_image(c: Client, good: set[str]) -> None:
    for path in good:
        top = [p for p, sim in c.search(path, num=len(good) + 1) if sim == 100.0]
        assert path in top, (path, top)


@CI_SETTINGS
@given(entries=ENTRIES)
def test_add_indexes_exactly_the_decodable_images(daemon: InProcessDaemon, tmp_path_factory, entries) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("prop") / "photos"
    good, bad = build(folder, entries)
    event(f"{len(good)} images, {len(bad)} bad files")
    with daemon.client(f"prop{next(_dbs)}") as c:
        added = c.add_images([str(folder)])
        report = c.last_add
        assert added == len(good)
        failed = [p for p, _ in report.failed]
        assert sorted(failed) == sorted(bad)  # each named once
        assert all(reason.strip() and "\n" not in reason for _, reason in report.failed)
        if good:
            assert c.get_db_info()["size"] == len(good)
            assert_found_by_own_image(c, good)
        assert c.status().pid > 0


@settings(CI_SETTINGS, max_examples=8)
@given(entries=ENTRIES)
def test_watch_indexes_exactly_the_decodable_images(
    daemon: InProcessDaemon, tmp_path_factory, entries
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("propw") / "photos"
    good, bad = build(folder, entries)
    with daemon.client(f"propw{next(_dbs)}") as c:
        c.watch([str(folder)])
        deadline = time.monotonic() + 60
        while True:
            state = c.watch_list(all_dbs=False)[0]
            if state.state == "watching" and state.pending == 0:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state.images == len(good)
        listed = [e.path for e in c.watch_errors(all_dbs=False)]
        assert sorted(listed) == sorted(bad)
        if good:
            assert_found_by_own_image(c, good)
        c.unwatch(str(folder), purge=True)
