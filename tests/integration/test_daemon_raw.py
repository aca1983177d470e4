"""Camera RAW files end to end through a real daemon, its socket, the Python Client and the
``isearch`` CLI, with the tiny test model: DNGs written by pidng at test time, under the names
cameras give them (LibRaw reads the content, the daemon goes by the name).

The pictures are the coloured shapes the model was trained on, so a search for "a blue star"
finds the RAW only if its pixels were developed right (through the demosaic: that DNG has no
preview) and "a green square" finds the RAW+JPEG pair as one result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from shapes import render

from isearchd.client import Client

if TYPE_CHECKING:
    from daemons import DaemonProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from rawfiles import dng, dng_bytes

ClientFactory = Callable[..., Client]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera card: RAW alone (no preview: demosaiced), RAW with preview alone, a RAW+JPEG pair,
    a JPEG alone, a truncated RAW and a file that is not RAW at all."""
    folder = tmp_path_factory.mktemp("card")
    star = render("blue", "star", 700, 128)
    dng(folder / "IMG_0001.DNG", star, taken="2022:05:01 10:00:00")
    triangle = render("purple", "triangle", 701, 128)
    dng(folder / "IMG_0002.CR2", triangle, preview=render("purple", "triangle", 701, 256))
    square = render("green", "square", 702, 256)
    dng(folder / "IMG_0003.NEF", square.resize((128, 128)), preview=square)
    square.save(folder / "IMG_0003.JPG", quality=92)
    render("yellow", "cross", 703, 128).save(folder / "IMG_0004.jpg", quality=92)
    whole = dng_bytes(render("red", "circle", 704, 128))
    (folder / "IMG_0005.ARW").write_bytes(whole[: len(whole) // 2])
    (folder / "IMG_0006.orf").write_bytes(b"not a raw file " * 100)
    return folder


GOOD = ("IMG_0001.DNG", "IMG_0002.CR2", "IMG_0003.NEF", "IMG_0003.JPG", "IMG_0004.jpg")


def test_add_indexes_raw_files_and_bad_ones_fail_alone(shoot: Path, client_factory: ClientFactory) -> None:
    c = client_factory("card")
    t0 = time.monotonic()
    assert c.add_images([str(shoot)]) == len(GOOD)
    assert time.monotonic() - t0 < 60
    failed = dict(c.last_add.failed) if c.last_add is not None else {}
    assert set(failed) == {str(shoot / "IMG_0005.ARW"), str(shoot / "IMG_0006.orf")}
    assert failed[str(shoot / "IMG_0005.ARW")].startswith("truncated or unreadable ARW")
    assert failed[str(shoot / "IMG_0006.orf")].startswith("not a ORF file LibRaw can read")
    assert all("\n" not in reason for reason in failed.values())


def test_raw_alone_and_pair_through_the_cli(
    shoot: Path, daemon: DaemonProcess, client_factory: ClientFactory
) -> None:
    client_factory("card").add_images([str(shoot)])

    def search(text: str, *more: str) -> list[dict[str, object]]:
        proc = subprocess.run(
            [sys.executable, "-m", "isearchd.cli", text, "-d", "card", "--json", *more, "-B", daemon.bind],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        results: list[dict[str, object]] = json.loads(proc.stdout)["results"]
        return results

    # the pair: one result, the JPEG, naming its RAW
    found = search("a green square", "-n", "5", "-m", "0")
    paths = [r["path"] for r in found]
    assert paths[0] == str(shoot / "IMG_0003.JPG")
    assert found[0]["raw"] == str(shoot / "IMG_0003.NEF")
    assert str(shoot / "IMG_0003.NEF") not in paths
    assert all("raw" not in r for r in found[1:])
    # by the JPEG itself: its RAW embeds almost alike, and still does not show a second time
    alike = search(str(shoot / "IMG_0003.JPG"), "-n", "3")
    assert alike[0]["path"] == str(shoot / "IMG_0003.JPG") and alike[0]["raw"] == str(shoot / "IMG_0003.NEF")
    assert str(shoot / "IMG_0003.NEF") not in [r["path"] for r in alike]
    # RAW alone: developed by the demosaic (no preview), with its EXIF date
    star = search("a blue star", "-n", "1")[0]
    assert star["path"] == str(shoot / "IMG_0001.DNG") and "raw" not in star
    assert star["type"] == "raw" and star["taken"] == "2022-05-01T10:00:00"
    # RAW alone, from its preview
    assert search("a purple triangle", "-n", "1")[0]["path"] == str(shoot / "IMG_0002.CR2")
    # only RAW files: the RAW of the pair shows, as itself
    raws = search("a green square", "-n", "5", "-m", "0", "--type", "raw")
    assert raws[0]["path"] == str(shoot / "IMG_0003.NEF")
    assert {r["type"] for r in raws} == {"raw"}


def test_watch_lists_a_bad_raw_file_and_indexes_a_good_one(
    shoot: Path, client_factory: ClientFactory, tmp_path: Path
) -> None:
    c = client_factory("watchraw")
    folder = tmp_path / "w"
    folder.mkdir()
    c.watch([str(folder)])
    whole = dng_bytes(render("orange", "circle", 705, 128))
    (folder / "DSC_0001.ARW").write_bytes(whole[: len(whole) // 3])
    dng(folder / "DSC_0002.RW2", render("orange", "circle", 706, 128))

    def settled() -> bool:
        errors = {e.path: e.reason for e in c.watch_errors(all_dbs=False)}
        return str(folder / "DSC_0001.ARW") in errors and c.get_db_info()["size"] == 1

    deadline = time.monotonic() + 60
    while not settled():
        assert time.monotonic() < deadline, c.watch_errors(all_dbs=False)
        time.sleep(0.2)
    errors = {e.path: e.reason for e in c.watch_errors(all_dbs=False)}
    assert errors[str(folder / "DSC_0001.ARW")].startswith("truncated or unreadable ARW")
    assert c.search("an orange circle", num=1)[0][0] == str(folder / "DSC_0002.RW2")
