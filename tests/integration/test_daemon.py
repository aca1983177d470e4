"""The daemon process and the Python Client over its Unix socket: what needs the process and the
socket (permissions, malformed bytes on the wire, many requests on one connection, two clients at
once, the original README's API). What a request does is tested in-process
(tests/inprocess/test_requests.py).

One daemon serves the whole module; each test works in its own database.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from isearchd.client import Client
from isearchd.protocol import MAX_LINE_BYTES

if TYPE_CHECKING:
    from daemons import DaemonProcess

ClientFactory = Callable[..., Client]


def _raw(daemon: DaemonProcess) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(daemon.bind)
    return s


def _read_line(f: object) -> dict:  # type: ignore[type-arg]
    line = f.readline()  # type: ignore[attr-defined]
    assert line, "the daemon closed the connection"
    return json.loads(line)


def test_hello_status_and_socket_permissions(daemon: DaemonProcess, client_factory: ClientFactory) -> None:
    c = client_factory()
    hello = c.hello()
    assert hello.protocol == 1 and hello.server == "isearchd" and hello.transport == "unix"
    assert hello.model == "custom:tiny-clip.pt" or hello.model.startswith("custom:")
    status = c.status()
    assert status.pid == daemon.proc.pid  # type: ignore[union-attr]
    assert status.rss_bytes > 10_000_000
    assert status.queue == 0 and status.uptime_s >= 0
    assert int(daemon.pid_file.read_text()) == daemon.proc.pid  # type: ignore[union-attr]
    mode = os.stat(daemon.bind).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(daemon.bind).parent).st_mode) == 0o700


def test_malformed_protocol_input_keeps_the_daemon_healthy(daemon: DaemonProcess) -> None:
    with _raw(daemon) as s, s.makefile("rb") as f:
        s.sendall(b"{this is not json\n")
        assert _read_line(f)["error"]["code"] == "protocol_error"
        s.sendall(b"[1, 2, 3]\n")
        assert _read_line(f)["error"]["code"] == "protocol_error"
        s.sendall(b'{"id": 7, "op": "teleport"}\n')
        reply = _read_line(f)
        assert reply["id"] == 7 and reply["error"]["code"] == "invalid_request"
        s.sendall(b'{"id": 8, "op": "search", "text": "x", "num": "ten"}\n')
        reply = _read_line(f)
        assert (
            reply["id"] == 8
            and reply["error"]["code"] == "invalid_request"
            and "num" in reply["error"]["message"]
        )
        s.sendall(b'{"id": 9, "op": "add", "paths": [1, 2]}\n')
        assert _read_line(f)["error"]["code"] == "invalid_request"
        s.sendall(b'{"id": 10, "op": "add", "paths": ["relative/dir"]}\n')
        assert "absolute" in _read_line(f)["error"]["message"]
        s.sendall(b'{"id": 11, "op": "compare", "a": {"data": "!!"}, "b": {"path": "/x.jpg"}}\n')
        assert _read_line(f)["error"]["code"] == "invalid_request"
        s.sendall(b"\xff\xfe\n")
        assert _read_line(f)["error"]["code"] == "protocol_error"
        # a line over the cap is drained and refused; the connection stays in sync
        chunk = b"x" * (1 << 20)
        for _ in range(MAX_LINE_BYTES // len(chunk) + 1):
            s.sendall(chunk)
        s.sendall(b"\n")
        reply = _read_line(f)
        assert reply["error"]["code"] == "protocol_error" and "too long" in reply["error"]["message"]
        s.sendall(b'{"id": 12, "op": "hello"}\n')
        reply = _read_line(f)
        assert reply == {"id": 12, "ok": True, "result": reply["result"]} and reply["result"]["protocol"] == 1
    # a client that vanishes mid-line does not hurt either
    with _raw(daemon) as s:
        s.sendall(b'{"id": 1, "op": "sea')
    with daemon.client() as c:
        assert c.status().pid == daemon.proc.pid  # type: ignore[union-attr]


def test_many_requests_on_one_connection_in_order(daemon: DaemonProcess) -> None:
    with _raw(daemon) as s, s.makefile("rb") as f:
        s.sendall(b"".join(json.dumps({"id": i, "op": "hello"}).encode() + b"\n" for i in range(20)))
        assert [_read_line(f)["id"] for _ in range(20)] == list(range(20))


def test_two_clients_add_the_same_folder_at_once(gallery: Path, daemon: DaemonProcess) -> None:
    reports = []
    errors: list[BaseException] = []

    def add() -> None:
        try:
            with daemon.client("race") as c:
                c.add_images([str(gallery)])
                reports.append(c.last_add)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(r.added for r in reports) == [0, 90]  # type: ignore[union-attr]
    assert sum(r.skipped for r in reports) == 90  # type: ignore[union-attr]
    with daemon.client("race") as c:
        assert c.get_db_info()["size"] == 90


def test_python_api_of_the_original_readme(gallery: Path, daemon: DaemonProcess) -> None:
    import isearchd
    from imgsearch.client import Client as AliasClient

    assert AliasClient is isearchd.Client is Client
    cli = AliasClient(db_name="readme", bind=daemon.bind)
    image_paths = [str(gallery / "red_circle_0.jpg"), str(gallery / "blue_star_0.jpg"), str(gallery)]
    n_added = cli.add_images(image_paths, label_type="path")
    assert n_added == 90
    results = cli.search(str(gallery / "red_circle_0.jpg"), num=5, similarity=80)
    assert results and results[0][0] == str(gallery / "red_circle_0.jpg")
    for path, sim in results:
        assert isinstance(path, str) and 80 <= sim <= 100
    results = cli.search("red apple", num=10, similarity=0)
    assert 1 <= len(results) <= 10 and all(sim >= 0 for _, sim in results)
    similarity = cli.compare_images(str(gallery / "red_circle_0.jpg"), str(gallery / "red_circle_1.jpg"))
    assert isinstance(similarity, float) and 0 <= similarity <= 100
    assert "readme" in cli.list_dbs()
    info = cli.get_db_info()
    assert isinstance(info, dict) and info["size"] == 90
    assert cli.clear_db() is True
    cli.close()


def test_bind_with_tilde_is_expanded(daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(daemon.bind).parent
    monkeypatch.setenv("HOME", str(home))
    c = Client(bind="~/s.sock")
    assert c.bind == daemon.bind
    assert c.hello().protocol == 1
    c.close()
