"""The Client over an in-process transport: engine, protocol and dispatch without a daemon process.

The same Client, the same JSON lines and the same server-side checks as over a socket, run in
this process against an engine with the tiny test model: protocol and engine behaviour fail here
with a traceback that points at the code. (What needs the real process, signals, sockets and
permissions, is tested in tests/integration.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from isearchd.client import Client
from isearchd.daemon.inprocess import InProcessTransport
from isearchd.daemon.server import Server
from isearchd.engine.engine import Engine
from isearchd.errors import BadImage, NotFound, PermissionDenied
from isearchd.messages import (
    AddRequest,
    CompareRequest,
    ImageRef,
    MigrateRequest,
    QueryPart,
    SearchRequest,
    UnwatchRequest,
    WatchRequest,
)
from isearchd.protocol import BindAddress, decode_reply, encode
from isearchd.reports import Progress
from isearchd.watch.watcher import Watcher, WatchOptions

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from shapes import write_samples  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from isearchd.models import load_model

    model = load_model(str(REPO / "tests" / "fixtures" / "tiny-clip.pt"), backend="torch")
    home = tmp_path_factory.mktemp("home")
    engine = Engine(model, home, batch_size=8)
    watcher = Watcher(engine, WatchOptions(settle_s=0.2))
    srv = Server(engine, watcher, BindAddress(path=str(home / "unused.sock")))
    yield srv
    watcher.stop()
    engine.close()


@pytest.fixture
def client(server: Server, request: pytest.FixtureRequest) -> Iterator[Client]:
    with Client(db_name=request.node.name[:60].replace("[", "_").replace("]", ""),
                transport=InProcessTransport(server)) as c:  # fmt: skip
        yield c


def test_add_search_compare_through_the_protocol(client: Client, tmp_path: Path) -> None:
    images = write_samples(tmp_path / "img", 2, classes=[("red", "circle"), ("blue", "square")])
    seen: list[Progress] = []
    assert client.add_images([str(tmp_path / "img")], progress=seen.append) == len(images)
    assert seen and seen[-1].done == len(images)
    (path, _), *_ = client.search("a red circle", num=3)
    assert "red_circle" in Path(path).name
    blue = next(p for p in images if "blue_square" in p.name)
    assert client.search(str(blue), num=1) == [(str(blue), 100.0)]
    assert client.compare_images(str(blue), str(blue)) == 100.0
    assert client.get_db_info()["size"] == client.db_info().size == len(images)


def raw_request(server: Server, message: dict[str, Any], *, remote: bool = False) -> dict[str, Any]:
    """The final reply to one request line as written (the typed Client cannot write a malformed one)."""
    conn = InProcessTransport(server, remote=remote).connect(None)
    conn.send(encode({"id": 1, **message}))
    while (line := conn.readline()) is not None:
        reply = decode_reply(line)
        if "ok" in reply:
            return reply
    raise AssertionError("no final reply")


def test_errors_raise_what_the_handler_raised(server: Server, client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        Client(db_name="never-made", transport=InProcessTransport(server)).search("x")
    bad = raw_request(server, {"op": "add", "db": client.db_name, "paths": ["relative/path.jpg"]})
    assert bad["error"]["code"] == "invalid_request" and "absolute" in bad["error"]["message"]
    bad = raw_request(server, {"op": "add", "db": client.db_name, "paths": ["/a/\ud800.jpg"]})
    assert bad["error"]["code"] == "invalid_request" and "surrogate" in bad["error"]["message"]


def test_a_name_that_is_not_utf8_round_trips(client: Client, tmp_path: Path) -> None:
    (src,) = write_samples(tmp_path / "s", 1, classes=[("green", "star")])
    odd = os.fsencode(tmp_path) + b"/gr\xfcn\n.jpg"
    os.rename(src, odd)
    assert client.add_images([os.fsdecode(odd)]) == 1
    (found, sim), *_ = client.search(os.fsdecode(odd), num=1)
    assert os.fsencode(found) == odd and sim == 100.0


def test_watch_ops_reach_the_watcher(client: Client, tmp_path: Path) -> None:
    write_samples(tmp_path / "w", 1, classes=[("red", "square")])
    (state,) = client.watch([str(tmp_path / "w")])
    assert state.path == str(tmp_path / "w")
    assert any(f.path == str(tmp_path / "w") for f in client.watch_list(all_dbs=False))
    assert client.watch_errors(all_dbs=False) == []
    assert client.unwatch(str(tmp_path / "w")).path == str(tmp_path / "w")


def test_combined_query_is_the_normalised_weighted_sum(
    server: Server, client: Client, tmp_path: Path
) -> None:
    """--plus/--minus against hand-computed vectors: the same hits and similarities as a search
    with the weighted sum computed here."""
    import numpy as np

    from isearchd.engine.query import SearchQuery, Term

    write_samples(tmp_path / "c", 2, classes=[("red", "circle"), ("blue", "circle"), ("green", "square")])
    client.add_images([str(tmp_path / "c")])
    engine = server.engine
    circle, blue, square = (engine.queries.text_vector(t) for t in ("a circle", "blue", "a square"))
    manual = 1.0 * circle.astype(np.float64) + 0.5 * blue - 2.0 * square
    manual = (manual / np.linalg.norm(manual)).astype(np.float32)
    want = engine.database(client.db_name, create=False).search(manual, k=6)
    terms = (Term(1.0, text="a circle"), Term(0.5, text="blue"), Term(-2.0, text="a square"))
    got = engine.search(client.db_name, SearchQuery(terms, num=6))
    assert [(h.path, h.similarity) for h in got] == [(h.path, h.similarity) for h in want]
    via_client = client.search("a circle", num=6, plus=[("blue", 0.5)], minus=[("a square", 2.0)])
    assert via_client == [(h.path, h.similarity) for h in want]


def test_a_photo_of_the_library_is_searched_by_its_stored_vector(
    server: Server, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searching by a photo that is in the database (by path, by bytes, under another name) runs
    no model: the stored vector is the one the model computed for those bytes."""
    images = write_samples(tmp_path / "lib", 2, classes=[("red", "circle"), ("blue", "square")])
    client.add_images([str(tmp_path / "lib")])
    model = server.engine.model
    expected = client.search(str(images[0]), num=4)
    copy = tmp_path / "renamed copy.jpg"
    copy.write_bytes(images[0].read_bytes())
    runs: list[int] = []
    real = model.embed_images
    monkeypatch.setattr(model, "embed_images", lambda imgs, **kw: runs.append(len(imgs)) or real(imgs, **kw))
    assert client.search(str(images[0]), num=4) == expected
    assert client.search(str(copy), num=4) == expected
    db = server.engine.database(client.db_name, create=False)
    stored = db.get(str(images[0]))
    assert stored is not None and stored.vector is not None
    assert (server.engine.queries.image_vector(db, images[0].read_bytes()) == stored.vector).all()
    assert runs == []
    new = tmp_path / "new.png"
    Image.open(images[0]).rotate(90).save(new)
    client.search(str(new), num=4)
    assert runs == [1]  # a picture the database does not hold is embedded as before
    with pytest.raises(BadImage, match=r"missing\.jpg: file not found"):  # read errors as before
        server.engine.queries.image_vector(db, str(tmp_path / "missing.jpg"))


