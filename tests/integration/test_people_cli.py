"""People through a real daemon process and the real `isearch` command line, on real face photos
(tests/fixtures/faces: four labelled people, three photos each; see its README)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemons import FIXTURES, DaemonProcess, cli, module_daemon, short_tmpdir
from PIL import Image

LABELS: dict[str, str] = json.loads((FIXTURES / "faces" / "people.json").read_text())


@pytest.fixture(scope="module")
def people_daemon() -> Iterator[DaemonProcess]:
    yield from module_daemon(people=True)


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
        # a chunk's faces are grouped right after they are stored: all read, then all grouped
        if doc["analysed"] == doc["total"] == len(LABELS) and len(doc["people"]) == 4:
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


@pytest.fixture(scope="module")
def web_daemon() -> Iterator[tuple[DaemonProcess, str]]:
    """(daemon, page address): people on, the web page on loopback."""
    from daemons import free_tcp_port

    root = short_tmpdir()
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, people=True, extra_args=("--ui", address)).start()
    try:
        yield d, address
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def _people_of(address: str, db: str, photos: int, people: int) -> dict[str, Any]:
    """``GET /api/people`` once faces are read in all ``photos`` photos of ``db`` and grouped
    into ``people`` (a chunk's faces are grouped right after they are stored)."""
    from web import request

    deadline = time.monotonic() + 120
    while True:
        doc = request(address, "GET", f"/api/people?db={db}").json()
        if doc["analysed"] >= photos and len(doc["people"]) >= people:
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.3)


def test_people_through_the_web_api(web_daemon: tuple[DaemonProcess, str]) -> None:
    from web import csrf_token, request

    d, address = web_daemon
    with d.client("web") as c:
        c.add_images([str(FIXTURES / "faces")])
    doc = _people_of(address, "web", len(LABELS), 4)
    assert len(doc["people"]) == 4 and all(isinstance(p["face"], int) for p in doc["people"])
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
    shown = request(address, "GET", f"/api/image/web/{found['results'][0]['id']}").json()
    assert shown["people"] == ["Ana"]  # the large view names the people in the photo
    assert post("/api/people/merge", {"db": "web", "people": [bo, ana]}) == 200
    photos = request(address, "GET", f"/api/people/{ana}?db=web").json()["photos"]
    assert len(photos) == 6 and all(p["thumbnail"] == f"/thumb/web/{p['id']}" for p in photos)
    assert post("/api/people/merge", {"db": "web", "people": "all"}) == 400
    photo = photos[0]["path"]
    assert post(f"/api/people/{ana}/remove", {"db": "web", "path": photo}) == 200
    left = request(address, "GET", f"/api/people/{ana}?db=web").json()["photos"]
    assert photo not in {p["path"] for p in left}
    assert request(address, "GET", "/api/people/987654?db=web").status == 404
    status = request(address, "GET", "/api/status?db=web").json()
    assert status["people"] == {"total": 12, "done": 12, "unreadable": 0}


def _grey(webp: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(webp)).convert("L").resize((64, 64)), dtype=np.float32)


