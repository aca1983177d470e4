"""Every photo a user has: any file name, and one bad file never stops the rest.

Through a real daemon on a Unix socket (the tiny test model), the Python Client and the real
`isearch` command line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemons import DaemonProcess, short_tmpdir
from shapes import COLOURS, SHAPES, render

from isearchd.client import Client

# Names a Linux file system allows and tools trip over (bytes: not all of them are UTF-8).
ODD_NAMES = [
    b"caf\xe9_latin1.jpg",
    b"\xff\xfe\xfd.png",
    "ünïcødé 日本.jpg".encode(),
    b"new\nline.jpg",
    b"tab\there.jpg",
    b"-leading-dash.jpg",
    b"back\\slash 'quote'.jpg",
    b"x" * 251 + b".jpg",  # 255 bytes: the longest name
]


def write_image(path: bytes, index: int, colour: str | None = None) -> None:
    colour = colour or list(COLOURS)[index % len(COLOURS)]
    shape = SHAPES[index % len(SHAPES)]
    img = render(colour, shape, seed=index)
    with open(path, "wb") as fh:
        img.save(fh, format="PNG" if path.lower().endswith(b".png") else "JPEG", quality=95)


def make_folder(root: Path, names: list[bytes], colour: str | None = None) -> list[str]:
    """Images under ``root`` with these names; returns their paths as ``os.fsdecode`` strings."""
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        path = base + b"/" + name
        write_image(path, i, colour)
        out.append(os.fsdecode(path))
    return out


def cli(
    daemon: DaemonProcess, *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "isearchd.cli", *args, "-B", daemon.bind],
        env=env or daemon.env(),
        capture_output=True,
        timeout=120,
    )


def test_add_and_search_any_file_name(daemon: DaemonProcess, tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "photos", [b"plain.jpg", *ODD_NAMES])
    with daemon.client("odd") as c:
        assert c.add_images([str(tmp_path / "photos")]) == len(paths)
        assert c.last_add.failed == []
        for path in paths:
            found, sim = c.search(path, num=1)[0]
            assert found == path and sim == 100.0
            assert os.fsencode(found) == os.fsencode(path)
            with open(found, "rb") as fh:  # the str a client gets opens the file
                assert fh.read(2) in (b"\xff\xd8", b"\x89P")
        # adding again skips every one of them (the stored names match the files)
        c.add_images([str(tmp_path / "photos")])
        assert (c.last_add.added, c.last_add.skipped) == (0, len(paths))


def test_deep_paths_are_indexed(daemon: DaemonProcess, tmp_path: Path) -> None:
    """A path near PATH_MAX (4096 bytes) below a folder whose name is not UTF-8."""
    deep = os.fsencode(tmp_path) + b"/d\xe9ep"
    while len(deep) < 3900:  # components of up to 200 bytes, the path ending 3900-3990 bytes long
        deep += b"/" + b"s" * min(200, 3990 - len(deep) - 1)
    os.makedirs(deep)
    write_image(deep + b"/p.jpg", 3)
    with daemon.client("deep") as c:
        assert c.add_images([os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9ep")]) == 1
        ((found, sim),) = c.search(os.fsdecode(deep + b"/p.jpg"), num=1)
        assert os.fsencode(found) == deep + b"/p.jpg" and sim == 100.0


def test_cli_shows_odd_names_on_one_line_and_json_round_trips(daemon: DaemonProcess, tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "p\xe9", [b"plain.jpg", *ODD_NAMES], colour="red")
    added = cli(daemon, "add", "-d", "oddcli", os.fsencode(tmp_path / "p\xe9"))
    assert added.returncode == 0, added.stderr
    assert f"Added {len(paths)} images".encode() in added.stdout

    text = cli(daemon, "-d", "oddcli", "-n", str(len(paths)), "a red circle")
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode("utf-8")
    found = int(re.search(r"Found (\d+) similar", out).group(1))  # type: ignore[union-attr]
    results = [line for line in out.splitlines() if re.match(r"^ ?\d+\. ", line)]
    assert len(results) == found >= 5, out  # a newline in a name never splits a line
    shown = [line.split(". ", 1)[1].rsplit("\t", 1)[0] for line in results]
    assert any("\\n" in form and form.startswith("$'") for form in shown), out
    # every shown form, pasted into bash, names the file
    for form in shown:
        word = form if form.startswith("$'") else shlex.quote(form)
        printed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
        assert os.fsdecode(printed) in paths

    as_json = cli(daemon, "-d", "oddcli", "--json", "-n", str(len(paths)), "a red circle")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout.decode("utf-8"))  # valid UTF-8 JSON
    assert len(doc["results"]) == found
    assert {r["path"] for r in doc["results"]} <= set(paths)
    assert any("\n" in r["path"] for r in doc["results"])


def test_open_passes_the_exact_bytes_to_the_opener(daemon: DaemonProcess, tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "o", [b"caf\xe9 new\nline.jpg"])
    with daemon.client("oddopen") as c:
        c.add_images(paths)
    record = tmp_path / "opened"
    opener = tmp_path / "opener.py"
    opener.write_text(
        f"import os, sys\nwith open({str(record)!r}, 'ab') as f: f.write(os.fsencode(sys.argv[1]) + b'\\0')\n"
    )
    env = {**daemon.env(), "ISEARCH_OPENER": f"{sys.executable} {opener}"}
    proc = cli(daemon, "-d", "oddopen", "-n", "1", "-o", paths[0], env=env)
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 10
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.read_bytes() == os.fsencode(paths[0]) + b"\0"


# -- one bad file never stops the rest ---------------------------------------------------------


def bad_folder(root: Path) -> tuple[list[str], dict[str, str]]:
    """Good images beside files that cannot be indexed; returns (good paths, bad path -> reason word)."""
    good = make_folder(root, [b"good1.jpg", b"g\xe9od2.png", b"good3.jpg"])
    bad: dict[str, str] = {}

    def put(name: str, data: bytes, word: str) -> None:
        (root / name).write_bytes(data)
        bad[str(root / name)] = word

    put("empty.jpg", b"", "empty")
    put("garbage.jpg", os.urandom(3000), "")
    put("truncated.jpg", (root / "good1.jpg").read_bytes()[:400], "")
    put("text.png", b"this is not a picture\n" * 20, "")
    os.mkfifo(root / "fifo.jpg")
    bad[str(root / "fifo.jpg")] = ""
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    bad[str(root / "dangling.jpg")] = ""
    return good, bad


def test_add_reports_each_bad_file_and_indexes_the_rest(daemon: DaemonProcess, tmp_path: Path) -> None:
    good, bad = bad_folder(tmp_path / "mixed")
    (tmp_path / "mixed" / "dir.jpg").mkdir()  # a folder named like an image is walked, not failed
    proc = cli(daemon, "add", "-d", "mixed", str(tmp_path / "mixed"))
    assert proc.returncode == 1  # honest: some files failed
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert f"Added {len(good)} images" in out
    failed_lines = [line for line in err.splitlines() if line.startswith("failed: ")]
    for path in bad:
        if not path.endswith("fifo.jpg"):  # a FIFO is no regular file: the walk reports it or skips it
            assert any(path in line for line in failed_lines), (path, err)
    assert f"; {len(failed_lines)} failed" in out
    with daemon.client("mixed") as c:
        assert c.get_db_info()["size"] == len(good)
        for path in good:
            assert c.search(path, num=1)[0][0] == path
        assert c.status().pid > 0  # the daemon is healthy


def top(c: Client, path: str) -> list[str]:
    """The results at 100 % for an image query (the tiny model ties look-alike shapes)."""
    return [p for p, sim in c.search(path, num=5) if sim == 100.0]


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_watch_scan_finishes_past_bad_files_and_lists_them(daemon: DaemonProcess, tmp_path: Path) -> None:
    root = tmp_path / "w"
    good, bad = bad_folder(root)
    odd = make_folder(root / "sub", ODD_NAMES[:4])
    with daemon.client("watchbad") as c:
        c.watch([str(root)])

        def scanned() -> bool:
            f = c.watch_list(all_dbs=False)[0]
            return f.state == "watching" and f.pending == 0

        wait_for(scanned)
        folder = c.watch_list(all_dbs=False)[0]
        assert folder.images == len(good) + len(odd)
        assert folder.failed_files >= len(bad) - 1
        assert folder.last_failure is not None
        errors = c.watch_errors(all_dbs=False)
        listed = {e.path for e in errors}
        assert {p for p in bad if not p.endswith("fifo.jpg")} <= listed
        assert all(e.reason and e.folder == str(root) for e in errors)
        # a file that is fixed is indexed and leaves the list
        fixed = str(root / "garbage.jpg")
        os.unlink(fixed)
        write_image(os.fsencode(fixed), 7)
        wait_for(lambda: fixed in top(c, fixed))
        assert fixed not in {e.path for e in c.watch_errors(all_dbs=False)}
        # a new file with an odd name, then renamed: the label follows it
        new = os.fsencode(root / "sub") + b"/n\xe9w\n.jpg"
        write_image(new, 9)
        wait_for(lambda: os.fsdecode(new) in top(c, os.fsdecode(new)))
        renamed = os.fsencode(root) + b"/r\xe9named\t.jpg"
        os.rename(new, renamed)
        wait_for(lambda: os.fsdecode(renamed) in top(c, os.fsdecode(renamed)))
        assert os.fsdecode(new) not in {p for p, _ in c.search(os.fsdecode(renamed), num=50)}

    listing = cli(daemon, "watch", "--list", "-d", "watchbad")
    assert listing.returncode == 0, listing.stderr
    text = listing.stdout.decode()
    assert "could not be indexed" in text and "isearch watch --errors" in text
    errs = cli(daemon, "watch", "--errors", "-d", "watchbad", str(root))
    assert errs.returncode == 0, errs.stderr
    assert str(root / "empty.jpg") in errs.stdout.decode()
    assert "could not be indexed" in errs.stdout.decode().splitlines()[-1]


def test_an_unreadable_catalog_is_reported_by_watch_list(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    root = short_tmpdir()
    d = make_daemon(root).start()
    folder = tmp_path / "pics"
    make_folder(folder, [b"a.jpg"])
    with d.client("broken") as c:
        c.watch([str(folder)])
    assert d.stop() == 0
    catalog = d.home / "broken" / "catalog.sqlite"
    catalog.write_bytes(b"this is not a database" * 100)
    for leftover in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (d.home / "broken" / leftover).unlink(missing_ok=True)
    d.start()
    with d.client("broken") as c:
        entries = [f for f in c.watch_list() if f.db == "broken"]
    assert len(entries) == 1 and entries[0].state == "error"
    assert "cannot be read" in entries[0].reason
    assert "broken" in d.output() and "cannot be read" in d.output()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_ends_the_add_with_a_plain_message(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    root = short_tmpdir()
    disk = root / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        d = make_daemon(root, bind=str(root / "s.sock"))
        d.home = disk / "home"
        d.start()
        folder = tmp_path / "many"
        make_folder(folder, [f"{i:03d}.jpg".encode() for i in range(3)])
        with d.client("full") as c:
            assert c.add_images([str(folder)]) == 3
        make_folder(folder, [f"{i:03d}.jpg".encode() for i in range(3, 400)])
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, free - 64 * 1024))
        proc = cli(d, "add", "-d", "full", str(folder))
        assert proc.returncode == 1
        err = proc.stderr.decode()
        assert "is full" in err and "were saved before it" in err and "free some space" in err, err
        assert "cannot rollback" not in err and "Traceback" not in err
        (disk / "filler").unlink()
        again = cli(d, "add", "-d", "full", str(folder))
        assert again.returncode == 0, again.stderr
        with d.client("full") as c:
            assert c.get_db_info()["size"] == 400
        assert d.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_client_gets_str_paths_that_open(daemon: DaemonProcess, tmp_path: Path) -> None:
    paths = make_folder(tmp_path / "c", [b"\xe9.jpg"])
    with Client(db_name="clientstr", bind=daemon.bind) as c:
        c.add_images(paths)
        hit = c.search_hits(paths[0], num=1)[0]
    assert isinstance(hit.path, str) and Path(hit.path).exists()
