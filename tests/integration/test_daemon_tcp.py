"""The daemon over TCP: tokens, image bytes instead of server-side paths."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemons import DaemonProcess, free_tcp_port, module_daemon
from shapes import render, write_samples

from isearchd.errors import PermissionDenied
from isearchd.messages import AddRequest
from isearchd.protocol import b64encode, to_wire

TOKEN = "s3cret-t0ken"


@pytest.fixture(scope="module")
def tcp_daemon() -> Iterator[DaemonProcess]:
    """A daemon on 127.0.0.1 with a token configured: loopback, yet the token is still checked."""
    yield from module_daemon(bind=f"127.0.0.1:{free_tcp_port()}", token=TOKEN)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_samples(folder, 1, classes=[("red", "circle"), ("blue", "square"), ("green", "star")])
    write_samples(folder / "sub", 1, classes=[("yellow", "cross")], fmt="png")
    (folder / "broken.jpg").write_bytes(b"nope")
    return folder


def _rpc(d: DaemonProcess, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    """Send raw requests on one fresh TCP connection; return the final replies (progress dropped)."""
    host, port = d.bind.rsplit(":", 1)
    out = []
    with socket.create_connection((host, int(port)), timeout=60) as s, s.makefile("rb") as f:
        for m in messages:
            s.sendall(json.dumps(m).encode() + b"\n")
            while True:
                line = f.readline()
                if not line:
                    out.append({"closed": True})
                    return out
                reply = json.loads(line)
                if reply.get("event") != "progress":
                    out.append(reply)
                    break
    return out


def test_token_is_required_even_on_loopback(tcp_daemon: DaemonProcess, photos: Path) -> None:
    with tcp_daemon.client("tcp", token="") as anonymous:
        anonymous.token = None
        hello = anonymous.hello()  # hello is allowed, and says a token is needed
        assert (
            hello.transport == "tcp" and hello.auth_required is True and hello.authenticated is False
        )
        with pytest.raises(PermissionDenied, match="token"):
            anonymous.add_images([str(photos)])
        with pytest.raises(PermissionDenied, match="token"):
            anonymous.list_dbs()

    with (
        tcp_daemon.client("tcp", token="guess") as wrong,
        pytest.raises(PermissionDenied, match="wrong token"),
    ):
        wrong.list_dbs()

    # raw protocol: a wrong token closes the connection; a token field on a request authenticates
    replies = _rpc(tcp_daemon, {"id": 1, "op": "auth", "token": "guess"}, {"id": 2, "op": "list_dbs"})
    assert replies[0]["error"]["code"] == "permission_denied" and replies[1] == {"closed": True}
    replies = _rpc(tcp_daemon, {"id": 1, "op": "list_dbs", "token": TOKEN}, {"id": 2, "op": "status"})
    assert replies[0]["ok"] and replies[1]["ok"]


def test_add_search_compare_send_bytes(tcp_daemon: DaemonProcess, photos: Path) -> None:
    with tcp_daemon.client("tcp") as c:
        assert c.is_tcp
        assert c.add_images([str(photos)]) == 4
        report = c.last_add
        assert report is not None and report.skipped == 0
        assert [p for p, _ in report.failed] == [str(photos / "broken.jpg")]
        assert c.get_db_info()["size"] == 4
        # a re-add uploads nothing: the daemon says which files it holds unchanged
        uploads: list[int] = []
        call = c.request

        def spy(request, progress=None):  # type: ignore[no-untyped-def]
            if isinstance(request, AddRequest):
                uploads.append(len(request.files or ()))
            return call(request, progress)

        c.request = spy  # type: ignore[method-assign]
        assert c.add_images([str(photos)]) == 0
        assert c.last_add.skipped == 4  # type: ignore[union-attr]
        assert [p for p, _ in c.last_add.failed] == [str(photos / "broken.jpg")]  # type: ignore[union-attr]
        assert uploads == [1]  # only the broken file, which was never stored
        # a changed file is uploaded and embedded again
        changed = photos / "red_circle_0.jpg"
        st = changed.stat()
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        uploads.clear()
        assert c.add_images([str(photos)]) == 0  # same content: its vector is reused, counted as skipped
        assert uploads == [2]
        c.request = call  # type: ignore[method-assign]
        # labels are the client's absolute paths
        own = photos / "red_circle_0.jpg"
        assert c.search(str(own), num=1) == [(str(own), 100.0)]
        hits = c.search("a blue square", num=4)
        assert hits[0][0] == str(photos / "blue_square_0.jpg")
        assert c.compare_images(str(own), str(own)) == 100.0


def test_name_labels_and_many_chunks_over_tcp(tcp_daemon: DaemonProcess, tmp_path: Path) -> None:
    from isearchd.protocol import ADD_CHUNK_FILES

    n = ADD_CHUNK_FILES + 6  # forces two add requests
    for i in range(n):
        render(["red", "blue", "green"][i % 3], "circle", 5000 + i, 64).save(tmp_path / f"img{i:03d}.png")
    with tcp_daemon.client("tcp-names") as c:
        progress = []
        assert c.add_images([str(tmp_path)], label_type="name", progress=progress.append) == n
        assert progress[-1].done == progress[-1].total == n
        assert [p.done for p in progress] == sorted(p.done for p in progress)
        labels = sorted(h.label for h in c.search_hits("a red circle", num=n))
        assert labels == sorted(f"img{i:03d}.png" for i in range(n))


def test_search_parts_send_bytes_and_like_needs_no_file(tcp_daemon: DaemonProcess, photos: Path) -> None:
    """Over TCP an image part of a query travels as bytes, as an image query does; ``like`` and
    ``within`` name the client's paths, which are the labels a TCP add stores."""
    blue = photos / "blue_square_0.jpg"
    with tcp_daemon.client("tcp-parts") as c:
        assert c.add_images([str(photos)]) == 4
        sent: list[dict[str, Any]] = []
        call = c.request

        def spy(request, progress=None):  # type: ignore[no-untyped-def]
            sent.append(to_wire(request))  # as it travels
            return call(request, progress)

        c.request = spy  # type: ignore[method-assign]
        hits = c.search("a red circle", plus=[(blue, 3.0)], minus=[str(photos / "green_star_0.jpg")])
        assert hits[0][0] == str(blue)
        assert sent[-1]["plus"][0]["image"]["data"] == b64encode(blue.read_bytes())
        assert "data" in sent[-1]["minus"][0]["image"] and "path" not in sent[-1]["minus"][0]["image"]
        c.request = call  # type: ignore[method-assign]
        assert c.search(like=blue, num=1) == [(str(blue), 100.0)]
        below = c.search("a yellow cross", within=photos / "sub")
        assert [p for p, _ in below] == [str(photos / "sub" / "yellow_cross_0.png")]


