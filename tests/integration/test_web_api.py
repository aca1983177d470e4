"""The web page's API and its security rules, through a real daemon serving it (raw HTTP).

One daemon serves the page on loopback (``--ui``), with the tiny test model and a folder of the
synthetic shapes; a second one, with a token, on TCP and beyond loopback, for the login rules
and for images that were sent as bytes and have no file on the daemon's machine.
"""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pillow_heif
import pytest
from daemons import DaemonProcess, free_tcp_port, short_tmpdir
from PIL import Image
from shapes import render, write_samples
from web import Reply, csrf_token, request, upload

from isearchd.messages import AddRequest, FileItem

TOKEN = "web-t0ken-for-tests"


def _opener(root: Path) -> tuple[Path, Path]:
    """A fake opener (``ISEARCH_OPENER``) that records what it was asked to open."""
    log = root / "opened.txt"
    script = root / "opener.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{log}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_samples(folder, 1, classes=[("red", "circle"), ("blue", "square"), ("green", "star")])
    write_samples(folder / "png", 1, classes=[("yellow", "cross")], fmt="png")
    # a camera's portrait: stored 300x150 landscape, EXIF orientation 6 (displayed 150x300)
    wide = render("purple", "triangle", seed=7).resize((300, 150))
    exif = Image.Exif()
    exif[0x0112] = 6
    wide.save(folder / "portrait.jpg", exif=exif, quality=92)
    pillow_heif.from_pillow(render("orange", "circle", seed=3)).save(folder / "IMG_0001.HEIC", quality=90)
    shutil.copy(folder / "red_circle_0.jpg", folder / "red_circle_copy.jpg")  # an exact duplicate
    return folder


