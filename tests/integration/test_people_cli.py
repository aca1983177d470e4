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
    watched = run("watch", str(photos), "-d", "fam", "--wait")  # nothing new: the same photos
    assert watched.returncode == 0, watched.stderr
    listed = run("watch", "--list", "-d", "fam")
    assert 'people of "fam": faces read in 12 of 12 photos' in listed.stdout, listed.stdout

    refused = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "people", "--forget", "-d", "fam", "-B", people_daemon.bind],
        env=people_daemon.env(), capture_output=True, text=True, input="n\n", timeout=60,
    )  # fmt: skip
    assert "Nothing was deleted" in refused.stdout
    forgot = run("people", "--forget", "-y", "-d", "fam")
    assert forgot.returncode == 0 and "people are off" in forgot.stdout, forgot.stderr
    after = json.loads(run("people", "--json", "-d", "fam").stdout)
    assert after["people"] == [] and after["enabled"] is False


def test_people_through_the_web_api(tmp_path: Path) -> None:
    from daemons import free_tcp_port
    from web import csrf_token, request

    root = short_tmpdir()
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, people=True, extra_args=("--ui", address)).start()
    try:
        with d.client("web") as c:
            c.add_images([str(FIXTURES / "faces")])
        deadline = time.monotonic() + 120
        while (doc := request(address, "GET", "/api/people?db=web").json())["analysed"] < len(LABELS):
            assert time.monotonic() < deadline, doc
            time.sleep(0.3)
        assert len(doc["people"]) == 4
        by_label = {LABELS[Path(p["sample"]).name]: p["id"] for p in doc["people"]}
        ana, bo = by_label["person-a"], by_label["person-b"]
        headers = {"Content-Type": "application/json", "Origin": f"http://{address}",
                   "X-CSRF-Token": csrf_token(address)}  # fmt: skip

        def post(path: str, body: object, with_headers: dict[str, str] = headers) -> int:
            return request(address, "POST", path, headers=with_headers, body=json.dumps(body).encode()).status

        assert post(f"/api/people/{ana}/name", {"db": "web", "name": "Ana"}) == 200
        forged = {**headers, "X-CSRF-Token": "x"}
        assert post(f"/api/people/{ana}/name", {"db": "web", "name": "Ana"}, forged) == 403
        found = request(address, "GET", "/api/search?db=web&person=Ana").json()
        assert found["kind"] == "people" and {Path(h["path"]).name for h in found["results"]} == {
            n for n, who in LABELS.items() if who == "person-a"
        }
        assert all(h["people"] == ["Ana"] and h["thumbnail"] for h in found["results"])
        assert post("/api/people/merge", {"db": "web", "people": [bo, ana]}) == 200
        assert len(request(address, "GET", f"/api/people/{ana}?db=web").json()["photos"]) == 6
        assert post("/api/people/merge", {"db": "web", "people": "all"}) == 400
        photo = request(address, "GET", f"/api/people/{ana}?db=web").json()["photos"][0]["path"]
        assert post(f"/api/people/{ana}/remove", {"db": "web", "path": photo}) == 200
        left = request(address, "GET", f"/api/people/{ana}?db=web").json()["photos"]
        assert photo not in {p["path"] for p in left}
        assert request(address, "GET", "/api/people/987654?db=web").status == 404
        status = request(address, "GET", "/api/status?db=web").json()
        assert status["people"] == {"total": 12, "done": 12, "unreadable": 0}
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_without_dlib_the_daemon_starts_with_people_off_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "dlib.py").write_text("raise ImportError('no dlib on this machine')\n")
    monkeypatch.setenv("PYTHONPATH", str(shim))
    root = short_tmpdir()
    d = DaemonProcess(root, people=True)
    try:
        d.start()
        assert "people are off: the face models need dlib" in d.output()
        assert "pip install dlib-bin face-recognition-models" in d.output()
        with d.client("nodlib") as c:
            c.add_images([str(FIXTURES / "faces" / "img1.jpg")])
            assert c.people().analysed == 0 and "faces" not in c.status().analyses
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_killed_while_reading_faces_no_worker_is_left_and_the_next_start_reads_on(tmp_path: Path) -> None:
    """The face workers are the daemon's child processes: a ``kill -9`` of the daemon in the
    middle of reading faces leaves none of them running, and the next start reads the rest."""
    import psutil

    root = short_tmpdir()
    d = DaemonProcess(root, people=True).start()
    try:
        assert d.proc is not None
        with d.client("fam") as c:
            assert c.add([str(FIXTURES / "faces")]).added == len(LABELS)
        daemon = psutil.Process(d.proc.pid)
        deadline = time.monotonic() + 60
        while not (children := daemon.children(recursive=True)):  # the workers have started
            assert time.monotonic() < deadline, d.output()
            time.sleep(0.05)
        d.kill()
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]

        d.start()
        deadline = time.monotonic() + 120
        with d.client("fam") as c:
            while (listed := c.people()).analysed < len(LABELS):
                assert time.monotonic() < deadline, (listed, d.output())
                time.sleep(0.3)
            assert len(listed.people) == 4 and sorted(p.photos for p in listed.people) == [3, 3, 3, 3]
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)