def test_a_remote_in_process_peer_cannot_name_daemon_side_files(server: Server, tmp_path: Path) -> None:
    """The web page's transport: its requests count as remote, so no request it forwards can make
    the daemon read a path (image sources are bytes, never paths), while the ids work."""
    (image,) = write_samples(tmp_path / "r", 1, classes=[("red", "star")])
    with Client(db_name="remote_peer", transport=InProcessTransport(server)) as local:
        local.add_images([str(image)])
        hit = local.search_hits("a red star", num=1)[0]
    assert hit.id is not None
    with Client(db_name="remote_peer", transport=InProcessTransport(server, remote=True)) as web:
        for request in (
            SearchRequest(db="remote_peer", image=ImageRef(path=str(image))),
            SearchRequest(db="remote_peer", text="x", plus=[QueryPart(image=ImageRef(path=str(image)))]),
            CompareRequest(a=ImageRef(path=str(image)), b=ImageRef(path=str(image))),
            AddRequest(db="remote_peer", paths=[str(tmp_path)]),
            WatchRequest(db="remote_peer", paths=[str(tmp_path)]),
            UnwatchRequest(db="remote_peer", path=str(tmp_path)),
            MigrateRequest(db="remote_peer", to="qdrant:///" + str(tmp_path)),
        ):
            with pytest.raises(PermissionDenied):
                web.request(request)
        info = web.image_info(hit.id)
        assert info.path == str(image) and info.label == hit.label
        with pytest.raises(NotFound):
            web.image_info(10**12)