@pytest.fixture(scope="module")
def site(photos: Path) -> Iterator[tuple[DaemonProcess, str, Path]]:
    """(daemon, page address, file the fake opener writes) with ``photos`` added to "default"."""
    root = short_tmpdir()
    address = f"127.0.0.1:{free_tcp_port()}"
    opener, opened = _opener(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ISEARCH_OPENER", str(opener))
        d = DaemonProcess(root, extra_args=("--ui", address)).start()
    try:
        with d.client() as c:
            report = c.add([str(photos)])
            assert not report.failed and report.added == 7, report
        yield d, address, opened
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def _search(address: str, query: str) -> Reply:
    return request(address, "GET", query)


# What each test picture shows, so that a text search finds it first among the others.
_SHOWS = {
    "portrait.jpg": "purple triangle",
    "IMG_0001.HEIC": "orange circle",
    "red_circle_copy.jpg": "red circle",
}


def _hit(address: str, name: str) -> dict:
    """The search hit of the picture ``name`` (a path suffix), found by what it shows."""
    base = name.rsplit("/", 1)[-1]
    shows = _SHOWS.get(base) or " ".join(base.split("_")[:2])
    answer = _search(address, f"/api/search?q=a+{shows.replace(' ', '+')}&n=50").json()
    return next(h for h in answer["results"] if h["path"].endswith("/" + name))


# -- the page and the API ------------------------------------------------------------------------


def test_page_is_small_self_contained_and_has_a_csrf_token(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    page = request(address, "GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"http://" not in page.body and b"https://" not in page.body  # nothing from the network
    total = len(page.body)
    for name in ("app.js", "people.js", "video.js", "app.css"):
        asset = request(address, "GET", f"/static/{name}")
        assert asset.status == 200, name
        assert b"http://" not in asset.body and b"https://" not in asset.body
        total += len(asset.body)
    assert total < 100_000
    assert len(csrf_token(address)) >= 32


def test_text_search_answers_the_json_schema_plus_id_and_thumbnail(
    site: tuple[DaemonProcess, str, Path],
) -> None:
    _, address, _ = site
    reply = _search(address, "/api/search?q=a+red+circle&n=3")
    assert reply.status == 200, reply.body
    assert reply.headers["cache-control"] == "no-store"
    doc = reply.json()
    assert doc["kind"] == "text" and doc["db"] == "default" and doc["query"] == "a red circle"
    first = doc["results"][0]
    assert Path(first["path"]).name.startswith("red_circle")
    for key in ("label", "path", "similarity", "taken", "width", "height", "place", "type", "bytes", "id"):
        assert key in first, key
    assert first["thumbnail"] == f"/thumb/default/{first['id']}"
    assert first["image"] == f"/image/default/{first['id']}"
    assert len(doc["results"]) == 3



def test_search_by_words_takes_the_words_parameter(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    alone = _search(address, "/api/search?words=otter&n=3")  # words are off here: nothing read
    assert alone.status == 200, alone.body
    assert alone.json()["kind"] == "words" and alone.json()["results"] == []
    combined = _search(address, "/api/search?q=a+red+circle&words=otter").json()
    assert combined["kind"] == "text" and combined["results"] == []  # only pictures with the words


def test_thumbnail_is_a_small_webp_upright_and_cached_by_content(
    site: tuple[DaemonProcess, str, Path],
) -> None:
    d, address, _ = site
    hit = _hit(address, "portrait.jpg")
    reply = request(address, "GET", hit["thumbnail"])
    assert reply.status == 200 and reply.headers["content-type"] == "image/webp", reply.headers
    thumb = Image.open(io.BytesIO(reply.body))
    assert thumb.format == "WEBP"
    assert max(thumb.size) <= 256
    assert thumb.size[1] > thumb.size[0]  # EXIF orientation 6 applied: the portrait stands
    cached = list((d.home / "thumbnails").glob("*/*.webp"))
    info = request(address, "GET", f"/api/image/default/{hit['id']}").json()
    assert any(f.stem == info["hash"] for f in cached)
    # a deleted cache is made again
    shutil.rmtree(d.home / "thumbnails")
    again = request(address, "GET", hit["thumbnail"])
    assert again.status == 200 and again.body[:4] == b"RIFF"
    # the browser's copy is still good: 304 without reading anything
    etag = again.headers["etag"]
    assert request(address, "GET", hit["thumbnail"], headers={"If-None-Match": etag}).status == 304


def test_copies_share_one_cached_thumbnail(site: tuple[DaemonProcess, str, Path]) -> None:
    d, address, _ = site
    a, b = _hit(address, "red_circle_0.jpg"), _hit(address, "red_circle_copy.jpg")
    assert a["id"] != b["id"]
    assert request(address, "GET", a["thumbnail"]).body == request(address, "GET", b["thumbnail"]).body
    digest = request(address, "GET", f"/api/image/default/{a['id']}").json()["hash"]
    assert len(list((d.home / "thumbnails").glob(f"*/{digest}.webp"))) == 1


def test_full_image_is_the_file_and_heic_is_converted(
    site: tuple[DaemonProcess, str, Path], photos: Path
) -> None:
    _, address, _ = site
    hit = _hit(address, "green_star_0.jpg")
    full = request(address, "GET", hit["image"])
    assert full.status == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.body == (photos / "green_star_0.jpg").read_bytes()
    heic = _hit(address, "IMG_0001.HEIC")
    converted = request(address, "GET", heic["image"])
    assert converted.headers["content-type"] == "image/jpeg" and not converted.placeholder
    assert Image.open(io.BytesIO(converted.body)).size == (heic["width"], heic["height"])


def test_missing_changed_or_unknown_images_get_a_placeholder_not_an_error(
    site: tuple[DaemonProcess, str, Path], photos: Path
) -> None:
    d, address, _ = site
    extra = photos / "later"
    extra.mkdir(exist_ok=True)
    write_samples(extra, 1, classes=[("blue", "star"), ("green", "cross")])
    with d.client() as c:
        c.add([str(extra)])
    gone, changed = _hit(address, "later/blue_star_0.jpg"), _hit(address, "later/green_cross_0.jpg")
    (extra / "blue_star_0.jpg").unlink()
    with (extra / "green_cross_0.jpg").open("ab") as f:
        f.write(b"\0" * 10)
    shutil.rmtree(d.home / "thumbnails", ignore_errors=True)
    for url in (gone["thumbnail"], gone["image"], changed["thumbnail"], changed["image"],
                "/thumb/default/987654", "/image/default/987654", "/thumb/nosuchdb/1"):  # fmt: skip
        reply = request(address, "GET", url)
        assert reply.status == 200 and reply.placeholder, (url, reply.status)
        assert reply.headers["content-type"] == "image/svg+xml"


def test_search_by_uploaded_image_needs_same_origin_and_the_csrf_token(
    site: tuple[DaemonProcess, str, Path], photos: Path
) -> None:
    _, address, _ = site
    token = csrf_token(address)
    origin = f"http://{address}"
    image = (photos / "blue_square_0.jpg").read_bytes()
    ok = upload(address, "/api/search?n=2", image, csrf=token, origin=origin)
    assert ok.status == 200, ok.body
    top = ok.json()["results"][0]
    assert top["path"].endswith("blue_square_0.jpg") and top["similarity"] == 100.0
    assert upload(address, "/api/search", image, csrf=None, origin=origin).status == 403
    assert upload(address, "/api/search", image, csrf="forged", origin=origin).status == 403
    assert upload(address, "/api/search", image, csrf=token, origin=None).status == 403
    assert upload(address, "/api/search", image, csrf=token, origin="http://evil.example").status == 403


def test_uploads_are_capped_and_decoded_with_the_bomb_guard(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    token, origin = csrf_token(address), f"http://{address}"
    corrupt = upload(address, "/api/search", b"\xff\xd8\xff not really a jpeg", csrf=token, origin=origin)
    assert corrupt.status == 400 and corrupt.json()["error"]["code"] == "bad_image"
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # 900 MP, a few KB
    refused = upload(address, "/api/search", bomb.getvalue(), csrf=token, origin=origin)
    assert refused.status == 400 and "too large" in refused.json()["error"]["message"]
    huge = upload(address, "/api/search", b"\0" * (33 * 1024 * 1024), csrf=token, origin=origin)
    assert huge.status == 400 and "larger than" in huge.json()["error"]["message"]


def test_more_like_this_filters_and_bad_parameters(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    hit = _hit(address, "blue_square_0.jpg")
    like = _search(address, f"/api/search?like={hit['id']}&n=3").json()
    assert like["kind"] == "like" and like["results"][0]["id"] == hit["id"]
    pngs = _search(address, "/api/search?q=a+shape&type=png&n=50").json()["results"]
    assert pngs and all(h["type"] == "png" for h in pngs)
    folder = str(Path(hit["path"]).parent / "png")
    inside = _search(address, f"/api/search?q=a+shape&folder={folder}&n=50").json()["results"]
    assert inside and all(h["path"].startswith(folder + "/") for h in inside)
    for bad in ("/api/search", "/api/search?q=x&n=zero", "/api/search?q=x&n=0", "/api/search?q=x&after=soon",
                "/api/search?q=x&sort=random", "/api/search?q=x&folder=relative/path"):  # fmt: skip
        reply = _search(address, bad)
        assert reply.status == 400, (bad, reply.status, reply.body)
        assert reply.json()["error"]["message"]
    missing = _search(address, "/api/search?q=x&db=nosuchdb")
    assert missing.status == 404


def test_dbs_status_image_info_and_dups(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    assert "default" in request(address, "GET", "/api/dbs").json()["dbs"]
    status = request(address, "GET", "/api/status?db=default").json()
    assert status["images"] >= 7 and status["model"] and status["queue"] == 0 and status["local"] is True
    assert status["people"] is None  # people are off in this daemon: no faces progress to show
    hit = _hit(address, "green_star_0.jpg")
    info = request(address, "GET", f"/api/image/default/{hit['id']}").json()
    assert info["path"] == hit["path"] and info["width"] == hit["width"] and info["thumbnail"]
    assert request(address, "GET", "/api/image/default/987654").status == 404
    dups = request(address, "GET", "/api/dups?db=default&min=95").json()
    group = next(
        g for g in dups["groups"] if any(i["path"].endswith("red_circle_copy.jpg") for i in g["images"])
    )
    assert {Path(i["path"]).name for i in group["images"]} >= {"red_circle_0.jpg", "red_circle_copy.jpg"}
    assert group["keep"] == group["images"][0]["label"]
    assert all(i["thumbnail"] == f"/thumb/default/{i['id']}" for i in group["images"])


def test_open_folder_opens_the_images_folder_for_a_local_browser(
    site: tuple[DaemonProcess, str, Path],
) -> None:
    _, address, opened = site
    hit = _hit(address, "green_star_0.jpg")
    body = f'{{"db": "default", "id": {hit["id"]}}}'.encode()
    headers = {
        "Content-Type": "application/json",
        "Origin": f"http://{address}",
        "X-CSRF-Token": csrf_token(address),
    }
    reply = request(address, "POST", "/api/open", headers=headers, body=body)
    assert reply.status == 200, reply.body
    folder = str(Path(hit["path"]).parent)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not opened.exists():
        time.sleep(0.05)
    assert opened.read_text().splitlines()[-1] == folder
    assert request(address, "GET", "/api/open").status == 405  # nothing changes on GET
    assert request(address, "POST", "/api/open", headers=headers, body=b"{not json").status == 400
    assert request(address, "POST", "/api/open", headers=headers, body=b'{"id": 987654}').status == 404


# -- security ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example.com", "evil.example.com:8765", "attacker.localhost.evil", "", "[::1"]
)
def test_host_header_of_another_name_is_refused(site: tuple[DaemonProcess, str, Path], host: str) -> None:
    _, address, _ = site
    for path in ("/", "/api/dbs", "/api/search?q=x", "/thumb/default/1"):
        assert request(address, "GET", path, host=host).status in (400, 403), (host, path)


def test_host_header_of_an_address_or_localhost_is_served(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    port = address.rsplit(":", 1)[1]
    for host in (address, f"localhost:{port}", f"LOCALHOST:{port}", "127.0.0.1"):
        assert request(address, "GET", "/api/dbs", host=host).status == 200, host


def test_other_sites_can_neither_embed_nor_read_anything(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    hit = _hit(address, "green_star_0.jpg")
    for site_kind in ("cross-site", "same-site"):
        for path in (hit["thumbnail"], hit["image"], "/api/search?q=x", "/api/dbs", "/static/app.js"):
            reply = request(
                address, "GET", path, headers={"Sec-Fetch-Site": site_kind, "Sec-Fetch-Mode": "no-cors"}
            )
            assert reply.status == 403, (site_kind, path)
    # a link from elsewhere may still open the page itself
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert request(address, "GET", "/", headers=nav).status == 200
    assert request(address, "GET", "/api/dbs", headers=nav).status == 403
    # no CORS, ever: not on answers, not on preflights
    cors = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    for method, path in (("GET", "/api/dbs"), ("OPTIONS", "/api/search")):
        reply = request(address, method, path, headers=cors)
        assert not any(k.startswith("access-control-") for k in reply.headers), reply.headers
    assert request(address, "OPTIONS", "/api/search", headers=cors).status in (403, 405)


def test_every_answer_carries_the_security_headers(site: tuple[DaemonProcess, str, Path]) -> None:
    _, address, _ = site
    for path in ("/", "/api/dbs", "/static/app.js", "/thumb/default/1", "/nowhere"):
        h = request(address, "GET", path).headers
        assert (
            "frame-ancestors 'none'" in h["content-security-policy"]
            and "script-src 'self'" in h["content-security-policy"]
        ), path
        assert h["x-content-type-options"] == "nosniff"
        assert h["cross-origin-resource-policy"] == "same-origin"
        assert h["x-frame-options"] == "DENY"
        assert "server" not in h


@pytest.mark.parametrize(
    "path",
    ["/thumb/default/..%2f..%2f..%2fetc%2fpasswd", "/thumb/default/-1", "/image/default/1.5",
     "/image/..%2f..%2fetc/1", "/image/default/%2fetc%2fpasswd", "/static/..%2f..%2fweb%2fapi.py",
     "/static/../api.py", "/thumb/default/1?path=/etc/passwd"],
)  # fmt: skip
def test_pictures_are_served_by_id_only_never_by_a_path(
    site: tuple[DaemonProcess, str, Path], path: str
) -> None:
    _, address, _ = site
    reply = request(address, "GET", path)
    assert b"root:" not in reply.body and b"def build_app" not in reply.body
    assert reply.status in (200, 404), reply.status
    if reply.status == 200:
        assert reply.placeholder or reply.headers["content-type"] == "image/webp"


def test_isearch_ui_prints_or_opens_the_page_and_status_shows_it(
    site: tuple[DaemonProcess, str, Path], tmp_path: Path
) -> None:
    d, address, _ = site
    env = {**d.env(), "ISEARCH_BIND": d.bind}
    run = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "ui", "--no-browser", "-d", "photos"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"ImgSearch web page: http://{address}/?db=photos"
    opener, opened = _opener(tmp_path)
    with_opener = {**env, "ISEARCH_OPENER": str(opener)}
    run = subprocess.run([sys.executable, "-m", "isearchd.cli", "ui"], env=with_opener,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not opened.exists():
        time.sleep(0.05)
    assert opened.read_text().strip() == f"http://{address}/"
    status = subprocess.run([sys.executable, "-m", "isearchd.cli", "service", "status"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert f"* Web page: http://{address}/" in status.stdout
    wide = f"0.0.0.0:{free_tcp_port()}"
    refused = subprocess.run(
        [sys.executable, "-m", "isearchd.cli", "ui", "--no-browser", "--listen", wide],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "needs the daemon's token" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # port 0 means any port: on the same host the page already served answers; elsewhere it moves
    ui = [sys.executable, "-m", "isearchd.cli", "ui", "--no-browser", "--listen"]
    same = subprocess.run([*ui, "127.0.0.1:0"], env=env, capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and same.stdout.strip() == f"ImgSearch web page: http://{address}/"
    wild = subprocess.run([*ui, "0.0.0.0:0"], env=env, capture_output=True, text=True, timeout=60)
    assert wild.returncode == 1 and "needs the daemon's token" in wild.stderr


# -- beyond loopback: the token, a login form, a session cookie -----------------------------------


@pytest.fixture(scope="module")
def remote_site(photos: Path) -> Iterator[tuple[DaemonProcess, str]]:
    root = short_tmpdir()
    page = f"0.0.0.0:{free_tcp_port()}"
    d = DaemonProcess(
        root, bind=f"127.0.0.1:{free_tcp_port()}", token=TOKEN, extra_args=("--ui", page)
    ).start()
    try:
        with d.client("default", token=TOKEN) as c:  # from another machine: bytes, no file here
            files = [
                FileItem(label=f"/elsewhere/{name}", data=(photos / name).read_bytes(), size=1, mtime_ns=1)
                for name in ("red_circle_0.jpg", "blue_square_0.jpg")
            ]
            assert c.request(AddRequest(db="default", files=files)).added == 2
        yield d, "127.0.0.1:" + page.rsplit(":", 1)[1]
        assert d.stop() == 0, d.output()
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def _login(address: str, token: str) -> Reply:
    body = f"token={token}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://{address}"}
    return request(address, "POST", "/login", headers=headers, body=body)


def test_beyond_loopback_everything_needs_the_login(remote_site: tuple[DaemonProcess, str]) -> None:
    _, address = remote_site
    nav = request(address, "GET", "/", headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"})
    assert nav.status == 303 and nav.headers["location"] == "/login"
    for path in ("/", "/api/dbs", "/api/search?q=x", "/thumb/default/1", "/image/default/1", "/api/status"):
        assert request(address, "GET", path).status == 401, path
    form = request(address, "GET", "/login")
    assert form.status == 200 and b'name="token"' in form.body
    assert request(address, "GET", "/static/app.css").status == 200


def test_login_with_the_token_opens_a_session_cookie(remote_site: tuple[DaemonProcess, str]) -> None:
    _, address = remote_site
    wrong = _login(address, "guess")
    assert wrong.status == 303 and wrong.headers["location"] == "/login?failed=1" and not wrong.cookies
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    no_origin = request(address, "POST", "/login", headers=form, body=f"token={TOKEN}".encode())
    assert no_origin.status == 403 and not no_origin.cookies
    right = _login(address, TOKEN)
    assert right.status == 303 and right.headers["location"] == "/"
    (cookie,) = right.cookies
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    session = {"Cookie": cookie.split(";", 1)[0]}
    assert request(address, "GET", "/api/dbs", headers=session).status == 200
    assert request(address, "GET", "/api/dbs", headers={"Cookie": "isearch_session=forged"}).status == 401
    # images sent as bytes over TCP have no file on this machine: placeholders
    hits = request(address, "GET", "/api/search?q=a+red+circle&n=2", headers=session).json()["results"]
    assert hits and all(request(address, "GET", h["thumbnail"], headers=session).placeholder for h in hits)
    # a state-changing request needs the session and the page's CSRF token, each on its own
    token = csrf_token(address, headers=session)
    headers = {
        **session,
        "Content-Type": "application/json",
        "Origin": f"http://{address}",
        "X-CSRF-Token": "x",
    }
    body = f'{{"db": "default", "id": {hits[0]["id"]}}}'.encode()
    assert request(address, "POST", "/api/open", headers=headers, body=body).status == 403
    headers.pop("Cookie")
    headers["X-CSRF-Token"] = token
    assert request(address, "POST", "/api/open", headers=headers, body=body).status == 401