def test_server_side_paths_are_refused_over_tcp(tcp_daemon: DaemonProcess, photos: Path) -> None:
    own = str(photos / "red_circle_0.jpg")
    data = {"data": b64encode((photos / "red_circle_0.jpg").read_bytes())}
    replies = _rpc(
        tcp_daemon,
        {"id": 1, "op": "auth", "token": TOKEN},
        {"id": 2, "op": "add", "db": "tcp", "paths": [str(photos)]},
        {"id": 3, "op": "search", "db": "tcp", "image": {"path": own}},
        {"id": 4, "op": "compare", "a": {"path": own}, "b": data},
        {"id": 5, "op": "compare", "a": data, "b": data},
    )
    assert replies[0]["ok"] is True
    for r in replies[1:4]:
        assert r["ok"] is False and r["error"]["code"] == "permission_denied", r
        assert "bytes" in r["error"]["message"]
    assert replies[4] == {"id": 5, "ok": True, "result": 100.0}


def test_tcp_without_token_on_loopback(make_daemon: Any, photos: Path) -> None:
    d: DaemonProcess = make_daemon(bind=f"127.0.0.1:{free_tcp_port()}").start()
    with d.client() as c:
        assert c.hello().auth_required is False
        assert c.add_images([str(photos / "red_circle_0.jpg")]) == 1
        assert c.search("a red circle", num=1)[0][0] == str(photos / "red_circle_0.jpg")
        replies = _rpc(d, {"id": 1, "op": "add", "paths": [str(photos)]})
        assert replies[0]["error"]["code"] == "permission_denied"
    assert d.stop() == 0


def test_tcp_beyond_loopback_needs_a_token(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(bind=f"0.0.0.0:{free_tcp_port()}")
    proc = d.spawn()
    assert proc.wait(60) == 1
    out = d.output()
    assert "requires a token" in out and "Traceback" not in out
    assert not d.pid_file.exists()
