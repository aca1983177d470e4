"""People through a real daemon process and the real `isearch` command line, on real face photos
(tests/fixtures/faces: four labelled people, three photos each; see its README)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import FIXTURES, DaemonProcess, short_tmpdir

LABELS: dict[str, str] = json.loads((FIXTURES / "faces" / "people.json").read_text())


@pytest.fixture(scope="module")
def people_daemon() -> Iterator[DaemonProcess]:
    root = short_tmpdir()
    d = DaemonProcess(root, people=True).start()
    yield d
    try:
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def cli(d: DaemonProcess) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "isearchd.cli", *args, "-B", d.bind]
        return subprocess.run(argv, env=d.env(), capture_output=True, text=True, timeout=120)

    return run


def test_people_from_the_command_line(people_daemon: DaemonProcess, tmp_path: Path) -> None:
    run = cli(people_daemon)
    photos = tmp_path / "faces"
    shutil.copytree(FIXTURES / "faces", photos)
    added = run("add", str(photos), "-d", "fam")
    assert added.returncode == 0, added.stderr
    deadline = time.monotonic() + 120
    while True:
        listed = run("people", "--json", "-d", "fam")
        assert listed.returncode == 0, listed.stderr
        doc = json.loads(listed.stdout)
        if doc["analysed"] == doc["total"] == len(LABELS):
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.3)
    assert set(doc) == {"db", "enabled", "analysed", "total", "people"}
    assert len(doc["people"]) == 4 and all(p["photos"] == 3 and p["name"] is None for p in doc["people"])
    ana = next(p["id"] for p in doc["people"] if LABELS[Path(p["sample"]).name] == "person-a")

    named = run("people", "name", str(ana), "Ana", "-d", "fam")
    assert named.returncode == 0 and "Ana" in named.stdout, named.stderr
    text = run("people", "-d", "fam")
    assert text.stdout.splitlines()[1].split()[:2] == [str(ana), "Ana"], text.stdout  # named first
    shown = json.loads(run("people", "show", str(ana), "--json", "-d", "fam").stdout)
    hers = {n for n, who in LABELS.items() if who == "person-a"}
    assert shown["name"] == "Ana" and {Path(p["path"]).name for p in shown["photos"]} == hers
    assert all(len(p["box"]) == 4 for p in shown["photos"])

    found = run("--person", "Ana", "--json", "-d", "fam")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)["results"]
    assert {Path(h["path"]).name for h in results} == hers and all(h["people"] == ["Ana"] for h in results)
    assert len(run("--person", "Ana", "-d", "fam").stdout.splitlines()) == 2 + len(hers)  # heading + lines
    unknown = run("--person", "Anna", "-d", "fam")
    assert unknown.returncode == 1 and "Ana" in unknown.stderr and len(unknown.stderr.splitlines()) == 1

    status = run("service", "status")
    assert '* People of "fam": faces read in 12 of 12 photos (0 unreadable)' in status.stdout, status.stdout

    refused = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "people", "--forget", "-d", "fam", "-B", people_daemon.bind],
        env=people_daemon.env(), capture_output=True, text=True, input="n\n", timeout=60,
    )  # fmt: skip
    assert "Nothing was deleted" in refused.stdout
    forgot = run("people", "--forget", "-y", "-d", "fam")
    assert forgot.returncode == 0 and "people are off" in forgot.stdout, forgot.stderr
    after = json.loads(run("people", "--json", "-d", "fam").stdout)
    assert after["people"] == [] and after["enabled"] is False