def test_face_crops_are_cut_upright_cached_and_checked(
    web_daemon: tuple[DaemonProcess, str], tmp_path: Path
) -> None:
    from web import request

    from isearchd.messages import FaceRequest
    from isearchd.web.faces import FACE_SIDE

    d, address = web_daemon
    for name in ("img1.jpg", "img2.jpg", "img4.jpg", "img13.jpg"):
        shutil.copy(FIXTURES / "faces" / name, tmp_path / name)
    # img1 as a camera stores a portrait: turned a quarter, EXIF orientation 6 to show it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(tmp_path / "img1.jpg").transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "turned.jpg", exif=exif, quality=95
    )
    with d.client("crops") as c:
        c.add_images([str(tmp_path)])
    ana = next(p for p in _people_of(address, "crops", 5, 1)["people"] if p["photos"] == 4)
    listed = request(address, "GET", f"/api/people/{ana['id']}?db=crops").json()["photos"]
    photos = {Path(p["path"]).name: p for p in listed}
    assert set(photos) == {"img1.jpg", "img2.jpg", "img4.jpg", "turned.jpg"}  # upright, she was found

    with d.client("crops") as c:  # the op itself: where the face is, as image_info says
        where = c.request(FaceRequest(db="crops", face=photos["img1.jpg"]["face"]))
    assert where.person == ana["id"] and list(where.box) == photos["img1.jpg"]["box"]
    assert where.image.path == str(tmp_path / "img1.jpg") and where.image.hash

    crops = {}
    for name in ("img1.jpg", "turned.jpg"):
        got = request(address, "GET", f"/face/crops/{photos[name]['face']}")
        assert got.status == 200 and got.headers["content-type"] == "image/webp" and not got.placeholder
        picture = Image.open(io.BytesIO(got.body))
        assert picture.format == "WEBP" and FACE_SIDE // 2 <= picture.width <= FACE_SIDE
        assert abs(picture.width - picture.height) <= 1  # square
        crops[name] = got
    upright, turned = _grey(crops["img1.jpg"].body), _grey(crops["turned.jpg"].body)
    sideways = np.rot90(upright)
    # the turned copy's crop is her face as upright as the original's, not a quarter turn of it
    assert np.abs(turned - upright).mean() < np.abs(turned - sideways).mean() / 2
    again = request(address, "GET", f"/face/crops/{photos['img1.jpg']['face']}",
                    headers={"If-None-Match": crops["img1.jpg"].headers["etag"]})  # fmt: skip
    assert again.status == 304
    kept = list((d.home / "thumbnails").glob(f"*/{where.image.hash}-*.webp"))
    assert len(kept) == 1  # in the thumbnails' cache, keyed by content hash and box

    missing = request(address, "GET", "/face/crops/987654")
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found"
    assert request(address, "GET", f"/face/nodb/{photos['img1.jpg']['face']}").status == 404
    (tmp_path / "img2.jpg").write_bytes((tmp_path / "img13.jpg").read_bytes())  # changed since indexed
    (tmp_path / "img4.jpg").unlink()  # gone
    for name in ("img2.jpg", "img4.jpg"):
        gone = request(address, "GET", f"/face/crops/{photos[name]['face']}")
        assert gone.status == 200 and gone.placeholder and gone.headers["content-type"] == "image/svg+xml"
    refused = request(address, "GET", f"/face/crops/{photos['img1.jpg']['face']}",
                      headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert refused.status == 403


def _policies(workers: list[Any]) -> set[int]:
    """The scheduling policies of the processes that read pictures (not multiprocessing's helper)."""
    return {os.sched_getscheduler(p.pid) for p in workers if "resource_tracker" not in " ".join(p.cmdline())}


def test_killed_while_reading_faces_no_worker_is_left_and_the_next_start_reads_on(tmp_path: Path) -> None:
    """The face workers are the daemon's child processes, at the idle scheduling policy (a search
    takes their cores at once): a ``kill -9`` of the daemon in the middle of reading faces leaves
    none of them running, not even workers held by a search at that moment (stopped: they cannot
    look for their daemon; the kernel kills them), and the next start reads the rest."""
    import signal

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
        if hasattr(os, "SCHED_IDLE"):  # Linux; elsewhere the workers run at nice 19
            while _policies(children) != {os.SCHED_IDLE}:  # set as each worker starts
                assert time.monotonic() < deadline, _policies(children)
                time.sleep(0.05)
        for worker in children:  # held, as while a search computes (Workers.hold)
            if "resource_tracker" not in " ".join(worker.cmdline()):
                worker.send_signal(signal.SIGSTOP)
        d.kill()
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]

        d.start()
        deadline = time.monotonic() + 120
        with d.client("fam") as c:
            while (listed := c.people()).analysed < len(LABELS) or len(listed.people) < 4:  # read, grouped
                assert time.monotonic() < deadline, (listed, d.output())
                time.sleep(0.3)
            assert len(listed.people) == 4 and sorted(p.photos for p in listed.people) == [3, 3, 3, 3]
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)
